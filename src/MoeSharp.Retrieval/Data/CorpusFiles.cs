using System.Text;
using System.Text.Json;

namespace MoeSharp.Retrieval.Data;

/// <summary>Reads a corpus from a JSONL file of documents and an optional TSV file of edges, refusing text that is not UTF-8.</summary>
public static class CorpusFiles
{
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
    public static Corpus Read(string docsPath, string? edgesPath)
    {
        var corpus = new Corpus();
        var index = new Dictionary<string, int>(StringComparer.Ordinal);
        var lines = ReadLines(docsPath);
        for (int i = 0; i < lines.Count; i++)
        {
            if (lines[i].Trim().Length == 0) continue;
            JsonElement root;
            try
            {
                root = JsonDocument.Parse(lines[i]).RootElement;
            }
            catch (JsonException ex)
            {
                throw new InvalidDataException($"{docsPath}: line {i + 1} is not JSON ({ex.Message})");
            }
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
        if (edgesPath is null) return corpus;
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
        return corpus;
    }

    private static string Field(JsonElement root, string name, string path, int line) =>
        root.ValueKind == JsonValueKind.Object && root.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String
            ? v.GetString()! : throw new InvalidDataException($"{path}: line {line + 1}: expected a string field '{name}'");
}
