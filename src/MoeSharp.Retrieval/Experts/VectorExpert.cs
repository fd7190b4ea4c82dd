using MoeSharp.Retrieval.Storage;

namespace MoeSharp.Retrieval.Experts;

/// <summary>Dense retrieval: the query's sentence embedding against the documents' through the HNSW index.</summary>
/// <param name="store">The store holding the vectors.</param>
/// <param name="ef">Candidates examined on HNSW level 0 (at least k is used).</param>
public sealed class VectorExpert(IRetrievalStore store, int ef = 64) : IRetrievalExpert
{
    /// <inheritdoc/>
    public string Name => "vector";

    /// <inheritdoc/>
    public ExpertResult Search(AnalyzedQuery query, int k)
    {
        var hits = store.Vectors.Search(query.Embedding, k, Math.Max(ef, k));
        // Cosines can be negative; the fusion divides by the top score, so keep them non-negative.
        for (int i = 0; i < hits.Length; i++) hits[i] = hits[i] with { Score = Math.Max(0f, hits[i].Score) };
        return new ExpertResult(hits, ScoreFeatures.Of(hits, k));
    }
}

/// <summary>Sparse lexical retrieval: BM25 over the query's terms in the store's full-text index.</summary>
/// <param name="store">The store holding the full-text index.</param>
public sealed class KeywordExpert(IRetrievalStore store) : IRetrievalExpert
{
    /// <inheritdoc/>
    public string Name => "keyword";

    /// <inheritdoc/>
    public ExpertResult Search(AnalyzedQuery query, int k)
    {
        var hits = store.Bm25(query.Terms, k);
        return new ExpertResult(hits, ScoreFeatures.Of(hits, k));
    }
}

/// <summary>
/// Knowledge-graph retrieval: link the query to nodes by name, then walk typed edges. The relation words of the
/// query ("a part of", "a kind of", "a member of") choose which edge types are followed at full weight; without
/// one, every type is followed at <see cref="PlainWeight"/>. Each hop multiplies the path score by <see cref="HopDecay"/>.
/// </summary>
public sealed class GraphExpert : IRetrievalExpert
{
    private readonly IRetrievalStore _store;

    /// <summary>Factor per hop, so a direct neighbour beats a two-hop one through equally weighted edges.</summary>
    public double HopDecay { get; init; } = 0.5;

    /// <summary>Weight of an edge type that the query's relation words did not name.</summary>
    public double PlainWeight { get; init; } = 0.3;

    /// <summary>Weight of the edge types a relation word names.</summary>
    public double CueWeight { get; init; } = 1.0;

    /// <summary>Weight of other types when the query does name a relation (walks through, say, a kind to its parts).</summary>
    public double OffCueWeight { get; init; } = 0.05;

    /// <summary>Longest walk in edges.</summary>
    public int MaxHops { get; init; } = 2;

    /// <summary>A graph expert over <paramref name="store"/>'s nodes and edges.</summary>
    public GraphExpert(IRetrievalStore store) => _store = store;

    /// <inheritdoc/>
    public string Name => "graph";

    /// <summary>The weight of each edge type for <paramref name="query"/>, hop decay included.</summary>
    public Dictionary<string, double> TypeWeights(AnalyzedQuery query)
    {
        var weights = new Dictionary<string, double>(StringComparer.Ordinal);
        foreach (string type in _store.EdgeTypes())
        {
            double w = query.RelationTypes.Count == 0 ? PlainWeight : query.RelationTypes.Contains(type) ? CueWeight : OffCueWeight;
            weights[type] = w * HopDecay;
        }
        return weights;
    }

    /// <inheritdoc/>
    public ExpertResult Search(AnalyzedQuery query, int k)
    {
        var hits = _store.Walk(query.Seeds, TypeWeights(query), MaxHops, k);
        return new ExpertResult(hits, ScoreFeatures.Of(hits, k));
    }
}
