namespace MoeSharp.Retrieval.Data;

/// <summary>A name under which the entity linker finds a node, with its rank among the nodes sharing that name (0 = most common sense).</summary>
/// <param name="Name">The name in <see cref="TextNormalizer.Normalize"/> form.</param>
/// <param name="Rank">0 for the usual sense of the name, higher for rarer ones.</param>
public readonly record struct EntityName(string Name, int Rank);

/// <summary>A document, which is also a graph node: WordNet's synset with its gloss, or one line of a JSONL corpus.</summary>
/// <param name="Id">The caller's id, unique in the corpus.</param>
/// <param name="Text">The text that keyword and vector search index.</param>
/// <param name="Names">Names the entity linker maps to this node.</param>
public sealed record Document(string Id, string Text, EntityName[] Names);

/// <summary>A typed edge between two documents' nodes, by index.</summary>
/// <param name="Source">The index of the source document.</param>
/// <param name="Target">The index of the target document.</param>
/// <param name="Type">The edge type (WordNet: "hyponym", "part_meronym", ...).</param>
public readonly record struct Edge(int Source, int Target, string Type);

/// <summary>A query with the documents known to be relevant to it.</summary>
/// <param name="Kind">WordNet: "vector", "keyword" or "graph", the kind of retrieval the query was built for; a queries file: its label.</param>
/// <param name="Split">"train" or "test".</param>
/// <param name="Text">The query text.</param>
/// <param name="Relevant">The indices of the relevant documents.</param>
public sealed record LabeledQuery(string Kind, string Split, string Text, int[] Relevant);

/// <summary>Documents, edges and labelled queries: everything an index is built from.</summary>
public sealed class Corpus
{
    /// <summary>The documents; a document's index in this list is its id in the store.</summary>
    public List<Document> Documents { get; } = [];

    /// <summary>The typed edges between documents.</summary>
    public List<Edge> Edges { get; } = [];

    /// <summary>Queries with known relevant documents (WordNet's generated ones, or a JSONL corpus's queries file; empty without one).</summary>
    public List<LabeledQuery> Queries { get; } = [];
}
