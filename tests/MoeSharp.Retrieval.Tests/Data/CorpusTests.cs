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
