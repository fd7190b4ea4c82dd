namespace MoeSharp.Retrieval.Evaluation;

/// <summary>Binary-relevance ranking metrics.</summary>
public static class RankingMetrics
{
    /// <summary>nDCG@k: Σ over relevant hits in the top k of 1 / log2(rank + 1), over the same sum for a perfect list.</summary>
    public static double Ndcg(ReadOnlySpan<ScoredDoc> ranked, IReadOnlySet<int> relevant, int k)
    {
        if (relevant.Count == 0) return 0;
        double dcg = 0, ideal = 0;
        for (int i = 0; i < Math.Min(k, ranked.Length); i++)
            if (relevant.Contains(ranked[i].Doc)) dcg += 1 / Math.Log2(i + 2);
        for (int i = 0; i < Math.Min(k, relevant.Count); i++) ideal += 1 / Math.Log2(i + 2);
        return dcg / ideal;
    }

    /// <summary>Recall@k: the share of relevant documents found in the top k.</summary>
    public static double Recall(ReadOnlySpan<ScoredDoc> ranked, IReadOnlySet<int> relevant, int k)
    {
        if (relevant.Count == 0) return 0;
        int found = 0;
        for (int i = 0; i < Math.Min(k, ranked.Length); i++)
            if (relevant.Contains(ranked[i].Doc)) found++;
        return found / (double)relevant.Count;
    }
}
