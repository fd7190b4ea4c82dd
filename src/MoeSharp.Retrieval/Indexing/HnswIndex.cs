using System.IO.MemoryMappedFiles;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace MoeSharp.Retrieval.Indexing;

/// <summary>Build settings of an <see cref="HnswIndex"/>.</summary>
public sealed class HnswOptions
{
    /// <summary>Neighbours kept per node on the upper levels; level 0 keeps twice as many (Malkov and Yashunin's M and M0 = 2M).</summary>
    public int M { get; init; } = 16;

    /// <summary>Candidates examined while inserting a node (efConstruction).</summary>
    public int EfConstruction { get; init; } = 100;

    /// <summary>Seed of the level draws, so an index builds the same on every run.</summary>
    public ulong Seed { get; init; } = 1;

    internal void Validate()
    {
        if (M < 2) throw new ArgumentException($"HnswOptions.M: expected at least 2, got {M}");
        if (EfConstruction < M) throw new ArgumentException($"HnswOptions.EfConstruction: expected at least M ({M}), got {EfConstruction}");
    }
}

/// <summary>
/// Hierarchical navigable small-world graph (Malkov and Yashunin 2018) over unit vectors, similarity = dot product.
/// The whole index is one flat blob (header, levels, vectors, adjacency), so the same search code runs on a freshly
/// built index in pinned managed memory and on a saved one memory-mapped from disk. Search is not thread-safe:
/// one visited-marks array is reused across calls.
/// </summary>
public sealed unsafe class HnswIndex : IDisposable
{
    private const int Magic = 0x57534E48; // "HNSW"
    private const int Version = 1;
    private const int HeaderInts = 8;

    private readonly byte[]? _managed;
    private readonly MemoryMappedFile? _file;
    private readonly MemoryMappedViewAccessor? _view;
    private readonly int* _base;
    private readonly long _bytes;
    private readonly int* _levels;       // [N]
    private readonly int* _upperOffset;  // [N] start of a node's upper blocks in _upper, in ints; -1 on level 0 only
    private readonly float* _vectors;    // [N, D]
    private readonly int* _level0;       // [N, 1 + M0] count then neighbours
    private readonly int* _upper;        // per node with level L ≥ 1: L blocks of [1 + M]
    private readonly int[] _visited;     // [N] generation stamps
    private int _generation;

    /// <summary>Number of vectors N.</summary>
    public int Count { get; }

    /// <summary>Vector width D.</summary>
    public int Dimension { get; }

    private int M { get; }
    private int M0 => 2 * M;
    private int MaxLevel { get; }
    private int Entry { get; }

    private HnswIndex(byte[]? managed, MemoryMappedFile? file, MemoryMappedViewAccessor? view, byte* basePtr, long bytes)
    {
        _managed = managed;
        _file = file;
        _view = view;
        _base = (int*)basePtr;
        _bytes = bytes;
        if (bytes < HeaderInts * 4 || _base[0] != Magic || _base[1] != Version)
            throw new InvalidDataException("not an HNSW index (bad header)");
        Count = _base[2];
        Dimension = _base[3];
        M = _base[4];
        MaxLevel = _base[6];
        Entry = _base[7];
        if (Count < 0 || Dimension <= 0 || M < 2 || _base[5] != 2 * M || MaxLevel < 0 || MaxLevel > 64 || (Count > 0 && (Entry < 0 || Entry >= Count)))
            throw new InvalidDataException("HNSW header holds impossible sizes");
        long ints = HeaderInts + 2L * Count;
        _levels = _base + HeaderInts;
        _upperOffset = _levels + Count;
        _vectors = (float*)(_upperOffset + Count);
        _level0 = (int*)(_vectors + (long)Count * Dimension);
        _upper = _level0 + (long)Count * (1 + M0);
        ints += (long)Count * Dimension + (long)Count * (1 + M0);
        long upperInts = 0;
        for (int i = 0; i < Count; i++)
        {
            int level = _levels[i];
            if (level < 0 || level > MaxLevel) throw new InvalidDataException($"HNSW node {i} has level {level}, outside 0..{MaxLevel}");
            if (level > 0 && _upperOffset[i] != upperInts) throw new InvalidDataException($"HNSW node {i}: upper adjacency offset is inconsistent");
            upperInts += (long)level * (1 + M);
        }
        if ((ints + upperInts) * 4 != bytes) throw new InvalidDataException($"HNSW index is {bytes} bytes; its header implies {(ints + upperInts) * 4}");
        for (int i = 0; i < Count; i++)
            for (int level = 0; level <= _levels[i]; level++)
            {
                int* block = Block(i, level);
                int cap = level == 0 ? M0 : M;
                if (block[0] < 0 || block[0] > cap) throw new InvalidDataException($"HNSW node {i} level {level}: {block[0]} neighbours, at most {cap} allowed");
                for (int j = 1; j <= block[0]; j++)
                    if (block[j] < 0 || block[j] >= Count) throw new InvalidDataException($"HNSW node {i} names neighbour {block[j]}, outside 0..{Count - 1}");
            }
        _visited = new int[Count];
    }

    private int* Block(int node, int level) => level == 0
        ? _level0 + (long)node * (1 + M0)
        : _upper + _upperOffset[node] + (long)(level - 1) * (1 + M);

    private ReadOnlySpan<float> Vector(int node) => new(_vectors + (long)node * Dimension, Dimension);

    /// <summary>Row <paramref name="node"/> of the indexed vectors.</summary>
    public ReadOnlySpan<float> VectorOf(int node)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual((uint)node, (uint)Count);
        return Vector(node);
    }

    /// <summary>Builds an index over <paramref name="vectors"/> <c>[N, D]</c> (unit rows), inserting nodes in order.</summary>
    public static HnswIndex Build(float[] vectors, int dimension, HnswOptions? options = null)
    {
        options ??= new HnswOptions();
        options.Validate();
        if (dimension <= 0 || vectors.Length % dimension != 0)
            throw new ArgumentException($"vectors: length {vectors.Length} is not a multiple of the dimension {dimension}");
        return FromBlob(new HnswBuilder(vectors, dimension, options).Build());
    }

    private static HnswIndex FromBlob(byte[] blob)
    {
        byte* p = (byte*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(blob));
        return new HnswIndex(blob, null, null, p, blob.Length);
    }

    /// <summary>Reads an index from bytes (for example a PostgreSQL bytea), copying them into pinned memory.</summary>
    public static HnswIndex FromBytes(ReadOnlySpan<byte> bytes)
    {
        var blob = GC.AllocateUninitializedArray<byte>(bytes.Length, pinned: true);
        bytes.CopyTo(blob);
        return FromBlob(blob);
    }

    /// <summary>Memory-maps a saved index read-only; the file stays open until <see cref="Dispose"/>.</summary>
    public static HnswIndex Open(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: HNSW index not found; run 'moe rag index' again");
        long length = new FileInfo(path).Length;
        if (length == 0) throw new InvalidDataException($"{path}: HNSW index is empty");
        var file = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        var view = file.CreateViewAccessor(0, length, MemoryMappedFileAccess.Read);
        byte* p = null;
        view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
        try
        {
            return new HnswIndex(null, file, view, p + view.PointerOffset, length);
        }
        catch (InvalidDataException ex)
        {
            view.SafeMemoryMappedViewHandle.ReleasePointer();
            view.Dispose();
            file.Dispose();
            throw new InvalidDataException($"{path}: {ex.Message}", ex);
        }
    }

    /// <summary>The index as bytes, in the layout <see cref="Open"/> and <see cref="FromBytes"/> read.</summary>
    public ReadOnlySpan<byte> AsBytes() => new(_base, checked((int)_bytes));

    /// <summary>Writes the index to a temporary file beside <paramref name="path"/>, then renames it into place.</summary>
    public void Save(string path)
    {
        string temp = path + ".tmp";
        using (var f = File.Create(temp)) f.Write(AsBytes());
        File.Move(temp, path, overwrite: true);
    }

    /// <summary>The approximate top <paramref name="k"/> by dot product, best first, examining <paramref name="ef"/> candidates on level 0.</summary>
    public ScoredDoc[] Search(ReadOnlySpan<float> query, int k, int ef = 64)
    {
        if (query.Length != Dimension) throw new ArgumentException($"query: expected {Dimension} values, got {query.Length}");
        if (Count == 0 || k <= 0) return [];
        int current = Entry;
        float best = Dot(query, current);
        for (int level = MaxLevel; level > 0; level--)
        {
            bool moved = true;
            while (moved)
            {
                moved = false;
                int* block = Block(current, level);
                for (int j = 1; j <= block[0]; j++)
                {
                    float s = Dot(query, block[j]);
                    if (s > best) { best = s; current = block[j]; moved = true; }
                }
            }
        }
        var found = SearchLayer(query, current, best, Math.Max(ef, k), 0);
        int n = Math.Min(k, found.Count);
        var hits = new ScoredDoc[n];
        // The result heap pops the worst first.
        while (found.Count > n) found.Dequeue();
        for (int i = n - 1; i >= 0; i--)
        {
            found.TryDequeue(out int node, out float s);
            hits[i] = new ScoredDoc(node, s);
        }
        return hits;
    }

    /// <summary>Exact top <paramref name="k"/> by dot product over all vectors: the reference the recall tests compare against.</summary>
    public ScoredDoc[] BruteForce(ReadOnlySpan<float> query, int k)
    {
        var all = new ScoredDoc[Count];
        for (int i = 0; i < Count; i++) all[i] = new ScoredDoc(i, Dot(query, i));
        Array.Sort(all, (a, b) => b.Score != a.Score ? b.Score.CompareTo(a.Score) : a.Doc.CompareTo(b.Doc));
        return all[..Math.Min(k, Count)];
    }

    private float Dot(ReadOnlySpan<float> query, int node) => TensorPrimitives.Dot(query, Vector(node));

    /// <summary>Best-first search on one level; returns a min-heap (worst on top) of at most <paramref name="ef"/> nodes.</summary>
    private PriorityQueue<int, float> SearchLayer(ReadOnlySpan<float> query, int entry, float entryScore, int ef, int level)
    {
        if (++_generation == int.MaxValue) { Array.Clear(_visited); _generation = 1; }
        var candidates = new PriorityQueue<int, float>(); // best first: priority −score
        var results = new PriorityQueue<int, float>();    // worst first: priority score
        _visited[entry] = _generation;
        candidates.Enqueue(entry, -entryScore);
        results.Enqueue(entry, entryScore);
        while (candidates.TryDequeue(out int c, out float negScore))
        {
            results.TryPeek(out _, out float worst);
            if (-negScore < worst && results.Count >= ef) break;
            int* block = Block(c, level);
            for (int j = 1; j <= block[0]; j++)
            {
                int nb = block[j];
                if (_visited[nb] == _generation) continue;
                _visited[nb] = _generation;
                float s = Dot(query, nb);
                results.TryPeek(out _, out worst);
                if (results.Count < ef || s > worst)
                {
                    candidates.Enqueue(nb, -s);
                    results.Enqueue(nb, s);
                    if (results.Count > ef) results.Dequeue();
                }
            }
        }
        return results;
    }

    /// <summary>Unmaps a memory-mapped index; a managed one is left to the garbage collector.</summary>
    public void Dispose()
    {
        if (_view is null) return;
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _file!.Dispose();
    }
}
