using System.Text;
using Microsoft.Data.Sqlite;
using MoeSharp.Retrieval.Data;
using MoeSharp.Retrieval.Indexing;

namespace MoeSharp.Retrieval.Storage;

/// <summary>
/// The embedded store: one SQLite file (documents, an FTS5 full-text index, names, edges, vectors, queries, gates)
/// and the HNSW graph in a file beside it, memory-mapped. FTS5 is compiled into the e_sqlite3 library that
/// Microsoft.Data.Sqlite bundles, and its bm25() is the ranking this project's keyword expert needs, so no second
/// search engine (Lucene.Net) is carried.
/// </summary>
public sealed class SqliteStore : SqlStore
{
    /// <inheritdoc/>
    protected override string FloatType => "REAL";

    private SqliteStore(SqliteConnection c, string path) : base(c, path)
    {
        string? hnsw = GetMeta("hnsw") ?? throw new InvalidDataException($"{path}: the index names no HNSW file; run 'moe rag index' again");
        string dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        AttachVectors(HnswIndex.Open(Path.Combine(dir, hnsw)));
    }

    /// <summary>Opens an index that <see cref="Write"/> made; a missing or unreadable file is one clear error.</summary>
    public static SqliteStore Open(string path)
    {
        if (Directory.Exists(path)) throw new IOException($"{path}: is a directory, expected an index database file");
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: index database not found; build it with 'moe rag index'");
        var c = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Mode = SqliteOpenMode.ReadWrite, Pooling = false }.ToString());
        try
        {
            c.Open();
            return new SqliteStore(c, path);
        }
        catch (SqliteException ex)
        {
            c.Dispose();
            throw new InvalidDataException($"{path}: not a readable index database ({ex.Message.ReplaceLineEndings(" ")})", ex);
        }
        catch
        {
            c.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Builds the database under a temporary name and the HNSW graph under a new name, then renames the database
    /// over <paramref name="path"/>: a failure at any point leaves the previous index as it was.
    /// </summary>
    public static void Write(string path, Corpus corpus, float[] vectors, int dimension, string encoder, HnswOptions? hnsw = null)
    {
        string full = Path.GetFullPath(path);
        string dir = Path.GetDirectoryName(full)!;
        if (!Directory.Exists(dir)) throw new DirectoryNotFoundException($"{path}: the folder {dir} does not exist");
        string temp = full + ".tmp";
        File.Delete(temp);
        string hnswName = $"{Path.GetFileName(full)}.{Guid.NewGuid():N}.hnsw";
        string hnswPath = Path.Combine(dir, hnswName);
        try
        {
            using (var index = HnswIndex.Build(vectors, dimension, hnsw)) index.Save(hnswPath);
            using (var c = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = temp, Mode = SqliteOpenMode.ReadWriteCreate, Pooling = false }.ToString()))
            {
                c.Open();
                using var tx = c.BeginTransaction();
                Execute(c, tx, CommonSchema("BLOB") + "CREATE VIRTUAL TABLE fts USING fts5(body, tokenize = 'unicode61 remove_diacritics 0');");
                using var fts = c.CreateCommand();
                fts.Transaction = tx;
                fts.CommandText = "INSERT INTO fts(rowid, body) VALUES (@a, @b)";
                var a = fts.Parameters.Add("@a", SqliteType.Integer);
                var b = fts.Parameters.Add("@b", SqliteType.Text);
                WriteCommon(c, tx, corpus, vectors, dimension, encoder, (i, body) =>
                {
                    a.Value = i;
                    b.Value = body;
                    fts.ExecuteNonQuery();
                });
                using var meta = c.CreateCommand();
                meta.Transaction = tx;
                meta.CommandText = "INSERT INTO meta(key, value) VALUES ('hnsw', @h)";
                meta.Parameters.AddWithValue("@h", hnswName);
                meta.ExecuteNonQuery();
                tx.Commit();
            }
            File.Move(temp, full, overwrite: true);
        }
        catch
        {
            File.Delete(temp);
            File.Delete(hnswPath);
            throw;
        }
        foreach (var old in Directory.GetFiles(dir, Path.GetFileName(full) + ".*.hnsw"))
            if (!string.Equals(Path.GetFileName(old), hnswName, StringComparison.Ordinal)) File.Delete(old);
    }

    /// <inheritdoc/>
    public override ScoredDoc[] Bm25(IReadOnlyList<string> terms, int k)
    {
        if (terms.Count == 0) return [];
        // Terms are runs of letters and digits (TextNormalizer), so quoting each one is a complete escape.
        var match = new StringBuilder();
        for (int i = 0; i < terms.Count; i++) match.Append(i == 0 ? "\"" : " OR \"").Append(terms[i]).Append('"');
        return ReadScored("SELECT rowid, -bm25(fts) AS s FROM fts WHERE fts MATCH @q ORDER BY s DESC, rowid LIMIT @k", ("q", match.ToString()), ("k", k));
    }
}
