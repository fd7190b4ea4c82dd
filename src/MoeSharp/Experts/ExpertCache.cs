using Microsoft.Win32.SafeHandles;
using MoeSharp.Formats;

namespace MoeSharp.Experts;

/// <summary>Hits, misses and bytes read of the <see cref="ExpertCache"/> for one MoE layer (or all of them).</summary>
public sealed record ExpertCacheStats(string Layer, long Hits, long Misses, long BytesRead)
{
    /// <summary>Hits over lookups; 0 before the first lookup.</summary>
    public double HitRate => Hits + Misses == 0 ? 0 : (double)Hits / (Hits + Misses);
}

/// <summary>Which unpinned expert a full <see cref="ExpertCache"/> evicts.</summary>
public enum ExpertCachePolicy
{
    /// <summary>The one used least often since the model was loaded (every lookup counts, hit or miss, evicted or not), the least recently used among equals: the hottest experts stay.</summary>
    Lfu,

    /// <summary>The least recently used one.</summary>
    Lru,
}

/// <summary>Where one stored matrix of one expert lies in the checkpoint file.</summary>
internal readonly record struct FileMatrix(string Path, long Offset, WeightFormat Format, int Rows, int Cols)
{
    public long Bytes => Rows * Format.RowBytes(Cols);
}

/// <summary>
/// Routed experts paged from the checkpoint file into a fixed budget of pinned slots, one slot per (layer, expert)
/// holding that expert's W1, W3 and W2 back to back. The bytes are read with <see cref="RandomAccess.Read(SafeFileHandle, Span{byte}, long)"/>,
/// not through the memory map, so the process holds only what the slots hold. A full cache evicts the least recently
/// used expert (or, by default, the least often used: <see cref="ExpertCachePolicy"/>) that no caller holds (<see cref="PagedExperts.Acquire"/> pins it until its lease is disposed); slots
/// are allocated on first use, so a model whose experts fit holds no more than it touched.
/// </summary>
public sealed class ExpertCache : IDisposable
{
    /// <summary>Slot starts and the matrices inside a slot are aligned to this many bytes, a cache line for the kernels.</summary>
    private const int Alignment = 64;

    private readonly Dictionary<string, SafeFileHandle> _files = new(StringComparer.Ordinal);
    private readonly Slot[] _slots;
    private readonly PagedExperts[] _layers;
    private long _clock;

    internal ExpertCache(string source, long budgetBytes, IReadOnlyList<(string Name, FileMatrix[][] Experts)> layers, ExpertCachePolicy policy = ExpertCachePolicy.Lfu)
    {
        Policy = policy;
        Source = source;
        long slotBytes = 0;
        foreach (var (_, experts) in layers)
            foreach (var matrices in experts) slotBytes = Math.Max(slotBytes, BytesOf(matrices));
        if (slotBytes > Array.MaxLength)
            throw new NotSupportedException($"{source}: one expert takes {slotBytes:N0} bytes, more than one pinned slot holds ({Array.MaxLength:N0}).");
        SlotBytes = slotBytes;
        if (budgetBytes < slotBytes)
            throw new ArgumentException($"{source}: --max-memory leaves {Describe(budgetBytes)} for routed experts; one expert takes {Describe(slotBytes)}: raise --max-memory by at least {Describe(slotBytes - budgetBytes)}.");
        int total = 0;
        foreach (var (_, e) in layers) total += e.Length;
        _slots = new Slot[(int)Math.Min(budgetBytes / slotBytes, total)];
        for (int i = 0; i < _slots.Length; i++) _slots[i] = new Slot();
        BudgetBytes = budgetBytes;
        _layers = new PagedExperts[layers.Count];
        for (int l = 0; l < layers.Count; l++) _layers[l] = new PagedExperts(this, l, layers[l].Name, layers[l].Experts);
        try
        {
            foreach (var (_, experts) in layers)
                foreach (var matrices in experts)
                    foreach (var m in matrices)
                        if (!_files.ContainsKey(m.Path))
                            _files[m.Path] = File.OpenHandle(m.Path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, FileOptions.RandomAccess);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>The checkpoint (file or folder) the experts are read from.</summary>
    public string Source { get; }

    /// <summary>How a full cache picks the expert to evict.</summary>
    public ExpertCachePolicy Policy { get; }

    /// <summary>Bytes the slots may hold together.</summary>
    public long BudgetBytes { get; }

    /// <summary>Bytes one slot takes: the largest expert's three matrices, each aligned.</summary>
    public long SlotBytes { get; }

    /// <summary>Bytes the model keeps resident beside the cache (fp32 arena, stored non-expert weights, a full-context KV cache): <c>--max-memory</c> less <see cref="BudgetBytes"/>.</summary>
    public long ResidentBytes { get; internal init; }

    /// <summary>Routed experts over every paged layer.</summary>
    public int Experts
    {
        get
        {
            int n = 0;
            foreach (var l in _layers) n += l.Experts.Length;
            return n;
        }
    }

    /// <summary>Experts the cache holds at once.</summary>
    public int Capacity => _slots.Length;

    /// <summary>Bytes of slot memory allocated so far (never more than <see cref="BudgetBytes"/>).</summary>
    public long BytesHeld
    {
        get
        {
            lock (_slots)
            {
                long held = 0;
                foreach (var s in _slots) held += s.Memory?.Length ?? 0;
                return held;
            }
        }
    }

    /// <summary>The paged experts of each MoE layer, in model order.</summary>
    public IReadOnlyList<PagedExperts> Layers => _layers;

    /// <summary>The (layer, expert) pairs held, most recently used last: what the next misses evict first is at the front.</summary>
    public IReadOnlyList<(int Layer, int Expert)> Resident()
    {
        lock (_slots)
        {
            var held = new List<Slot>();
            foreach (var s in _slots)
                if (s.Layer >= 0) held.Add(s);
            held.Sort((a, b) => a.LastUse.CompareTo(b.LastUse));
            var list = new List<(int, int)>(held.Count);
            foreach (var s in held) list.Add((s.Layer, s.Expert));
            return list;
        }
    }

    /// <summary>Statistics per layer, in model order.</summary>
    public IReadOnlyList<ExpertCacheStats> Stats()
    {
        lock (_slots)
        {
            var list = new List<ExpertCacheStats>(_layers.Length);
            foreach (var l in _layers) list.Add(new ExpertCacheStats(l.Name, l.Hits, l.Misses, l.BytesRead));
            return list;
        }
    }

    /// <summary>Statistics over every layer.</summary>
    public ExpertCacheStats Total()
    {
        long hits = 0, misses = 0, bytes = 0;
        foreach (var s in Stats())
        {
            hits += s.Hits;
            misses += s.Misses;
            bytes += s.BytesRead;
        }
        return new ExpertCacheStats("total", hits, misses, bytes);
    }

    /// <summary>Sets every counter to 0 (the slots stay), e.g. after a warm-up.</summary>
    public void ResetStats()
    {
        lock (_slots)
            foreach (var l in _layers) l.Hits = l.Misses = l.BytesRead = 0;
    }

    /// <summary>Closes the files; the slots go with the garbage collector.</summary>
    public void Dispose()
    {
        foreach (var f in _files.Values) f.Dispose();
    }

    /// <summary>"12.3 MB (12,345,678 bytes)": readable, and exact where a budget misses by a few bytes.</summary>
    internal static string Describe(long bytes) => $"{bytes / 1e6:F1} MB ({bytes:N0} bytes)";

    private static long Align(long bytes) => (bytes + Alignment - 1) / Alignment * Alignment;

    private static long BytesOf(FileMatrix[] matrices)
    {
        long total = 0;
        foreach (var m in matrices) total += Align(m.Bytes);
        return total;
    }

    /// <summary>Expert <paramref name="expert"/> of layer <paramref name="layer"/> in a pinned slot, read from the file on a miss.</summary>
    internal Slot Pin(PagedExperts layer, int expert)
    {
        lock (_slots)
        {
            _clock++;
            layer.Uses[expert]++;
            var slot = layer.SlotOf[expert];
            if (slot is not null)
            {
                layer.Hits++;
            }
            else
            {
                layer.Misses++;
                slot = Victim(layer.Name, expert);
                if (slot.Layer >= 0) _layers[slot.Layer].SlotOf[slot.Expert] = null;
                slot.Layer = -1;
                slot.Memory ??= GC.AllocateUninitializedArray<byte>((int)SlotBytes, pinned: true);
                slot.Matrices = Read(layer, expert, slot.Memory);
                slot.Layer = layer.Index;
                slot.Expert = expert;
                layer.SlotOf[expert] = slot;
            }
            slot.Pins++;
            slot.LastUse = _clock;
            return slot;
        }
    }

    internal void Unpin(Slot slot)
    {
        lock (_slots) slot.Pins--;
    }

    /// <summary>An empty slot, else the unpinned one <see cref="Policy"/> picks.</summary>
    private Slot Victim(string layer, int expert)
    {
        Slot? best = null;
        long bestUses = 0;
        foreach (var s in _slots)
        {
            if (s.Layer < 0) return s;
            if (s.Pins != 0) continue;
            long uses = Policy == ExpertCachePolicy.Lfu ? _layers[s.Layer].Uses[s.Expert] : 0;
            if (best is null || uses < bestUses || (uses == bestUses && s.LastUse < best.LastUse))
            {
                best = s;
                bestUses = uses;
            }
        }
        return best ?? throw new InvalidOperationException($"Expert cache: all {_slots.Length} slots are in use; cannot load expert {expert} of {layer}.");
    }

    private QuantizedMatrix[] Read(PagedExperts layer, int expert, byte[] memory)
    {
        var matrices = layer.Experts[expert];
        var result = new QuantizedMatrix[matrices.Length];
        long at = 0;
        for (int i = 0; i < matrices.Length; i++)
        {
            var m = matrices[i];
            var dst = memory.AsMemory((int)at, (int)m.Bytes);
            ReadExactly(m.Path, dst.Span, m.Offset, layer.Name, expert);
            layer.BytesRead += m.Bytes;
            result[i] = new QuantizedMatrix(dst, m.Format, m.Rows, m.Cols);
            // The load left the paged experts unchecked (reading them all would defeat the cache), so each is checked
            // the first time it comes in; the bytes are the file's, so once is enough.
            if (!layer.Checked[expert] && result[i].FirstNonFinite() is var (bad, value))
                throw new InvalidDataException($"{m.Path}: expert {expert} of {layer.Name} holds {value} at flat index {bad} of its " +
                    $"{(i == matrices.Length - 1 ? "W2" : i == 0 ? "W1" : "W3")} [{m.Rows}, {m.Cols}] {m.Format} at byte {m.Offset:N0}; weights must be finite.");
            at += Align(m.Bytes);
        }
        layer.Checked[expert] = true;
        return result;
    }

    private void ReadExactly(string path, Span<byte> dst, long offset, string layer, int expert)
    {
        var file = _files[path];
        long end = offset + dst.Length;
        while (!dst.IsEmpty)
        {
            int n = RandomAccess.Read(file, dst, offset);
            if (n == 0)
                throw new InvalidDataException($"{path}: expert {expert} of {layer} ends at byte {end:N0}, past the end of the file ({RandomAccess.GetLength(file):N0} bytes); the file is truncated.");
            dst = dst[n..];
            offset += n;
        }
    }

    /// <summary>One expert's bytes: its matrices over <see cref="Memory"/>, and who holds it.</summary>
    internal sealed class Slot
    {
        public byte[]? Memory;                         // [SlotBytes] pinned, W1 | W3 | W2 each aligned
        public QuantizedMatrix[] Matrices = [];
        public int Layer = -1, Expert;
        public int Pins;
        public long LastUse;
    }
}

/// <summary>The routed experts of one MoE layer, paged through an <see cref="ExpertCache"/>.</summary>
public sealed class PagedExperts
{
    private readonly ExpertCache _cache;

    internal PagedExperts(ExpertCache cache, int index, string name, FileMatrix[][] experts)
    {
        _cache = cache;
        Index = index;
        Name = name;
        Experts = experts;
        SlotOf = new ExpertCache.Slot?[experts.Length];
        Uses = new long[experts.Length];
        Checked = new bool[experts.Length];
    }

    /// <summary>The layer's position among the cache's layers.</summary>
    public int Index { get; }

    /// <summary>The expert bank's name.</summary>
    public string Name { get; }

    internal FileMatrix[][] Experts { get; }               // [E][W1, W3?, W2]
    internal ExpertCache.Slot?[] SlotOf { get; }           // [E] the slot holding each expert, or null
    internal long[] Uses { get; }                          // [E] lookups since load, for LFU
    internal bool[] Checked { get; }                       // [E] whether the expert's bytes were found finite when first paged in
    internal long Hits, Misses, BytesRead;

    /// <summary>Expert <paramref name="expert"/>'s matrices, held in the cache (not evicted) until the lease is disposed.</summary>
    public ExpertLease Acquire(int expert) => new(_cache, _cache.Pin(this, expert));
}

/// <summary>A pinned expert: W1, W3 (null without a gate branch) and W2 in cache memory, valid until disposed.</summary>
public readonly struct ExpertLease : IDisposable
{
    private readonly ExpertCache _cache;
    private readonly ExpertCache.Slot _slot;

    internal ExpertLease(ExpertCache cache, ExpertCache.Slot slot)
    {
        _cache = cache;
        _slot = slot;
    }

    /// <summary>[H, D] gate (or only) up projection.</summary>
    public QuantizedMatrix W1 => _slot.Matrices[0];

    /// <summary>[H, D] up projection of a gated FFN, or null.</summary>
    public QuantizedMatrix? W3 => _slot.Matrices.Length == 3 ? _slot.Matrices[1] : null;

    /// <summary>[D, H] down projection.</summary>
    public QuantizedMatrix W2 => _slot.Matrices[^1];

    /// <summary>Lets the cache evict the expert again.</summary>
    public void Dispose() => _cache.Unpin(_slot);
}
