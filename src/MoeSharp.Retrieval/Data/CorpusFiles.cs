using System.Text;
using System.Text.Json;

namespace MoeSharp.Retrieval.Data;

/// <summary>
/// Reads a corpus from a JSONL file of documents, an optional TSV file of edges and an optional JSONL file of labelled
/// queries, refusing text that is not UTF-8.
/// </summary>
public static class CorpusFiles
{
    /// <summary>The kind given to a query whose line has no "kind".</summary>
    public const string DefaultQueryKind = "user";

    /// <summary>One query in this many goes to the test split when its line has no "split" (as WordNet holds out one anchor in four).</summary>
    public const int TestEvery = 4;

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>All lines of a UTF-8 text file; a byte sequence that is not UTF-8 is an <see cref="InvalidDataException"/> naming the file and line.</summary>
    public static List<string> ReadLines(string path)
    {
        if (Directory.Exists(path)) throw new IOException($"{path}: is a directory, expected a file");
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: file not found");
        var bytes = File.ReadAllBytes(path);
        var lines = new List<string>();
        int start = 0, line = 1;
        for (int i = 0; i <= bytes.Length; i++)
        {
            if (i < bytes.Length && bytes[i] != (byte)'\n') continue;
            try
            {
                lines.Add(StrictUtf8.GetString(bytes, start, i - start).TrimEnd('\r'));
            }
            catch (DecoderFallbackException)
            {
                throw new InvalidDataException($"{path}: line {line} is not valid UTF-8");
            }
            start = i + 1;
            line++;
        }
        if (lines.Count > 0 && lines[^1].Length == 0) lines.RemoveAt(lines.Count - 1);
        return lines;
    }

    /// <summary>
    /// Documents, one JSON object a line: <c>{"id": "...", "text": "...", "names": ["..."]}</c> (names optional; the
    /// entity linker finds a document's node by them). Edges, one a line: <c>source-id TAB type TAB target-id</c>.
    /// </summary>
    /// <param name="docsPath">The documents' JSONL file.</param>
    /// <param name="edgesPath">The edges' TSV file, or null for none.</param>
    /// <param name="queriesPath">The labelled queries' JSONL file (see <see cref="ReadQueries"/>), or null for none.</param>
    public static Corpus Read(string docsPath, string? edgesPath, string? queriesPath = null)
    {
        var corpus = new Corpus();
        var index = new Dictionary<string, int>(StringComparer.Ordinal);
        var lines = ReadLines(docsPath);
        for (int i = 0; i < lines.Count; i++)
        {
            if (lines[i].Trim().Length == 0) continue;
            JsonElement root = ParseLine(lines[i], docsPath, i);
            string id = Field(root, "id", docsPath, i);
            string text = Field(root, "text", docsPath, i);
            var names = new List<EntityName>();
            if (root.TryGetProperty("names", out var arr))
            {
                if (arr.ValueKind != JsonValueKind.Array) throw new InvalidDataException($"{docsPath}: line {i + 1}: 'names' must be an array of strings");
                foreach (var n in arr.EnumerateArray())
                    if (n.ValueKind == JsonValueKind.String) names.Add(new EntityName(TextNormalizer.Normalize(n.GetString()!), 0));
            }
            if (!index.TryAdd(id, corpus.Documents.Count)) throw new InvalidDataException($"{docsPath}: line {i + 1}: document id '{id}' appears twice");
            corpus.Documents.Add(new Document(id, text, names.ToArray()));
        }
        if (corpus.Documents.Count == 0) throw new InvalidDataException($"{docsPath}: no documents");
        if (edgesPath is not null) ReadEdges(corpus, index, edgesPath);
        if (queriesPath is not null) AddQueries(corpus, index, queriesPath);
        return corpus;
    }

    private static void ReadEdges(Corpus corpus, Dictionary<string, int> index, string edgesPath)
    {
        var edges = ReadLines(edgesPath);
        for (int i = 0; i < edges.Count; i++)
        {
            if (edges[i].Trim().Length == 0) continue;
            var parts = edges[i].Split('\t');
            if (parts.Length != 3) throw new InvalidDataException($"{edgesPath}: line {i + 1}: expected 'source TAB type TAB target', got {parts.Length} fields");
            if (!index.TryGetValue(parts[0], out int s)) throw new InvalidDataException($"{edgesPath}: line {i + 1}: unknown node '{parts[0]}' (no document has that id)");
            if (!index.TryGetValue(parts[2], out int t)) throw new InvalidDataException($"{edgesPath}: line {i + 1}: unknown node '{parts[2]}' (no document has that id)");
            corpus.Edges.Add(new Edge(s, t, parts[1]));
        }
    }

    /// <summary>
    /// Labelled queries, one JSON object a line: <c>{"query": "...", "relevant": ["doc-id", ...], "kind": "...",
    /// "split": "train"|"test"}</c>. "kind" (default <see cref="DefaultQueryKind"/>) groups the evaluation's rows;
    /// without "split", one query text in <see cref="TestEvery"/>, by a fixed hash of its normalized form, is held out,
    /// so a query repeated on several lines always lands in one split.
    /// </summary>
    /// <param name="corpus">The corpus whose documents the relevant ids name; the queries are added to it.</param>
    /// <param name="path">The queries' JSONL file.</param>
    public static void ReadQueries(Corpus corpus, string path)
    {
        var index = new Dictionary<string, int>(corpus.Documents.Count, StringComparer.Ordinal);
        for (int d = 0; d < corpus.Documents.Count; d++) index[corpus.Documents[d].Id] = d;
        AddQueries(corpus, index, path);
    }

    /// <summary>Line <paramref name="i"/> (0-based) of a JSONL file as a JSON value, or one error naming the file and line.</summary>
    private static JsonElement ParseLine(string line, string path, int i)
    {
        try
        {
            return JsonDocument.Parse(line).RootElement;
        }
        catch (JsonException ex)
        {
            throw new InvalidDataException($"{path}: line {i + 1} is not JSON ({ex.Message})");
        }
    }

    private static void AddQueries(Corpus corpus, Dictionary<string, int> index, string path)
    {
        var lines = ReadLines(path);
        int added = 0;
        for (int i = 0; i < lines.Count; i++)
        {
            if (lines[i].Trim().Length == 0) continue;
            JsonElement root = ParseLine(lines[i], path, i);
            string text = Field(root, "query", path, i);
            string normalized = TextNormalizer.Normalize(text);
            if (normalized.Length == 0) throw new InvalidDataException($"{path}: line {i + 1}: the query is empty");
            if (!root.TryGetProperty("relevant", out var arr) || arr.ValueKind != JsonValueKind.Array)
                throw new InvalidDataException($"{path}: line {i + 1}: expected 'relevant', an array of document ids");
            var relevant = new SortedSet<int>();
            foreach (var r in arr.EnumerateArray())
            {
                if (r.ValueKind != JsonValueKind.String) throw new InvalidDataException($"{path}: line {i + 1}: 'relevant' must hold document ids as strings, got {r.ValueKind}");
                string id = r.GetString()!;
                if (!index.TryGetValue(id, out int doc)) throw new InvalidDataException($"{path}: line {i + 1}: unknown document id '{id}' in 'relevant'");
                relevant.Add(doc);
            }
            if (relevant.Count == 0) throw new InvalidDataException($"{path}: line {i + 1}: 'relevant' is empty, expected at least one document id");
            string kind = Optional(root, "kind", path, i) ?? DefaultQueryKind;
            // "all" is the evaluation's row over every kind; a kind of that name would be merged into it.
            if (kind.Trim().Length == 0 || kind == "all") throw new InvalidDataException($"{path}: line {i + 1}: 'kind' is '{kind}', expected a non-empty label other than 'all'");
            string split = Optional(root, "split", path, i) ?? (IsTest(normalized) ? "test" : "train");
            if (split is not ("train" or "test")) throw new InvalidDataException($"{path}: line {i + 1}: 'split' is '{split}', expected 'train' or 'test'");
            corpus.Queries.Add(new LabeledQuery(kind, split, text, [.. relevant]));
            added++;
        }
        if (added == 0) throw new InvalidDataException($"{path}: no queries");
    }

    // FNV-1a over the normalized text's UTF-8, then the same multiplicative scramble as WordNet's split: stable across
    // processes and runtimes, unlike string.GetHashCode.
    private static bool IsTest(string normalized)
    {
        ulong h = 14695981039346656037UL;
        foreach (byte b in Encoding.UTF8.GetBytes(normalized)) h = unchecked((h ^ b) * 1099511628211UL);
        return unchecked(h * 2654435761UL) % TestEvery == 0;
    }

    private static string? Optional(JsonElement root, string name, string path, int line)
    {
        if (!root.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null) return null;
        return v.ValueKind == JsonValueKind.String ? v.GetString()! : throw new InvalidDataException($"{path}: line {line + 1}: '{name}' must be a string");
    }

    private static string Field(JsonElement root, string name, string path, int line) =>
        root.ValueKind == JsonValueKind.Object && root.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String
            ? v.GetString()! : throw new InvalidDataException($"{path}: line {line + 1}: expected a string field '{name}'");
}
