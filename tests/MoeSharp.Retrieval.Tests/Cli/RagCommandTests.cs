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
}
