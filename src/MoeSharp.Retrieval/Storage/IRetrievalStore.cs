using MoeSharp.Retrieval.Data;
using MoeSharp.Retrieval.Indexing;

namespace MoeSharp.Retrieval.Storage;

/// <summary>A node the entity linker found in a query.</summary>
/// <param name="Node">The node's (document's) index.</param>
/// <param name="Name">The matched name.</param>
/// <param name="Rank">The sense rank of the node under that name.</param>
public readonly record struct EntityMatch(int Node, string Name, int Rank);

/// <summary>
/// Where an index lives: documents, the BM25 full-text index, graph nodes and edges, vectors with their HNSW graph,
/// labelled queries and the trained gates. Both backends answer every query identically.
/// </summary>
public interface IRetrievalStore : IDisposable
{
    /// <summary>The file path or PostgreSQL connection string, for messages.</summary>
    string Location { get; }

    /// <summary>Number of documents N.</summary>
    int DocumentCount { get; }

    /// <summary>The caller's id of a document.</summary>
    string DocumentId(int doc);

    /// <summary>The text of a document.</summary>
    string DocumentText(int doc);

    /// <summary>BM25 (k1 = 1.2, b = 0.75) over the distinct <paramref name="terms"/>, best first, ties by index.</summary>
    ScoredDoc[] Bm25(IReadOnlyList<string> terms, int k);

    /// <summary>Every node known under one of <paramref name="names"/> (normalised n-grams).</summary>
    List<EntityMatch> Link(IReadOnlyList<string> names);

    /// <summary>
    /// Walks typed edges from the seeds up to <paramref name="maxHops"/>: a path's score is its seed's score times the
    /// weight of each edge type it follows (types not listed are not followed); a node scores its best path. Seeds
    /// themselves are not returned. Best first, ties by index.
    /// </summary>
    ScoredDoc[] Walk(IReadOnlyList<ScoredDoc> seeds, IReadOnlyDictionary<string, double> typeWeights, int maxHops, int k);

    /// <summary>The distinct edge types, sorted.</summary>
    IReadOnlyList<string> EdgeTypes();

    /// <summary>The document vectors and their HNSW graph.</summary>
    HnswIndex Vectors { get; }

    /// <summary>The name of the encoder the vectors were made with.</summary>
    string EncoderName { get; }

    /// <summary>The labelled queries stored with the index.</summary>
    IReadOnlyList<LabeledQuery> Queries();

    /// <summary>A stored value (a trained gate), or null.</summary>
    string? GetMeta(string key);

    /// <summary>Stores a value, replacing the old one in one transaction.</summary>
    void SetMeta(string key, string value);
}
