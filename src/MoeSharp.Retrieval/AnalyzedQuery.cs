using MoeSharp.Retrieval.Storage;

namespace MoeSharp.Retrieval;

/// <summary>
/// A query as the experts and the gate see it: its tokens, keyword terms, relation cues and linked entities, and its
/// embedding, which is computed only when something asks for it, so a sparse gate that routes away from the vector
/// expert never runs the encoder.
/// </summary>
public sealed class AnalyzedQuery
{
    private readonly ITextEncoder? _encoder;
    private readonly IRetrievalStore _store;
    private float[]? _embedding;
    private List<ScoredDoc>? _seeds;

    /// <summary>The relation words the graph expert understands, each with the edge type it follows.</summary>
    public static readonly IReadOnlyList<(string Word, string EdgeType)> Relations =
    [
        ("part", "part_meronym"), ("kind", "hyponym"), ("type", "hyponym"), ("member", "member_meronym"), ("substance", "substance_meronym"),
    ];

    /// <summary>The raw text.</summary>
    public string Text { get; }

    /// <summary>Lower-case tokens in order.</summary>
    public IReadOnlyList<string> Tokens { get; }

    /// <summary>Distinct tokens that are not stop words: the keyword expert's terms.</summary>
    public IReadOnlyList<string> Terms { get; }

    /// <summary>Edge types named by "part of", "kind of", ... in the query, in reading order.</summary>
    public IReadOnlyList<string> RelationTypes { get; }

    /// <summary>Analyses <paramref name="text"/>; an empty or blank query is refused.</summary>
    public AnalyzedQuery(string text, IRetrievalStore store, ITextEncoder? encoder)
    {
        Text = text;
        _store = store;
        _encoder = encoder;
        var tokens = TextNormalizer.Tokens(text);
        if (tokens.Count == 0) throw new ArgumentException("query: empty (expected some words)");
        Tokens = tokens;
        var terms = new List<string>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var t in tokens)
            if (!TextNormalizer.StopWords.Contains(t) && seen.Add(t)) terms.Add(t);
        Terms = terms;
        var relations = new List<string>();
        for (int i = 0; i + 1 < tokens.Count; i++)
        {
            if (tokens[i + 1] != "of" && tokens[i + 1] != "in") continue;
            string word = tokens[i].EndsWith('s') ? tokens[i][..^1] : tokens[i];
            foreach (var (w, type) in Relations)
                if (word == w) relations.Add(type);
        }
        RelationTypes = relations;
    }

    /// <summary>Sets the embedding computed elsewhere (a batch over many queries).</summary>
    public void SetEmbedding(float[] embedding) => _embedding = embedding;

    /// <summary>The query's unit embedding, computed on first use.</summary>
    public float[] Embedding => _embedding ??= (_encoder ?? throw new InvalidOperationException("no encoder to embed the query")).Encode([Text]);

    /// <summary>True once the embedding exists (so a caller can tell whether the encoder ran).</summary>
    public bool HasEmbedding => _embedding is not null;

    /// <summary>
    /// Linked nodes with their link scores, best first: every 1- to 4-word span that neither starts nor ends with
    /// a stop word is looked up by name; a span inside a longer matched span is dropped (so "sea anemone" wins over
    /// "anemone"); a node scores 1 / (1 + its sense rank) under its best name; the top 5 are kept.
    /// </summary>
    public IReadOnlyList<ScoredDoc> Seeds => _seeds ??= Link();

    /// <summary>How many query tokens the linked names cover, over the token count.</summary>
    public float LinkedCoverage { get; private set; }

    /// <summary>True when the whole query is a name in the index (a lemma typed as is).</summary>
    public bool IsExactName { get; private set; }

    private List<ScoredDoc> Link()
    {
        var spans = new Dictionary<string, (int Start, int Length)>(StringComparer.Ordinal);
        var names = new List<string>();
        for (int len = Math.Min(4, Tokens.Count); len >= 1; len--)
            for (int s = 0; s + len <= Tokens.Count; s++)
            {
                if (TextNormalizer.StopWords.Contains(Tokens[s]) || TextNormalizer.StopWords.Contains(Tokens[s + len - 1])) continue;
                string name = string.Join(' ', Tokens.Skip(s).Take(len));
                if (spans.TryAdd(name, (s, len))) names.Add(name);
            }
        var matches = _store.Link(names);
        var matchedSpans = new List<(int Start, int Length)>();
        foreach (var m in matches) matchedSpans.Add(spans[m.Name]);
        var best = new Dictionary<int, float>();
        var covered = new bool[Tokens.Count];
        string whole = string.Join(' ', Tokens);
        foreach (var m in matches)
        {
            var (s, l) = spans[m.Name];
            bool inside = false;
            foreach (var (os, ol) in matchedSpans)
                if (ol > l && os <= s && s + l <= os + ol) { inside = true; break; }
            if (inside) continue;
            if (m.Name == whole) IsExactName = true;
            for (int i = s; i < s + l; i++) covered[i] = true;
            float score = 1f / (1 + m.Rank);
            if (!best.TryGetValue(m.Node, out float old) || score > old) best[m.Node] = score;
        }
        int c = 0;
        foreach (bool b in covered) c += b ? 1 : 0;
        LinkedCoverage = c / (float)Tokens.Count;
        var seeds = new List<ScoredDoc>(best.Count);
        foreach (var (node, score) in best) seeds.Add(new ScoredDoc(node, score));
        seeds.Sort((a, b) => b.Score != a.Score ? b.Score.CompareTo(a.Score) : a.Doc.CompareTo(b.Doc));
        if (seeds.Count > 5) seeds.RemoveRange(5, seeds.Count - 5);
        return seeds;
    }
}
