using MoeSharp.Tests.Cli;

namespace MoeSharp.Retrieval.Tests.Cli;

public sealed class RagCommandTests
{
    private static string WriteDocs(string dir)
    {
        string docs = Path.Combine(dir, "d.jsonl");
        File.WriteAllText(docs, string.Join('\n',
            "{\"id\":\"car\",\"text\":\"car: a motor vehicle with four wheels\",\"names\":[\"car\"]}",
            "{\"id\":\"wheel\",\"text\":\"wheel: a circular frame that turns on an axle\",\"names\":[\"wheel\"]}",
            "{\"id\":\"puppy\",\"text\":\"puppy: a young dog\",\"names\":[\"puppy\"]}") + "\n");
        File.WriteAllText(Path.Combine(dir, "e.tsv"), "car\tpart_meronym\twheel\n");
        return docs;
    }

    [Fact]
    public async Task IndexesJsonlAndExplainsAQuery()
    {
        using var tmp = new TempDir();
        string docs = WriteDocs(tmp.Path), db = Path.Combine(tmp.Path, "x.sqlite");
        var r = await MoeCli.Run("rag", "index", "--docs", docs, "--edges", Path.Combine(tmp.Path, "e.tsv"), "--db", db);
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Contains("indexed 3 documents, 1 edges", r.Stdout);
        r = await MoeCli.Run("rag", "query", "--db", db, "a part of a car", "--mode", "rrf", "--k", "2", "--explain");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Contains("graph:", r.Stdout);
        Assert.Contains("fused:", r.Stdout);
        Assert.Contains("wheel", r.Stdout.Split("graph:")[1]);
        // The real MiniLM puts the paraphrase of "puppy" first.
        r = await MoeCli.Run("rag", "query", "--db", db, "a juvenile canine", "--mode", "vector", "--k", "1");
        Assert.Contains("puppy", r.Stdout);
    }

    [Fact]
    public async Task BadInputIsOneLineExitTwoAndKeepsTheIndex()
    {
        using var tmp = new TempDir();
        string docs = WriteDocs(tmp.Path), db = Path.Combine(tmp.Path, "x.sqlite");
        Assert.Equal(0, (await MoeCli.Run("rag", "index", "--docs", docs, "--db", db)).ExitCode);
        MoeCli.UserError(await MoeCli.Run("rag", "query", "--db", Path.Combine(tmp.Path, "none.sqlite"), "car"), "none.sqlite", "not found");
        MoeCli.UserError(await MoeCli.Run("rag", "query", "--db", db, "   "), "query is empty");
        MoeCli.UserError(await MoeCli.Run("rag", "query", "--db", db, "car", "--k", "0"), "--k");
        MoeCli.UserError(await MoeCli.Run("rag", "query", "--db", db, "car", "--mode", "dense"), "no trained gate");
        string edges = Path.Combine(tmp.Path, "bad.tsv");
        File.WriteAllText(edges, "car\tpart_meronym\tbicycle\n");
        MoeCli.UserError(await MoeCli.Run("rag", "index", "--docs", docs, "--edges", edges, "--db", db), "bad.tsv", "unknown node 'bicycle'");
        string latin1 = Path.Combine(tmp.Path, "latin1.jsonl");
        File.WriteAllBytes(latin1, [.. "{\"id\":\"x\",\"text\":\"caf"u8, 0xE9, .. "\"}\n"u8]);
        MoeCli.UserError(await MoeCli.Run("rag", "index", "--docs", latin1, "--db", db), "latin1.jsonl", "not valid UTF-8");
        var r = await MoeCli.Run("rag", "query", "--db", db, "car", "--mode", "keyword", "--k", "1");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Contains("car", r.Stdout);
        string junk = Path.Combine(tmp.Path, "junk.sqlite");
        File.WriteAllText(junk, new string('x', 4096));
        MoeCli.UserError(await MoeCli.Run("rag", "query", "--db", junk, "car"), "junk.sqlite", "not a readable index database");
        foreach (var h in Directory.GetFiles(tmp.Path, "*.hnsw")) File.WriteAllBytes(h, [1, 2, 3]);
        MoeCli.UserError(await MoeCli.Run("rag", "query", "--db", db, "car"), ".hnsw");
    }

    private static string WriteQueries(string dir)
    {
        string queries = Path.Combine(dir, "q.jsonl");
        File.WriteAllText(queries, string.Join('\n',
            "{\"query\":\"a motor vehicle\",\"relevant\":[\"car\"],\"kind\":\"paraphrase\",\"split\":\"train\"}",
            "{\"query\":\"a young dog\",\"relevant\":[\"puppy\"],\"kind\":\"paraphrase\",\"split\":\"train\"}",
            "{\"query\":\"a part of a car\",\"relevant\":[\"wheel\"],\"kind\":\"relation\",\"split\":\"train\"}",
            "{\"query\":\"circular frame on an axle\",\"relevant\":[\"wheel\"],\"split\":\"train\"}",
            "{\"query\":\"a juvenile canine\",\"relevant\":[\"puppy\"],\"kind\":\"paraphrase\",\"split\":\"test\"}",
            "{\"query\":\"an automobile\",\"relevant\":[\"car\"],\"kind\":\"paraphrase\",\"split\":\"test\"}",
            "{\"query\":\"wheel\",\"relevant\":[\"wheel\"],\"split\":\"test\"}") + "\n");
        return queries;
    }

    [Fact]
    public async Task ALabelledJsonlCorpusGoesThroughIndexTrainAndEval()
    {
        using var tmp = new TempDir();
        string docs = WriteDocs(tmp.Path), db = Path.Combine(tmp.Path, "x.sqlite");
        var r = await MoeCli.Run("rag", "index", "--docs", docs, "--edges", Path.Combine(tmp.Path, "e.tsv"), "--queries", WriteQueries(tmp.Path), "--db", db);
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Contains("indexed 3 documents, 1 edges, 7 queries", r.Stdout);
        r = await MoeCli.Run("rag", "train", "--db", db, "--epochs", "5", "--joint-epochs", "2");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Contains("dense gate on 4 training queries", r.Stdout);
        r = await MoeCli.Run("rag", "eval", "--db", db);
        Assert.True(r.ExitCode == 0, r.Stderr);
        // The test split only, grouped by the file's kinds (the default kind for lines without one), with the gated modes.
        Assert.Contains("| vector | paraphrase | 2 |", r.Stdout);
        Assert.Contains("| keyword | user | 1 |", r.Stdout);
        Assert.Contains("| dense | all | 3 |", r.Stdout);
        Assert.Contains("| top1 | all | 3 |", r.Stdout);
        Assert.DoesNotContain("relation", r.Stdout);
        // A keyword query that is the document's own name ranks it first: nDCG@10 is exactly 1.
        Assert.Contains("| keyword | user | 1 | 1.000 |", r.Stdout);
    }

    [Fact]
    public async Task BadQueriesAreOneLineExitTwoAndKeepTheIndex()
    {
        using var tmp = new TempDir();
        string docs = WriteDocs(tmp.Path), db = Path.Combine(tmp.Path, "x.sqlite");
        Assert.Equal(0, (await MoeCli.Run("rag", "index", "--docs", docs, "--queries", WriteQueries(tmp.Path), "--db", db)).ExitCode);
        string bad = Path.Combine(tmp.Path, "bad.jsonl");
        (string Line, string Expected)[] cases =
        [
            ("{\"query\":\"a car\",", "line 2 is not JSON"),
            ("{\"query\":\"bicycle\",\"relevant\":[\"bicycle\"]}", "line 2: unknown document id 'bicycle'"),
            ("{\"query\":\"  \",\"relevant\":[\"car\"]}", "line 2: the query is empty"),
            ("{\"query\":\"a car\",\"relevant\":[]}", "line 2: 'relevant' is empty"),
        ];
        foreach (var (line, expected) in cases)
        {
            File.WriteAllText(bad, "{\"query\":\"a car\",\"relevant\":[\"car\"]}\n" + line + "\n");
            MoeCli.UserError(await MoeCli.Run("rag", "index", "--docs", docs, "--queries", bad, "--db", db), "bad.jsonl", expected);
        }
        MoeCli.UserError(await MoeCli.Run("rag", "index", "--wordnet", tmp.Path, "--queries", bad, "--db", db), "--queries goes with --docs");
        // The index built with the good queries is still there: training finds its 4 training queries.
        var r = await MoeCli.Run("rag", "train", "--db", db, "--epochs", "1", "--joint-epochs", "0");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Contains("dense gate on 4 training queries", r.Stdout);
    }
}
