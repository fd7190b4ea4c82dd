namespace MoeSharp.Retrieval.Gating;

/// <summary>How the experts' lists become one list.</summary>
public enum FusionMode
{
    /// <summary>The vector expert alone.</summary>
    Vector,

    /// <summary>The keyword expert alone.</summary>
    Keyword,

    /// <summary>The graph expert alone.</summary>
    Graph,

    /// <summary>Reciprocal rank fusion over all experts: Σ 1 / (60 + rank).</summary>
    Rrf,

    /// <summary>Every expert queried; normalised scores summed with the dense gate's weights.</summary>
    Dense,

    /// <summary>Only the sparse gate's top expert queried.</summary>
    Top1,

    /// <summary>The sparse gate's top two experts queried; their scores fused with its renormalised weights.</summary>
    Top2,
}

/// <summary>Score fusion.</summary>
public static class Fusion
{
    /// <summary>RRF's constant (Cormack et al. 2009).</summary>
    public const int RrfK = 60;

    /// <summary>Each score over the list's top score, so every expert's best hit is 1 (a list of zeros stays zero).</summary>
    public static void Normalize(ReadOnlySpan<ScoredDoc> hits, Dictionary<int, float> into)
    {
        into.Clear();
        float top = hits.Length > 0 ? hits[0].Score : 0;
        foreach (var h in hits) into[h.Doc] = top > 0 ? h.Score / top : 0;
    }

    /// <summary>Σ_e weight_e · normalised score_e(d), best first, ties by index.</summary>
    public static ScoredDoc[] Weighted(IReadOnlyList<ScoredDoc[]?> lists, ReadOnlySpan<float> weights, int k)
    {
        var sum = new Dictionary<int, float>();
        var norm = new Dictionary<int, float>();
        for (int e = 0; e < lists.Count; e++)
        {
            if (lists[e] is not { } hits || weights[e] == 0) continue;
            Normalize(hits, norm);
            foreach (var (doc, s) in norm) sum[doc] = sum.GetValueOrDefault(doc) + weights[e] * s;
        }
        return Top(sum, k);
    }

    /// <summary>Reciprocal rank fusion over the lists that are present.</summary>
    public static ScoredDoc[] Rrf(IReadOnlyList<ScoredDoc[]?> lists, int k)
    {
        var sum = new Dictionary<int, float>();
        foreach (var hits in lists)
        {
            if (hits is null) continue;
            for (int r = 0; r < hits.Length; r++) sum[hits[r].Doc] = sum.GetValueOrDefault(hits[r].Doc) + 1f / (RrfK + r + 1);
        }
        return Top(sum, k);
    }

    private static ScoredDoc[] Top(Dictionary<int, float> scores, int k)
    {
        var all = new ScoredDoc[scores.Count];
        int i = 0;
        foreach (var (doc, s) in scores) all[i++] = new ScoredDoc(doc, s);
        Array.Sort(all, (a, b) => b.Score != a.Score ? b.Score.CompareTo(a.Score) : a.Doc.CompareTo(b.Doc));
        return all.Length > k ? all[..k] : all;
    }
}
