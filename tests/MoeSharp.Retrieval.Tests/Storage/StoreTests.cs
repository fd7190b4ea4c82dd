using MoeSharp.Retrieval.Data;
using MoeSharp.Retrieval.Storage;

namespace MoeSharp.Retrieval.Tests.Storage;

public sealed class StoreTests
{
    /// <summary>BM25 with FTS5's constants, computed here from the token lists: the independent reference.</summary>
    private static Dictionary<int, double> Bm25Reference(Corpus c, string[] terms)
    {
        var docs = c.Documents.Select(d => TextNormalizer.Tokens(d.Text)).ToList();
        double avgdl = docs.Average(d => d.Count), n = docs.Count;
        var scores = new Dictionary<int, double>();
        foreach (var t in terms)
        {
            int df = docs.Count(d => d.Contains(t));
            double idf = Math.Log((n - df + 0.5) / (df + 0.5));
            if (idf <= 0) idf = 1e-6;
            for (int i = 0; i < docs.Count; i++)
            {
                int tf = docs[i].Count(x => x == t);
                if (tf == 0) continue;
                scores[i] = scores.GetValueOrDefault(i) + idf * tf * 2.2 / (tf + 1.2 * (0.25 + 0.75 * docs[i].Count / avgdl));
            }
        }
        return scores;
    }

    private static void CheckBm25(IRetrievalStore store)
    {
        var corpus = TestCorpus.Make();
        foreach (var terms in new[] { new[] { "car" }, new[] { "vehicle", "taxi" }, new[] { "a", "dog" }, new[] { "zebra" } })
        {
            var expected = Bm25Reference(corpus, terms);
            var hits = store.Bm25(terms, 20);
            Assert.Equal(expected.Count, hits.Length);
            foreach (var h in hits) Assert.Equal(expected[h.Doc], h.Score, 1e-5 * Math.Max(1, expected[h.Doc]));
            for (int i = 1; i < hits.Length; i++) Assert.True(hits[i].Score <= hits[i - 1].Score);
        }
    }

    private static void CheckWalk(IRetrievalStore store)
    {
        // car →part wheel/engine/brake (1 · 0.5), car →hyponym cab (0.05 · 0.5), cab →part meter (0.025 · 0.5).
        var w = new Dictionary<string, double> { ["part_meronym"] = 0.5, ["hyponym"] = 0.025 };
        var hits = store.Walk([new ScoredDoc(0, 1f)], w, 2, 10);
        Assert.Equal([1, 2, 3, 4, 5], hits.Select(h => h.Doc));
        Assert.Equal([0.5f, 0.5f, 0.5f, 0.025f, 0.0125f], hits.Select(h => h.Score));
        Assert.Equal([1, 2, 3, 4], store.Walk([new ScoredDoc(0, 1f)], w, 1, 10).Select(h => h.Doc));
    }

    [Fact]
    public void SqliteBm25MatchesTheFormulaAndWalksFollowTypedEdges()
    {
        using var tmp = new TempDir();
        using var store = SqliteStore.Open(TestCorpus.WriteSqlite(tmp.Path));
        Assert.Equal(10, store.DocumentCount);
        CheckBm25(store);
        CheckWalk(store);
        Assert.Equal(["hyponym", "part_meronym"], store.EdgeTypes());
        Assert.Equal(5, store.Queries().Count);
    }

    [Fact]
    public void FailedRebuildLeavesThePreviousIndex()
    {
        using var tmp = new TempDir();
        string path = TestCorpus.WriteSqlite(tmp.Path);
        var bad = TestCorpus.Make();
        bad.Edges.Add(new Edge(0, 99, "part_meronym"));
        var enc = new HashEncoder();
        var ex = Assert.Throws<InvalidDataException>(() => SqliteStore.Write(path, bad, enc.Encode(bad.Documents.Select(d => d.Text).ToList()), enc.Dimension, enc.Name));
        Assert.Contains("outside 0..9", ex.Message);
        using var store = SqliteStore.Open(path);
        Assert.Equal(10, store.DocumentCount);
        Assert.Single(Directory.GetFiles(tmp.Path, "*.hnsw"));
        Assert.Empty(Directory.GetFiles(tmp.Path, "*.tmp"));
    }

    [Fact]
    public void MissingOrCorruptedDatabaseIsOneClearError()
    {
        using var tmp = new TempDir();
        string missing = Path.Combine(tmp.Path, "none.sqlite");
        Assert.Contains("not found", Assert.Throws<FileNotFoundException>(() => SqliteStore.Open(missing)).Message);
        string junk = Path.Combine(tmp.Path, "junk.sqlite");
        File.WriteAllText(junk, new string('x', 4096));
        Assert.Contains("not a readable index database", Assert.Throws<InvalidDataException>(() => SqliteStore.Open(junk)).Message);
    }

    /// <summary>The same index in PostgreSQL answers every kind of query exactly as SQLite does.</summary>
    [Fact]
    public void PostgresGivesTheSameResultsAsSqlite()
    {
        string? pg = Environment.GetEnvironmentVariable("MOESHARP_POSTGRES");
        if (pg is null) Assert.Skip("MOESHARP_POSTGRES is not set (run under .ci/run, or eval \"$(bash .ci/postgres.sh start)\")");
        using var tmp = new TempDir();
        var corpus = TestCorpus.Make();
        var enc = new HashEncoder();
        var vectors = enc.Encode(corpus.Documents.Select(d => d.Text).ToList());
        PostgresStore.Write(pg, corpus, vectors, enc.Dimension, enc.Name);
        using var lite = SqliteStore.Open(TestCorpus.WriteSqlite(tmp.Path));
        using var post = PostgresStore.Open(pg);
        CheckBm25(post);
        CheckWalk(post);
        var a = new HybridRetriever(lite, enc);
        var b = new HybridRetriever(post, enc);
        foreach (var q in new[] { "a part of a car", "sea anemone", "young dog driven by a taxi", "a kind of dog" })
            foreach (var mode in new[] { MoeSharp.Retrieval.Gating.FusionMode.Vector, MoeSharp.Retrieval.Gating.FusionMode.Keyword, MoeSharp.Retrieval.Gating.FusionMode.Graph, MoeSharp.Retrieval.Gating.FusionMode.Rrf })
            {
                var x = a.Retrieve(q, 10, mode).Fused;
                var y = b.Retrieve(q, 10, mode).Fused;
                Assert.Equal(x.Select(h => h.Doc), y.Select(h => h.Doc));
                for (int i = 0; i < x.Length; i++) Assert.Equal(x[i].Score, y[i].Score, 1e-5f * Math.Max(1, Math.Abs(x[i].Score)));
            }
    }
}
