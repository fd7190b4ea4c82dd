using MoeSharp.Retrieval.Data;

namespace MoeSharp.Retrieval.Tests.Data;

public sealed class CorpusTests
{
    [Fact]
    public void JsonlDocumentsAndTsvEdgesAreRead()
    {
        using var tmp = new TempDir();
        string docs = Path.Combine(tmp.Path, "d.jsonl"), edges = Path.Combine(tmp.Path, "e.tsv");
        File.WriteAllText(docs, "{\"id\":\"a\",\"text\":\"alpha\",\"names\":[\"Alpha-One\"]}\n{\"id\":\"b\",\"text\":\"beta\"}\n");
        File.WriteAllText(edges, "a\tpart_meronym\tb\n");
        var c = CorpusFiles.Read(docs, edges);
        Assert.Equal(2, c.Documents.Count);
        Assert.Equal("alpha one", c.Documents[0].Names[0].Name);
        Assert.Equal(new Edge(0, 1, "part_meronym"), c.Edges[0]);
    }

    [Fact]
    public void BadCorporaAreRefusedNamingFileAndLine()
    {
        using var tmp = new TempDir();
        string docs = Path.Combine(tmp.Path, "d.jsonl"), edges = Path.Combine(tmp.Path, "e.tsv");
        File.WriteAllBytes(docs, [.. "{\"id\":\"a\",\"text\":\"ok\"}\n"u8, .. "{\"id\":\"b\",\"text\":\"caf"u8, 0xE9, .. "\"}\n"u8]);
        var ex = Assert.Throws<InvalidDataException>(() => CorpusFiles.Read(docs, null));
        Assert.Contains("line 2 is not valid UTF-8", ex.Message);
        File.WriteAllText(docs, "{\"id\":\"a\",\"text\":\"ok\"}\n");
        File.WriteAllText(edges, "a\thyponym\tzzz\n");
        Assert.Contains("line 1: unknown node 'zzz'", Assert.Throws<InvalidDataException>(() => CorpusFiles.Read(docs, edges)).Message);
    }

    [Fact]
    public void JsonlQueriesAreReadWithKindAndASplitByQueryText()
    {
        using var tmp = new TempDir();
        string docs = Path.Combine(tmp.Path, "d.jsonl"), queries = Path.Combine(tmp.Path, "q.jsonl");
        File.WriteAllText(docs, "{\"id\":\"a\",\"text\":\"alpha\"}\n{\"id\":\"b\",\"text\":\"beta\"}\n");
        var lines = new List<string>
        {
            "{\"query\":\"first\",\"relevant\":[\"b\",\"a\",\"b\"],\"kind\":\"faq\",\"split\":\"test\"}",
            "",
            "{\"query\":\"second\",\"relevant\":[\"a\"],\"split\":\"train\"}",
        };
        // Hand-checked in Python (FNV-1a 64 of the UTF-8, times 2654435761, mod 4 == 0 is test): of "query 0" ..
        // "query 11", exactly 1, 5, 9 and 10 are held out; the text is normalized first, so "Query  9!" is "query 9".
        for (int i = 0; i < 12; i++) lines.Add($"{{\"query\":\"{(i == 9 ? "Query  9!" : $"query {i}")}\",\"relevant\":[\"a\"]}}");
        File.WriteAllText(queries, string.Join('\n', lines) + "\n");
        var c = CorpusFiles.Read(docs, null, queries);
        Assert.Equal(14, c.Queries.Count);
        Assert.Equal(("faq", "test", "first"), (c.Queries[0].Kind, c.Queries[0].Split, c.Queries[0].Text));
        Assert.Equal([0, 1], c.Queries[0].Relevant);
        Assert.Equal(("user", "train"), (c.Queries[1].Kind, c.Queries[1].Split));
        int[] held = [1, 5, 9, 10];
        for (int i = 0; i < 12; i++) Assert.Equal(held.Contains(i) ? "test" : "train", c.Queries[2 + i].Split);
    }

    [Theory]
    [InlineData("{\"query\":\"x\",\"relevant\":[\"a\"]", "line 2 is not JSON")]
    [InlineData("{\"query\":\" ?! \",\"relevant\":[\"a\"]}", "line 2: the query is empty")]
    [InlineData("{\"relevant\":[\"a\"]}", "line 2: expected a string field 'query'")]
    [InlineData("{\"query\":\"x\",\"relevant\":[]}", "line 2: 'relevant' is empty")]
    [InlineData("{\"query\":\"x\"}", "line 2: expected 'relevant', an array of document ids")]
    [InlineData("{\"query\":\"x\",\"relevant\":[\"zzz\"]}", "line 2: unknown document id 'zzz'")]
    [InlineData("{\"query\":\"x\",\"relevant\":[1]}", "line 2: 'relevant' must hold document ids as strings")]
    [InlineData("{\"query\":\"x\",\"relevant\":[\"a\"],\"split\":\"dev\"}", "line 2: 'split' is 'dev', expected 'train' or 'test'")]
    [InlineData("{\"query\":\"x\",\"relevant\":[\"a\"],\"kind\":\"all\"}", "line 2: 'kind' is 'all'")]
    public void BadQueriesAreRefusedNamingFileAndLine(string line, string expected)
    {
        using var tmp = new TempDir();
        string docs = Path.Combine(tmp.Path, "d.jsonl"), queries = Path.Combine(tmp.Path, "q.jsonl");
        File.WriteAllText(docs, "{\"id\":\"a\",\"text\":\"alpha\"}\n");
        File.WriteAllText(queries, "{\"query\":\"fine\",\"relevant\":[\"a\"]}\n" + line + "\n");
        var ex = Assert.Throws<InvalidDataException>(() => CorpusFiles.Read(docs, null, queries));
        Assert.StartsWith(queries + ": ", ex.Message);
        Assert.Contains(expected, ex.Message);
    }

    [Fact]
    public void WordNetQueriesHaveThreeKindsAndDisjointSplits()
    {
        string dir = TestPaths.Shared("datasets/wordnet") ?? throw new InvalidOperationException("../shared/datasets/wordnet is missing");
        var c = WordNetCorpus.Load(dir, new WordNetOptions { MaxSynsets = 400, QueriesPerKind = 30 });
        Assert.Equal(400, c.Documents.Count);
        foreach (var kind in new[] { "vector", "keyword", "graph" })
        {
            var qs = c.Queries.Where(q => q.Kind == kind).ToList();
            Assert.True(qs.Count >= 10, $"{kind}: only {qs.Count} queries");
            Assert.Contains(qs, q => q.Split == "test");
            Assert.Contains(qs, q => q.Split == "train");
        }
        // Held out by synset: no relevant synset of a test vector/keyword query is the answer to a training one.
        var trainTargets = c.Queries.Where(q => q.Split == "train" && q.Kind != "graph").SelectMany(q => q.Relevant).ToHashSet();
        Assert.DoesNotContain(c.Queries.Where(q => q.Split == "test" && q.Kind != "graph").SelectMany(q => q.Relevant), trainTargets.Contains);
        // Every graph query's answers are exactly its anchor's edges of the named type.
        foreach (var q in c.Queries.Where(q => q.Kind == "graph"))
        {
            string type = q.Text.StartsWith("a part", StringComparison.Ordinal) ? "part_meronym" : q.Text.StartsWith("a kind", StringComparison.Ordinal) ? "hyponym" : "member_meronym";
            var sources = c.Edges.Where(e => e.Type == type || (type == "hyponym" && e.Type == "instance_hyponym"))
                .GroupBy(e => e.Source).Where(g => g.Select(e => e.Target).Distinct().Order().SequenceEqual(q.Relevant)).ToList();
            Assert.NotEmpty(sources);
        }
        // The paraphrase shares meaning, not the synset's own lemmas.
        foreach (var q in c.Queries.Where(q => q.Kind == "vector"))
        {
            var names = c.Documents[q.Relevant[0]].Names.SelectMany(n => n.Name.Split(' ')).ToHashSet();
            Assert.DoesNotContain(TextNormalizer.Tokens(q.Text), names.Contains);
        }
    }
}
