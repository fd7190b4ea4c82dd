using System.Globalization;

namespace MoeSharp.Retrieval.Data;

/// <summary>Settings of <see cref="WordNetCorpus.Load"/>.</summary>
public sealed class WordNetOptions
{
    /// <summary>Most noun synsets to index (0 = all 82,115); a subset keeps whole neighbourhoods of the graph queries' anchors.</summary>
    public int MaxSynsets { get; init; }

    /// <summary>Most queries generated of each kind.</summary>
    public int QueriesPerKind { get; init; } = 400;

    /// <summary>One anchor synset in this many goes to the test split.</summary>
    public int TestEvery { get; init; } = 4;
}

/// <summary>
/// WordNet 3.0 nouns as a retrieval corpus: a synset is a document ("lemmas: gloss") and a graph node, its pointers
/// are typed edges, its lemmas are the names the entity linker knows (ranked by sense order in index.noun). Three
/// kinds of labelled queries, each built so that one expert should win:
/// <list type="bullet">
/// <item><b>vector</b>: the synset's definition with every word that has a WordNet synonym replaced by it and the
/// synset's own lemmas removed (a paraphrase that shares meaning, not words); relevant: the synset.</item>
/// <item><b>keyword</b>: a multi-word lemma, or a single-word lemma of at least 9 letters, that names only this
/// synset, typed as is; relevant: the synset.</item>
/// <item><b>graph</b>: "a part of a X", "a kind of X", "a member of X" for a synset that is X's first sense, with
/// 2 to 40 part-meronym, hyponym or member-meronym pointers; relevant: their targets.</item>
/// </list>
/// Queries are split by their anchor synset (the relevant synset, or X): one anchor in <see cref="WordNetOptions.TestEvery"/>
/// by a hash of its offset is held out, so a test query never shares its anchor with a training query.
/// </summary>
public static class WordNetCorpus
{
    private static readonly Dictionary<string, string> PointerTypes = new(StringComparer.Ordinal)
    {
        ["@"] = "hypernym", ["@i"] = "instance_hypernym", ["~"] = "hyponym", ["~i"] = "instance_hyponym",
        ["#m"] = "member_holonym", ["#s"] = "substance_holonym", ["#p"] = "part_holonym",
        ["%m"] = "member_meronym", ["%s"] = "substance_meronym", ["%p"] = "part_meronym", ["="] = "attribute",
    };

    private sealed record Synset(long Offset, string[] Lemmas, List<(string Type, long Target)> Pointers, string Gloss);

    /// <summary>Reads <c>data.noun</c> and <c>index.noun</c> (and the other parts of speech for synonyms) from <paramref name="dir"/>.</summary>
    public static Corpus Load(string dir, WordNetOptions? options = null)
    {
        options ??= new WordNetOptions();
        if (!Directory.Exists(dir)) throw new DirectoryNotFoundException($"{dir}: WordNet folder not found");
        var synsets = ReadData(Path.Combine(dir, "data.noun"));
        var senses = ReadIndex(Path.Combine(dir, "index.noun"));
        var synonyms = Synonyms(dir, synsets, senses);
        var chosen = Choose(synsets, options.MaxSynsets);
        var corpus = new Corpus();
        var index = new Dictionary<long, int>();
        foreach (long off in chosen)
        {
            var s = synsets[off];
            index[off] = corpus.Documents.Count;
            var names = new List<EntityName>();
            foreach (var l in s.Lemmas)
            {
                int rank = senses.TryGetValue(l.ToLowerInvariant(), out var list) ? Math.Max(0, list.IndexOf(off)) : 0;
                names.Add(new EntityName(TextNormalizer.Normalize(l.Replace('_', ' ')), rank));
            }
            string lemmas = string.Join(", ", s.Lemmas.Select(l => l.Replace('_', ' ')));
            corpus.Documents.Add(new Document($"n{off:D8}", $"{lemmas}: {s.Gloss}", names.ToArray()));
        }
        foreach (long off in chosen)
            foreach (var (type, target) in synsets[off].Pointers)
                if (index.TryGetValue(target, out int t)) corpus.Edges.Add(new Edge(index[off], t, type));
        AddQueries(corpus, synsets, senses, synonyms, chosen, index, options);
        return corpus;
    }

    private static bool IsTest(long offset, int every) => unchecked((ulong)offset * 2654435761UL) % (ulong)every == 0;

    private static List<long> Choose(Dictionary<long, Synset> synsets, int max)
    {
        var all = synsets.Keys.OrderBy(o => unchecked((ulong)o * 11400714819323198485UL)).ThenBy(o => o).ToList();
        if (max <= 0 || max >= all.Count) return synsets.Keys.Order().ToList();
        var set = new HashSet<long>();
        // Anchors with their relational neighbourhoods first, so graph queries have all their answers indexed.
        foreach (long off in all)
        {
            if (set.Count >= max * 6 / 10) break;
            var s = synsets[off];
            var targets = s.Pointers.Where(p => p.Type is "part_meronym" or "member_meronym" or "hyponym").Select(p => p.Target).ToList();
            if (targets.Count < 2 || targets.Count > 40 || set.Count + 1 + s.Pointers.Count > max) continue;
            set.Add(off);
            foreach (var p in s.Pointers) if (synsets.ContainsKey(p.Target)) set.Add(p.Target);
        }
        foreach (long off in all)
        {
            if (set.Count >= max) break;
            set.Add(off);
        }
        return set.Order().ToList();
    }

    private static void AddQueries(Corpus corpus, Dictionary<long, Synset> synsets, Dictionary<string, List<long>> senses,
        Dictionary<string, string> synonyms, List<long> chosen, Dictionary<long, int> index, WordNetOptions o)
    {
        var order = chosen.OrderBy(x => unchecked((ulong)x * 6364136223846793005UL) >> 7).ThenBy(x => x).ToList();
        int graph = 0, keyword = 0, vector = 0;
        string[] relations = ["part_meronym", "hyponym", "member_meronym"];
        foreach (long off in order)
        {
            var s = synsets[off];
            string split = IsTest(off, o.TestEvery) ? "test" : "train";
            int doc = index[off];
            if (graph < o.QueriesPerKind)
            {
                string lemma = s.Lemmas[0].ToLowerInvariant();
                bool firstSense = senses.TryGetValue(lemma, out var list) && list.Count > 0 && list[0] == off;
                foreach (var rel in relations)
                {
                    if (!firstSense || graph >= o.QueriesPerKind) break;
                    var targets = s.Pointers.Where(p => p.Type == rel || (rel == "hyponym" && p.Type == "instance_hyponym"))
                        .Select(p => p.Target).Distinct().ToList();
                    if (targets.Count < 2 || targets.Count > 40 || !targets.All(index.ContainsKey)) continue;
                    string x = lemma.Replace('_', ' ');
                    string text = rel switch { "part_meronym" => $"a part of a {x}", "hyponym" => $"a kind of {x}", _ => $"a member of {x}" };
                    corpus.Queries.Add(new LabeledQuery("graph", split, text, targets.Select(t => index[t]).Order().ToArray()));
                    graph++;
                }
            }
            if (keyword < o.QueriesPerKind)
            {
                foreach (var l in s.Lemmas)
                {
                    string key = l.ToLowerInvariant();
                    bool multi = key.Contains('_');
                    if (!(multi || key.Length >= 9) || !senses.TryGetValue(key, out var only) || only.Count != 1) continue;
                    corpus.Queries.Add(new LabeledQuery("keyword", split, l.Replace('_', ' '), [doc]));
                    keyword++;
                    break;
                }
            }
            if (vector < o.QueriesPerKind)
            {
                string def = s.Gloss.Split(';')[0].Trim();
                var own = new HashSet<string>(s.Lemmas.SelectMany(l => TextNormalizer.Tokens(l.Replace('_', ' '))), StringComparer.Ordinal);
                var words = TextNormalizer.Tokens(def);
                if (words.Count < 6 || def.Contains('"')) continue;
                var para = new List<string>();
                int changed = 0;
                foreach (var w in words)
                {
                    if (own.Contains(w)) continue;
                    if (!TextNormalizer.StopWords.Contains(w) && Synonym(synonyms, w) is { } syn)
                    {
                        foreach (var t in syn.Split(' ')) if (!own.Contains(t)) para.Add(t);
                        changed++;
                    }
                    else para.Add(w);
                }
                if (changed < 2) continue;
                corpus.Queries.Add(new LabeledQuery("vector", split, string.Join(' ', para), [doc]));
                vector++;
            }
        }
    }

    private static readonly (string Suffix, string Base)[] Inflections =
        [("ies", "y"), ("es", ""), ("s", ""), ("ing", ""), ("ing", "e"), ("ed", ""), ("ed", "e"), ("er", ""), ("est", "")];

    /// <summary>The synonym of <paramref name="word"/> or, failing that, of its base form with a regular inflection removed.</summary>
    private static string? Synonym(Dictionary<string, string> map, string word)
    {
        if (map.TryGetValue(word, out var s)) return s;
        foreach (var (suffix, stem) in Inflections)
            if (word.Length > suffix.Length + 2 && word.EndsWith(suffix, StringComparison.Ordinal) && map.TryGetValue(word[..^suffix.Length] + stem, out s))
                return s;
        return null;
    }

    /// <summary>For each word, another lemma of its most common synset in any part of speech (one word if there is one).</summary>
    private static Dictionary<string, string> Synonyms(string dir, Dictionary<long, Synset> nouns, Dictionary<string, List<long>> nounIndex)
    {
        var map = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var pos in new[] { "noun", "verb", "adj", "adv" })
        {
            var data = pos == "noun" ? nouns : ReadData(Path.Combine(dir, "data." + pos));
            foreach (var (lemma, offsets) in pos == "noun" ? nounIndex : ReadIndex(Path.Combine(dir, "index." + pos)))
            {
                if (map.ContainsKey(lemma) || lemma.Contains('_') || offsets.Count == 0 || !data.TryGetValue(offsets[0], out var s)) continue;
                // A one-word synonym if the synset has one ("have" → "hold", not "have got"), else a phrase.
                string? phrase = null;
                foreach (var other in s.Lemmas)
                {
                    string o = other.ToLowerInvariant();
                    if (o == lemma || o.Contains('-')) continue;
                    if (!o.Contains('_')) { map[lemma] = o; phrase = null; break; }
                    phrase ??= o.Replace('_', ' ');
                }
                if (phrase is not null) map[lemma] = phrase;
            }
        }
        return map;
    }

    private static Dictionary<long, Synset> ReadData(string path)
    {
        var map = new Dictionary<long, Synset>();
        var lines = CorpusFiles.ReadLines(path);
        for (int n = 0; n < lines.Count; n++)
        {
            string line = lines[n];
            if (line.StartsWith("  ", StringComparison.Ordinal) || line.Length == 0) continue;
            try
            {
                int bar = line.IndexOf(" | ", StringComparison.Ordinal);
                string gloss = bar >= 0 ? line[(bar + 3)..].Trim() : "";
                var f = (bar >= 0 ? line[..bar] : line).Split(' ', StringSplitOptions.RemoveEmptyEntries);
                long offset = long.Parse(f[0], CultureInfo.InvariantCulture);
                int words = int.Parse(f[3], NumberStyles.HexNumber, CultureInfo.InvariantCulture);
                var lemmas = new string[words];
                for (int w = 0; w < words; w++)
                {
                    string l = f[4 + 2 * w];
                    int paren = l.IndexOf('(');
                    lemmas[w] = paren >= 0 ? l[..paren] : l;
                }
                int p = 4 + 2 * words;
                int pointers = int.Parse(f[p], CultureInfo.InvariantCulture);
                var ptrs = new List<(string, long)>(pointers);
                for (int i = 0; i < pointers; i++)
                {
                    string sym = f[p + 1 + 4 * i];
                    string pos = f[p + 3 + 4 * i];
                    if (pos == "n" && PointerTypes.TryGetValue(sym, out var type))
                        ptrs.Add((type, long.Parse(f[p + 2 + 4 * i], CultureInfo.InvariantCulture)));
                }
                map[offset] = new Synset(offset, lemmas, ptrs, gloss);
            }
            catch (Exception ex) when (ex is FormatException or IndexOutOfRangeException or OverflowException)
            {
                throw new InvalidDataException($"{path}: line {n + 1} is not a WordNet data line ({ex.Message})");
            }
        }
        return map;
    }

    private static Dictionary<string, List<long>> ReadIndex(string path)
    {
        var map = new Dictionary<string, List<long>>(StringComparer.Ordinal);
        var lines = CorpusFiles.ReadLines(path);
        for (int n = 0; n < lines.Count; n++)
        {
            string line = lines[n];
            if (line.StartsWith("  ", StringComparison.Ordinal) || line.Length == 0) continue;
            var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (f.Length < 4 || !int.TryParse(f[2], CultureInfo.InvariantCulture, out int count) || count > f.Length)
                throw new InvalidDataException($"{path}: line {n + 1} is not a WordNet index line");
            var offsets = new List<long>(count);
            for (int i = f.Length - count; i < f.Length; i++) offsets.Add(long.Parse(f[i], CultureInfo.InvariantCulture));
            map[f[0]] = offsets;
        }
        return map;
    }
}
