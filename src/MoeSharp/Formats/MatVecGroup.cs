using System.Buffers;
using System.Diagnostics;
using MoeSharp.Kernels;

namespace MoeSharp.Formats;

/// <summary>
/// Several matrix-vector products in one parallel loop: decode's selected experts' W1 and W3 together, then their W2
/// together, and an attention layer's q, k and v projections together, instead of one loop (and one wait for the
/// helper threads) per matrix: 41 loops per token instead of 89 on the issue 10 model at 2 threads. Each matrix is cut into the same
/// work items of <see cref="QuantizedMatrix.RowsPerItem"/> rows and each item runs the same groups of four rows through
/// <see cref="MatVecKernels.Rows"/> as <see cref="QuantizedMatrix.MatVec(ReadOnlySpan{float}, Span{float})"/> does, so
/// every output is bitwise that matrix's own MatVec; only which thread runs an item changes.
/// </summary>
internal static unsafe class MatVecGroup
{
    /// <summary>Whether callers group their products; on except in the bench's A/B and the tests' reference runs.</summary>
    internal static bool Enabled { get; set; } = true;

    [ThreadStatic] private static Entry[]? t_entries; // [matrices]
    [ThreadStatic] private static MemoryHandle[]? t_pins; // [matrices]
    // One per block size, since a group may mix formats (a k-quant W1 beside a Q8_0 W3); the MatVec path's
    // Q8Activation.Current stays as it was, so its reuse of a quantized x is not disturbed.
    [ThreadStatic] private static Q8Activation? t_q32, t_q256;

    /// <summary>
    /// y = the products W_i · x_i one after another: y [Σ rows_i], x [inputs, cols], where every matrix has cols
    /// columns and either takes the one input (<paramref name="inputs"/> = 1) or its own row i of x
    /// (<paramref name="inputs"/> = the number of matrices). Each x row is quantized once per block size it needs.
    /// </summary>
    public static void MatVec(ReadOnlySpan<QuantizedMatrix> matrices, ReadOnlySpan<float> x, int inputs, Span<float> y) =>
        MatVec(matrices, x, inputs, y, MatVecKernels.Best);

    /// <summary><see cref="MatVec(ReadOnlySpan{QuantizedMatrix}, ReadOnlySpan{float}, int, Span{float})"/> on a chosen kernel path.</summary>
    internal static void MatVec(ReadOnlySpan<QuantizedMatrix> matrices, ReadOnlySpan<float> x, int inputs, Span<float> y, KernelPath path)
    {
        int count = matrices.Length;
        if (count == 0) throw new ArgumentException("a matrix-vector group needs at least one matrix", nameof(matrices));
        if (inputs != 1 && inputs != count)
            throw new ArgumentException($"{inputs} inputs for {count} matrices; expected 1 (shared) or {count} (one each)", nameof(inputs));
        int cols = matrices[0].Cols;
        long rowsTotal = 0;
        bool need32 = false, need256 = false;
        for (int i = 0; i < count; i++)
        {
            var m = matrices[i];
            if (m.Cols != cols)
                throw new ArgumentException($"matrix {i} has {m.Cols} columns; matrix 0 has {cols}", nameof(matrices));
            rowsTotal += m.Rows;
            int block = Q8Activation.BlockFor(m.Format);
            need32 |= block == 32;
            need256 |= block == 256;
        }
        if (x.Length != (long)inputs * cols)
            throw new ArgumentException($"x has {x.Length} elements; [{inputs}, {cols}] needs {(long)inputs * cols}", nameof(x));
        if (y.Length != rowsTotal)
            throw new ArgumentException($"y has {y.Length} elements; the matrices have {rowsTotal} rows", nameof(y));
        if (!MatVecKernels.Supports(path))
            throw new PlatformNotSupportedException($"this machine has no {path} kernels");
        long start = DecodeProfile.Enabled ? Stopwatch.GetTimestamp() : 0;
        Q8Activation? q32 = null, q256 = null;
        if (need32)
        {
            q32 = t_q32 ??= new Q8Activation();
            q32.QuantizeRows(x, inputs, cols, 32);
        }
        if (need256)
        {
            q256 = t_q256 ??= new Q8Activation();
            q256.QuantizeRows(x, inputs, cols, 256);
        }
        long quantized = DecodeProfile.Enabled ? Stopwatch.GetTimestamp() : 0;
        if (t_entries is null || t_entries.Length < count)
        {
            t_entries = GC.AllocateArray<Entry>(Math.Max(count, 16), pinned: true);
            t_pins = new MemoryHandle[t_entries.Length];
        }
        var entries = t_entries;
        var pins = t_pins!;
        int itemRows = QuantizedMatrix.RowsPerItem, items = 0, pinned = 0;
        try
        {
            fixed (float* px = x)
            fixed (float* py = y)
            {
                long offset = 0;
                for (int i = 0; i < count; i++)
                {
                    var m = matrices[i];
                    pins[i] = m.Data.Pin();
                    pinned++;
                    int input = inputs == 1 ? 0 : i;
                    var q8 = Q8Activation.BlockFor(m.Format) switch { 32 => q32, 256 => q256, _ => null };
                    entries[i] = new Entry
                    {
                        W = (byte*)pins[i].Pointer, Y = py + offset, Format = m.Format, Rows = m.Rows, RowBytes = m.RowBytes, FirstItem = items,
                        Act = new Activation { X = px + (long)input * cols, Q = q8 is null ? default : q8.ViewOf(input) },
                    };
                    items += (m.Rows + itemRows - 1) / itemRows;
                    offset += m.Rows;
                }
                fixed (Entry* pe = entries)
                    Workers.For(items, new Job { Entries = pe, Count = count, Path = path, Cols = cols, ItemRows = itemRows });
            }
        }
        finally
        {
            for (int i = 0; i < pinned; i++) pins[i].Dispose();
        }
        DecodeProfile.Product(start, quantized);
    }

    /// <summary>One matrix of the group, as raw pointers for the workers.</summary>
    private struct Entry
    {
        public byte* W; // [rows, rowBytes]
        public float* Y; // [rows]
        public Activation Act;
        public WeightFormat Format;
        public int Rows, FirstItem;
        public long RowBytes;
    }

    private struct Job : IWorkItem
    {
        public Entry* Entries; // [count]
        public KernelPath Path;
        public int Count, Cols, ItemRows;

        public readonly void Invoke(int index)
        {
            // The last entry starting at or before the item owns it (an empty matrix starts where the next one does).
            int e = 0;
            while (e + 1 < Count && Entries[e + 1].FirstItem <= index) e++;
            Entry* m = Entries + e;
            int first = (index - m->FirstItem) * ItemRows, end = Math.Min(m->Rows, first + ItemRows);
            byte** rows = stackalloc byte*[4]; // [4]
            // The same groups of four and the same prefetch of the rows that follow as QuantizedMatrix's decode job.
            for (int r = first; r < end; r += 4)
            {
                int rowCount = Math.Min(4, end - r);
                for (int i = 0; i < rowCount; i++) rows[i] = m->W + (r + i) * m->RowBytes;
                MatVecKernels.Rows(Path, m->Format, rowCount, rows, &m->Act, Cols, m->Y + r, m->W + (r + rowCount) * m->RowBytes, 4 * m->RowBytes);
            }
        }
    }
}
