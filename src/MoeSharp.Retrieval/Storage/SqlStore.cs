using System.Data.Common;
using System.Globalization;
using System.Text;
using MoeSharp.Retrieval.Data;
using MoeSharp.Retrieval.Indexing;

namespace MoeSharp.Retrieval.Storage;

/// <summary>
/// What SQLite and PostgreSQL share: the schema apart from full-text search, the bulk writes (one transaction), the
/// entity lookup and the graph walk as one recursive CTE. Subclasses supply the full-text parts and the float type.
/// </summary>
public abstract class SqlStore : IRetrievalStore
{
    private readonly string[] _ids;
    private HnswIndex? _vectors;
    private List<string>? _edgeTypes;

    /// <summary>The open connection.</summary>
    protected DbConnection Connection { get; }

    /// <inheritdoc/>
    public string Location { get; }

    /// <inheritdoc/>
    public int DocumentCount => _ids.Length;

    /// <inheritdoc/>
    public string EncoderName { get; }

    /// <summary>Total documents and mean length in tokens, fixed at index time (BM25's N and avgdl).</summary>
    protected double AverageLength { get; }

    /// <summary>The SQL name of a double-precision float.</summary>
    protected abstract string FloatType { get; }

    /// <summary>Opens a store that <see cref="WriteCommon"/> wrote, checking that it is complete.</summary>
    protected SqlStore(DbConnection connection, string location)
    {
        Connection = connection;
        Location = location;
        string? docs = GetMeta("documents");
        string? avgdl = GetMeta("avgdl");
        EncoderName = GetMeta("encoder") ?? "";
        if (docs is null || avgdl is null) throw new InvalidDataException($"{location}: the index is incomplete (no 'documents' entry); run 'moe rag index' again");
        int n = int.Parse(docs, CultureInfo.InvariantCulture);
        AverageLength = double.Parse(avgdl, CultureInfo.InvariantCulture);
        _ids = new string[n];
        using var cmd = Command("SELECT idx, id FROM docs");
        using var r = cmd.ExecuteReader();
        int seen = 0;
        while (r.Read())
        {
            long idx = r.GetInt64(0);
            if (idx < 0 || idx >= n) throw new InvalidDataException($"{location}: document index {idx} outside 0..{n - 1}");
            _ids[idx] = r.GetString(1);
            seen++;
        }
        if (seen != n) throw new InvalidDataException($"{location}: {seen} documents stored, the index says {n}");
    }

    /// <summary>Loads the HNSW graph; called once by the subclass constructor after its own checks.</summary>
    protected void AttachVectors(HnswIndex vectors)
    {
        if (vectors.Count != _ids.Length)
        {
            vectors.Dispose();
            throw new InvalidDataException($"{Location}: the HNSW index holds {vectors.Count} vectors for {_ids.Length} documents; run 'moe rag index' again");
        }
        _vectors = vectors;
    }

    /// <inheritdoc/>
    public HnswIndex Vectors => _vectors ?? throw new InvalidOperationException("vectors not attached");

    /// <inheritdoc/>
    public string DocumentId(int doc) => _ids[doc];

    /// <inheritdoc/>
    public string DocumentText(int doc)
    {
        using var cmd = Command("SELECT text FROM docs WHERE idx = @i", ("i", doc));
        return (string)cmd.ExecuteScalar()!;
    }

    /// <inheritdoc/>
    public abstract ScoredDoc[] Bm25(IReadOnlyList<string> terms, int k);

    /// <inheritdoc/>
    public List<EntityMatch> Link(IReadOnlyList<string> names)
    {
        var found = new List<EntityMatch>();
        if (names.Count == 0) return found;
        var sql = new StringBuilder("SELECT name, idx, rnk FROM names WHERE name IN (");
        var args = new (string, object)[names.Count];
        for (int i = 0; i < names.Count; i++)
        {
            sql.Append(i == 0 ? "" : ", ").Append("@n").Append(i);
            args[i] = ("n" + i, names[i]);
        }
        sql.Append(") ORDER BY name, rnk, idx");
        using var cmd = Command(sql.ToString(), args);
        using var r = cmd.ExecuteReader();
        while (r.Read()) found.Add(new EntityMatch((int)r.GetInt64(1), r.GetString(0), (int)r.GetInt64(2)));
        return found;
    }

    /// <inheritdoc/>
    public ScoredDoc[] Walk(IReadOnlyList<ScoredDoc> seeds, IReadOnlyDictionary<string, double> typeWeights, int maxHops, int k)
    {
        if (seeds.Count == 0 || typeWeights.Count == 0 || maxHops <= 0) return [];
        var args = new List<(string, object)>();
        var sql = new StringBuilder("WITH RECURSIVE tw(type, w) AS (VALUES ");
        int t = 0;
        foreach (var (type, w) in typeWeights.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            sql.Append(t == 0 ? "" : ", ").Append($"(CAST(@t{t} AS TEXT), CAST(@w{t} AS {FloatType}))");
            args.Add(("t" + t, type));
            args.Add(("w" + t, w));
            t++;
        }
        sql.Append("), seed(node, score) AS (VALUES ");
        for (int i = 0; i < seeds.Count; i++)
        {
            sql.Append(i == 0 ? "" : ", ").Append($"(CAST(@s{i} AS INTEGER), CAST(@v{i} AS {FloatType}))");
            args.Add(("s" + i, seeds[i].Doc));
            args.Add(("v" + i, (double)seeds[i].Score));
        }
        sql.Append($"""
            ), walk(node, hops, score) AS (
              SELECT node, 0, score FROM seed
              UNION ALL
              SELECT e.dst, walk.hops + 1, walk.score * tw.w FROM walk JOIN edges e ON e.src = walk.node JOIN tw ON tw.type = e.type
              WHERE walk.hops < @maxhops
            )
            SELECT node, MAX(score) AS s FROM walk WHERE hops > 0 GROUP BY node ORDER BY s DESC, node LIMIT @k
            """);
        args.Add(("maxhops", maxHops));
        args.Add(("k", k));
        return ReadScored(sql.ToString(), args.ToArray());
    }

    /// <inheritdoc/>
    public IReadOnlyList<string> EdgeTypes()
    {
        if (_edgeTypes is not null) return _edgeTypes;
        var types = new List<string>();
        using var cmd = Command("SELECT DISTINCT type FROM edges ORDER BY type");
        using var r = cmd.ExecuteReader();
        while (r.Read()) types.Add(r.GetString(0));
        return _edgeTypes = types;
    }

    /// <inheritdoc/>
    public IReadOnlyList<LabeledQuery> Queries()
    {
        var list = new List<LabeledQuery>();
        using var cmd = Command("SELECT kind, split, text, relevant FROM queries ORDER BY id");
        using var r = cmd.ExecuteReader();
        while (r.Read())
        {
            var rel = r.GetString(3).Split(' ', StringSplitOptions.RemoveEmptyEntries);
            var ids = new int[rel.Length];
            for (int i = 0; i < rel.Length; i++) ids[i] = int.Parse(rel[i], CultureInfo.InvariantCulture);
            list.Add(new LabeledQuery(r.GetString(0), r.GetString(1), r.GetString(2), ids));
        }
        return list;
    }

    /// <inheritdoc/>
    public string? GetMeta(string key)
    {
        using var cmd = Command("SELECT value FROM meta WHERE key = @k", ("k", key));
        return cmd.ExecuteScalar() as string;
    }

    /// <inheritdoc/>
    public void SetMeta(string key, string value)
    {
        using var tx = Connection.BeginTransaction();
        using var cmd = Command("INSERT INTO meta(key, value) VALUES (@k, @v) ON CONFLICT (key) DO UPDATE SET value = excluded.value", ("k", key), ("v", value));
        cmd.Transaction = tx;
        cmd.ExecuteNonQuery();
        tx.Commit();
    }

    /// <summary>A command with named parameters.</summary>
    protected DbCommand Command(string sql, params (string Name, object Value)[] args)
    {
        var cmd = Connection.CreateCommand();
        cmd.CommandText = sql;
        foreach (var (name, value) in args)
        {
            var p = cmd.CreateParameter();
            p.ParameterName = name;
            p.Value = value;
            cmd.Parameters.Add(p);
        }
        return cmd;
    }

    /// <summary>Rows of (index, score).</summary>
    protected ScoredDoc[] ReadScored(string sql, params (string Name, object Value)[] args)
    {
        using var cmd = Command(sql, args);
        using var r = cmd.ExecuteReader();
        var hits = new List<ScoredDoc>();
        while (r.Read()) hits.Add(new ScoredDoc((int)r.GetInt64(0), (float)r.GetDouble(1)));
        return hits.ToArray();
    }

    /// <summary>
    /// Writes documents, names, edges, vectors, queries and the BM25 statistics inside <paramref name="tx"/>;
    /// <paramref name="addFullText"/> adds one document's tokens to the backend's full-text index.
    /// </summary>
    protected static void WriteCommon(DbConnection c, DbTransaction tx, Corpus corpus, float[] vectors, int dimension, string encoder,
        Action<int, string> addFullText)
    {
        using (var doc = Prepared(c, tx, "INSERT INTO docs(idx, id, text, len) VALUES (@a, @b, @c, @d)", 4))
        using (var name = Prepared(c, tx, "INSERT INTO names(name, idx, rnk) VALUES (@a, @b, @c)", 3))
        using (var vec = Prepared(c, tx, "INSERT INTO vectors(idx, vec) VALUES (@a, @b)", 2))
        {
            long tokens = 0;
            var seen = new HashSet<string>(StringComparer.Ordinal);
            for (int i = 0; i < corpus.Documents.Count; i++)
            {
                var d = corpus.Documents[i];
                if (!seen.Add(d.Id)) throw new InvalidDataException($"document id '{d.Id}' appears twice");
                string body = TextNormalizer.Normalize(d.Text);
                int len = body.Length == 0 ? 0 : body.Count(ch => ch == ' ') + 1;
                tokens += len;
                Run(doc, i, d.Id, d.Text, len);
                addFullText(i, body);
                var names = new HashSet<string>(StringComparer.Ordinal);
                foreach (var n in d.Names)
                    if (n.Name.Length > 0 && names.Add(n.Name)) Run(name, n.Name, i, n.Rank);
                var bytes = new byte[dimension * 4];
                Buffer.BlockCopy(vectors, i * dimension * 4, bytes, 0, bytes.Length);
                Run(vec, i, bytes);
            }
            double avgdl = corpus.Documents.Count == 0 ? 0 : tokens / (double)corpus.Documents.Count;
            using var meta = Prepared(c, tx, "INSERT INTO meta(key, value) VALUES (@a, @b)", 2);
            Run(meta, "documents", corpus.Documents.Count.ToString(CultureInfo.InvariantCulture));
            Run(meta, "avgdl", TextNormalizer.Invariant(avgdl));
            Run(meta, "encoder", encoder);
            Run(meta, "dimension", dimension.ToString(CultureInfo.InvariantCulture));
        }
        using (var edge = Prepared(c, tx, "INSERT INTO edges(src, dst, type) VALUES (@a, @b, @c)", 3))
            foreach (var e in corpus.Edges)
            {
                if ((uint)e.Source >= (uint)corpus.Documents.Count || (uint)e.Target >= (uint)corpus.Documents.Count)
                    throw new InvalidDataException($"edge {e.Source} -> {e.Target} names a node outside 0..{corpus.Documents.Count - 1}");
                Run(edge, e.Source, e.Target, e.Type);
            }
        using (var q = Prepared(c, tx, "INSERT INTO queries(id, kind, split, text, relevant) VALUES (@a, @b, @c, @d, @e)", 5))
            for (int i = 0; i < corpus.Queries.Count; i++)
            {
                var lq = corpus.Queries[i];
                Run(q, i, lq.Kind, lq.Split, lq.Text, string.Join(' ', lq.Relevant));
            }
    }

    /// <summary>The schema both backends share; <paramref name="blob"/> is the binary column type.</summary>
    protected static string CommonSchema(string blob) => $"""
        CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE docs(idx INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, text TEXT NOT NULL, len INTEGER NOT NULL);
        CREATE TABLE names(name TEXT NOT NULL, idx INTEGER NOT NULL, rnk INTEGER NOT NULL);
        CREATE INDEX names_name ON names(name);
        CREATE TABLE edges(src INTEGER NOT NULL, dst INTEGER NOT NULL, type TEXT NOT NULL);
        CREATE INDEX edges_src ON edges(src);
        CREATE TABLE vectors(idx INTEGER PRIMARY KEY, vec {blob} NOT NULL);
        CREATE TABLE queries(id INTEGER PRIMARY KEY, kind TEXT NOT NULL, split TEXT NOT NULL, text TEXT NOT NULL, relevant TEXT NOT NULL);
        """;

    /// <summary>Runs several statements separated by semicolons.</summary>
    protected static void Execute(DbConnection c, DbTransaction? tx, string sql)
    {
        foreach (var statement in sql.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            using var cmd = c.CreateCommand();
            cmd.Transaction = tx;
            cmd.CommandText = statement;
            cmd.ExecuteNonQuery();
        }
    }

    private static DbCommand Prepared(DbConnection c, DbTransaction tx, string sql, int parameters)
    {
        var cmd = c.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = sql;
        for (int i = 0; i < parameters; i++)
        {
            var p = cmd.CreateParameter();
            p.ParameterName = ((char)('a' + i)).ToString();
            cmd.Parameters.Add(p);
        }
        return cmd;
    }

    private static void Run(DbCommand cmd, params object[] values)
    {
        for (int i = 0; i < values.Length; i++) cmd.Parameters[i].Value = values[i];
        cmd.ExecuteNonQuery();
    }

    /// <summary>Closes the connection and unmaps the vectors.</summary>
    public void Dispose()
    {
        _vectors?.Dispose();
        Connection.Dispose();
        GC.SuppressFinalize(this);
    }
}
