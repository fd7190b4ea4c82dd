using System.Text;
using MoeSharp.Retrieval.Data;
using MoeSharp.Retrieval.Indexing;
using Npgsql;

namespace MoeSharp.Retrieval.Storage;

/// <summary>
/// The same index in PostgreSQL: a tsvector column with a GIN index for full-text matching, BM25 computed in SQL
/// from the tsvector's term positions (the formula and constants of SQLite's FTS5 bm25(), so both backends rank
/// alike), graph walks as recursive CTEs, vectors in a table and the HNSW graph as a bytea loaded into the process.
/// </summary>
public sealed class PostgresStore : SqlStore
{
    /// <inheritdoc/>
    protected override string FloatType => "double precision";

    private PostgresStore(NpgsqlConnection c, string location) : base(c, location)
    {
        using var cmd = Command("SELECT data FROM blobs WHERE name = 'hnsw'");
        var bytes = cmd.ExecuteScalar() as byte[] ?? throw new InvalidDataException($"{location}: the index has no HNSW graph; run 'moe rag index' again");
        AttachVectors(HnswIndex.FromBytes(bytes));
    }

    /// <summary>Turns <c>postgres://user:password@host:port/database</c> (or a key=value connection string) into Npgsql's form.</summary>
    public static string ConnectionString(string location)
    {
        if (!location.StartsWith("postgres://", StringComparison.Ordinal) && !location.StartsWith("postgresql://", StringComparison.Ordinal))
            return location;
        if (!Uri.TryCreate(location, UriKind.Absolute, out var uri))
            throw new ArgumentException($"{location}: not a valid postgres:// address (expected postgres://user@host:port/database)");
        var b = new NpgsqlConnectionStringBuilder { Host = uri.Host.Length > 0 ? uri.Host : "localhost", Pooling = false };
        if (uri.Port > 0) b.Port = uri.Port;
        string[] user = Uri.UnescapeDataString(uri.UserInfo).Split(':', 2);
        if (user[0].Length > 0) b.Username = user[0];
        if (user.Length > 1) b.Password = user[1];
        string db = uri.AbsolutePath.Trim('/');
        if (db.Length > 0) b.Database = db;
        return b.ToString();
    }

    /// <summary>True when <paramref name="location"/> names a PostgreSQL database rather than a file.</summary>
    public static bool IsPostgres(string location) => location.StartsWith("postgres://", StringComparison.Ordinal)
        || location.StartsWith("postgresql://", StringComparison.Ordinal) || location.Contains("Host=", StringComparison.OrdinalIgnoreCase);

    /// <summary>Opens an index that <see cref="Write"/> made.</summary>
    public static PostgresStore Open(string location)
    {
        var c = new NpgsqlConnection(ConnectionString(location));
        try
        {
            c.Open();
            return new PostgresStore(c, Redact(location));
        }
        catch (Exception ex) when (ex is NpgsqlException or PostgresException)
        {
            c.Dispose();
            throw new InvalidDataException($"{Redact(location)}: cannot read the index ({ex.Message.ReplaceLineEndings(" ")})", ex);
        }
        catch
        {
            c.Dispose();
            throw;
        }
    }

    /// <summary>Replaces the index in one transaction (PostgreSQL's DDL is transactional): a failure leaves the old one.</summary>
    public static void Write(string location, Corpus corpus, float[] vectors, int dimension, string encoder, HnswOptions? hnsw = null)
    {
        using var index = HnswIndex.Build(vectors, dimension, hnsw);
        using var c = new NpgsqlConnection(ConnectionString(location));
        try
        {
            c.Open();
        }
        catch (Exception ex) when (ex is NpgsqlException or PostgresException)
        {
            throw new IOException($"{Redact(location)}: cannot connect ({ex.Message.ReplaceLineEndings(" ")})", ex);
        }
        using var tx = c.BeginTransaction();
        Execute(c, tx, "DROP TABLE IF EXISTS meta, docs, names, edges, vectors, queries, fts, blobs, terms;" + CommonSchema("BYTEA")
            + "CREATE TABLE fts(idx INTEGER PRIMARY KEY, tsv TSVECTOR NOT NULL); CREATE TABLE blobs(name TEXT PRIMARY KEY, data BYTEA NOT NULL);");
        using var fts = new NpgsqlCommand("INSERT INTO fts(idx, tsv) VALUES (@a, to_tsvector('simple', @b))", c, tx);
        var a = fts.Parameters.Add("a", NpgsqlTypes.NpgsqlDbType.Integer);
        var b = fts.Parameters.Add("b", NpgsqlTypes.NpgsqlDbType.Text);
        WriteCommon(c, tx, corpus, vectors, dimension, encoder, (i, body) =>
        {
            a.Value = i;
            b.Value = body;
            fts.ExecuteNonQuery();
        });
        using (var blob = new NpgsqlCommand("INSERT INTO blobs(name, data) VALUES ('hnsw', @d)", c, tx))
        {
            blob.Parameters.AddWithValue("d", index.AsBytes().ToArray());
            blob.ExecuteNonQuery();
        }
        // Document frequencies once, at index time, instead of a count over the GIN index for every query term.
        Execute(c, tx, "CREATE INDEX fts_tsv ON fts USING GIN (tsv); CREATE TABLE terms AS SELECT word AS term, ndoc::float8 AS n FROM ts_stat('SELECT tsv FROM fts');"
            + "ALTER TABLE terms ADD PRIMARY KEY (term); ANALYZE");
        tx.Commit();
    }

    /// <inheritdoc/>
    public override ScoredDoc[] Bm25(IReadOnlyList<string> terms, int k)
    {
        if (terms.Count == 0) return [];
        var or = new StringBuilder();
        for (int i = 0; i < terms.Count; i++) or.Append(i == 0 ? "" : " | ").Append(terms[i]);
        // FTS5's bm25(): idf = ln((N − n + 0.5) / (n + 0.5)), floored at 1e-6; tf·(k1 + 1) / (tf + k1·(1 − b + b·len/avgdl)).
        const string sql = """
            WITH t AS (SELECT DISTINCT unnest(@terms) AS term),
            idf AS (SELECT t.term, CASE WHEN ln((@docs - n + 0.5) / (n + 0.5)) <= 0 THEN 1e-6 ELSE ln((@docs - n + 0.5) / (n + 0.5)) END AS w
                    FROM t JOIN terms ON terms.term = t.term),
            hit AS (SELECT f.idx, u.lexeme, array_length(u.positions, 1)::float8 AS tf
                    FROM fts f, unnest(f.tsv) u WHERE f.tsv @@ to_tsquery('simple', @or) AND u.lexeme = ANY(@terms))
            SELECT hit.idx, SUM(idf.w * hit.tf * 2.2 / (hit.tf + 1.2 * (0.25 + 0.75 * d.len / @avgdl))) AS s
            FROM hit JOIN idf ON idf.term = hit.lexeme JOIN docs d ON d.idx = hit.idx
            GROUP BY hit.idx ORDER BY s DESC, hit.idx LIMIT @k
            """;
        var arr = new string[terms.Count];
        for (int i = 0; i < arr.Length; i++) arr[i] = terms[i];
        return ReadScored(sql, ("terms", arr), ("or", or.ToString()), ("docs", (double)DocumentCount), ("avgdl", AverageLength), ("k", k));
    }

    /// <summary>The location without its password, for messages.</summary>
    private static string Redact(string location)
    {
        int at = location.IndexOf('@');
        int scheme = location.IndexOf("://", StringComparison.Ordinal);
        if (scheme < 0 || at < 0) return location;
        int colon = location.IndexOf(':', scheme + 3);
        return colon > 0 && colon < at ? location[..(colon + 1)] + "***" + location[at..] : location;
    }
}
