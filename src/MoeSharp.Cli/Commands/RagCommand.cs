using System.CommandLine;
using System.Globalization;
using MoeSharp.Retrieval;
using MoeSharp.Retrieval.Data;
using MoeSharp.Retrieval.Gating;
using MoeSharp.Retrieval.Onnx;
using MoeSharp.Retrieval.Storage;

namespace MoeSharp.Cli.Commands;

/// <summary><c>moe rag</c>: index a corpus, train the gates, query and evaluate the hybrid retriever.</summary>
internal static class RagCommand
{
    public static Command Create() => new("rag", "Hybrid retrieval: vector, keyword and graph experts under a learned gate.")
    {
        Index(), Train(), Query(), Eval(),
    };

    private static Option<string> Db() => new("--db") { Description = "FILE.sqlite, or postgres://user@host:port/database.", Required = true };

    private static Command Index()
    {
        var db = Db();
        var wordnet = new Option<string?>("--wordnet") { Description = "A WordNet 3.0 database folder (data.noun, index.noun, ...)." };
        var docs = new Option<string?>("--docs") { Description = "Documents, one JSON object a line: {\"id\", \"text\", \"names\"}." };
        var edges = new Option<string?>("--edges") { Description = "Edges, one a line: source-id TAB type TAB target-id (with --docs)." };
        var queries = new Option<string?>("--queries") { Description = "Labelled queries, one JSON object a line: {\"query\", \"relevant\": [ids], \"kind\", \"split\"} (with --docs)." };
        var limit = CliOptions.Int("--limit", 0, 0, "Most WordNet noun synsets to index (0 = all).");
        var perKind = CliOptions.Int("--queries-per-kind", 400, 0, "Most WordNet queries generated of each kind.");
        var command = new Command("index", "Build the index: documents, FTS5/tsvector, graph, vectors and HNSW.") { db, wordnet, docs, edges, queries, limit, perKind };
        command.SetAction(p =>
        {
            string? wn = p.GetValue(wordnet), jsonl = p.GetValue(docs), tsv = p.GetValue(edges), labelled = p.GetValue(queries);
            if ((wn is null) == (jsonl is null)) throw new ArgumentException("moe rag index: give exactly one of --wordnet DIR or --docs FILE.jsonl");
            if (tsv is not null && jsonl is null) throw new ArgumentException("moe rag index: --edges goes with --docs");
            if (labelled is not null && jsonl is null) throw new ArgumentException("moe rag index: --queries goes with --docs (--wordnet generates its own)");
            var corpus = wn is not null
                ? WordNetCorpus.Load(wn, new WordNetOptions { MaxSynsets = p.GetValue(limit), QueriesPerKind = p.GetValue(perKind) })
                : CorpusFiles.Read(jsonl!, tsv, labelled);
            using var encoder = new MiniLmEncoder();
            var texts = new List<string>(corpus.Documents.Count);
            foreach (var d in corpus.Documents) texts.Add(d.Text);
            var vectors = encoder.Encode(texts);
            string location = p.GetValue(db)!;
            if (PostgresStore.IsPostgres(location)) PostgresStore.Write(location, corpus, vectors, encoder.Dimension, encoder.Name);
            else SqliteStore.Write(location, corpus, vectors, encoder.Dimension, encoder.Name);
            Console.WriteLine($"indexed {corpus.Documents.Count} documents, {corpus.Edges.Count} edges, {corpus.Queries.Count} queries into {location}");
            return 0;
        });
        return command;
    }

    private static Command Train()
    {
        var db = Db();
        var epochs = CliOptions.Int("--epochs", 60, 1, "Epochs of the gate-alone phase.");
        var joint = CliOptions.Int("--joint-epochs", 30, 0, "Epochs of the joint listwise phase.");
        var seed = CliOptions.Seed(1);
        var command = new Command("train", "Train the dense and the sparse gate on the stored training queries.") { db, epochs, joint, seed };
        command.SetAction(p =>
        {
            using var store = Open(p.GetValue(db)!);
            using var encoder = new MiniLmEncoder();
            var retriever = new HybridRetriever(store, encoder);
            var stats = retriever.Train(new GateTrainingOptions { GateEpochs = p.GetValue(epochs), JointEpochs = p.GetValue(joint), Seed = p.GetValue(seed) }, Console.WriteLine);
            Console.WriteLine($"dense gate on {stats.Tokens} training queries: top-1 counts {Names(retriever)} = [{string.Join(", ", stats.TokensPerExpert)}], "
                + $"mean weights [{string.Join(", ", stats.Importance.Select(F))}], entropy {F(stats.Entropy)}");
            return 0;
        });
        return command;
    }

    private static Command Query()
    {
        var db = Db();
        var text = new Argument<string>("TEXT") { Description = "The query." };
        var k = CliOptions.Int("--k", 10, 1, "How many documents to return.");
        var mode = new Option<FusionMode>("--mode") { Description = "vector, keyword, graph, rrf, dense, top1 or top2.", DefaultValueFactory = _ => FusionMode.Dense };
        var explain = new Option<bool>("--explain") { Description = "Also print the gate's weight per expert and each expert's top hits." };
        var command = new Command("query", "Retrieve documents for one query.") { db, text, k, mode, explain };
        command.SetAction(p =>
        {
            string q = p.GetValue(text)!;
            if (q.Trim().Length == 0) throw new ArgumentException("moe rag query: the query is empty");
            using var store = Open(p.GetValue(db)!);
            using var encoder = new MiniLmEncoder();
            var retriever = new HybridRetriever(store, encoder);
            int n = p.GetValue(k);
            var r = retriever.Retrieve(q, n, p.GetValue(mode));
            if (p.GetValue(explain))
            {
                if (r.Weights is { } w)
                    Console.WriteLine("gate: " + string.Join(", ", retriever.Experts.Select((e, i) => $"{e.Name} {F(w[i])}")));
                for (int e = 0; e < retriever.Experts.Count; e++)
                {
                    if (r.ExpertHits[e] is not { } hits) { Console.WriteLine($"{retriever.Experts[e].Name}: not queried"); continue; }
                    Console.WriteLine($"{retriever.Experts[e].Name}:");
                    foreach (var h in hits.Take(n)) Console.WriteLine($"  {F(h.Score),8}  {store.DocumentId(h.Doc)}  {Short(store.DocumentText(h.Doc))}");
                }
                Console.WriteLine("fused:");
            }
            foreach (var h in r.Fused) Console.WriteLine($"{F(h.Score),8}  {store.DocumentId(h.Doc)}  {Short(store.DocumentText(h.Doc))}");
            return 0;
        });
        return command;
    }

    private static Command Eval()
    {
        var db = Db();
        var limit = CliOptions.Int("--limit", 0, 0, "Evaluate only the first N test queries (0 = all).");
        var command = new Command("eval", "nDCG@10, recall@20 and latency on the held-out queries, per kind, for every mode.") { db, limit };
        command.SetAction(p =>
        {
            using var store = Open(p.GetValue(db)!);
            using var encoder = new MiniLmEncoder();
            var retriever = new HybridRetriever(store, encoder);
            var modes = new List<FusionMode> { FusionMode.Vector, FusionMode.Keyword, FusionMode.Graph, FusionMode.Rrf };
            if (retriever.DenseGate is not null) modes.AddRange([FusionMode.Dense, FusionMode.Top1, FusionMode.Top2]);
            int n = p.GetValue(limit);
            // The first query pays for ONNX Runtime's and SQLite's warm-up; keep it out of the latencies.
            retriever.Retrieve("warm up", 10, FusionMode.Rrf);
            var rows = retriever.Evaluate(modes, "test", n == 0 ? int.MaxValue : n);
            Console.WriteLine("| mode | kind | queries | nDCG@10 | recall@20 | p50 ms | p95 ms |");
            Console.WriteLine("|---|---|---:|---:|---:|---:|---:|");
            foreach (var r in rows)
                Console.WriteLine($"| {r.Mode.ToString().ToLowerInvariant()} | {r.Kind} | {r.Queries} | {r.Ndcg10:F3} | {r.Recall20:F3} | {r.P50Ms:F1} | {r.P95Ms:F1} |");
            if (retriever.SparseGate is not null)
                foreach (var s in retriever.SparseRouting())
                    Console.WriteLine($"top-1 gate on {s.Layer} queries: {Names(retriever)} = [{string.Join(", ", s.TokensPerExpert)}], mean weights [{string.Join(", ", s.Importance.Select(F))}]");
            return 0;
        });
        return command;
    }

    private static IRetrievalStore Open(string location) =>
        PostgresStore.IsPostgres(location) ? PostgresStore.Open(location) : SqliteStore.Open(location);

    private static string Names(HybridRetriever r) => string.Join("/", r.Experts.Select(e => e.Name));

    private static string F(float v) => v.ToString("0.000", CultureInfo.InvariantCulture);

    private static string Short(string s) => s.Length <= 90 ? s : s[..87] + "...";
}
