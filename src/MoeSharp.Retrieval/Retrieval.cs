namespace MoeSharp.Retrieval;

/// <summary>One document found by an expert: its index in the store and the expert's score (higher is better).</summary>
/// <param name="Doc">The document's index (0-based row in the store).</param>
/// <param name="Score">The expert's own score; scales differ between experts, so fusion normalises them.</param>
public readonly record struct ScoredDoc(int Doc, float Score);

/// <summary>Turns text into unit-length sentence embeddings.</summary>
public interface ITextEncoder
{
    /// <summary>The embedding width D.</summary>
    int Dimension { get; }

    /// <summary>A name that identifies the model, stored with an index so that a different encoder is refused.</summary>
    string Name { get; }

    /// <summary>Embeds every text; row i of the result, <c>[texts.Count, D]</c> row-major, is the unit vector of text i.</summary>
    float[] Encode(IReadOnlyList<string> texts);
}

/// <summary>What one expert returned for a query: its hits and the features of its score distribution.</summary>
/// <param name="Hits">The top hits, best first.</param>
/// <param name="Features">The expert's features for the gate (see <see cref="ScoreFeatures"/>), length <see cref="ScoreFeatures.Count"/>.</param>
public sealed record ExpertResult(ScoredDoc[] Hits, float[] Features);

/// <summary>A retriever that a gate can weigh: vector, keyword or graph search over one store.</summary>
public interface IRetrievalExpert
{
    /// <summary>The expert's short name: "vector", "keyword" or "graph".</summary>
    string Name { get; }

    /// <summary>The top <paramref name="k"/> documents for an analysed query, best first, with the gate's features.</summary>
    ExpertResult Search(AnalyzedQuery query, int k);
}

/// <summary>Features of one expert's score distribution that tell the gate how sure the expert is.</summary>
public static class ScoreFeatures
{
    /// <summary>How many features <see cref="Of"/> returns.</summary>
    public const int Count = 4;

    /// <summary>
    /// [top-1 score / (1 + top-1), (top-1 − top-2) / top-1, mean of the top 10 / top-1, hits / k]: ratios, so BM25
    /// scores and cosines land on comparable scales without knowing either expert's range.
    /// </summary>
    public static float[] Of(ScoredDoc[] hits, int k)
    {
        var f = new float[Count];
        if (hits.Length == 0) return f;
        float top = Math.Max(hits[0].Score, 1e-6f);
        float second = hits.Length > 1 ? hits[1].Score : 0f;
        float sum = 0;
        int n = Math.Min(10, hits.Length);
        for (int i = 0; i < n; i++) sum += hits[i].Score;
        f[0] = top / (1 + top);
        f[1] = (top - second) / top;
        f[2] = sum / n / top;
        f[3] = hits.Length / (float)Math.Max(1, k);
        return f;
    }
}
