using System.Buffers;
using System.Diagnostics;
using System.Runtime.CompilerServices;
using MoeSharp.Kernels;

namespace MoeSharp.Formats;

/// <summary>
/// A [rows, cols] weight matrix whose rows are stored one after another in a <see cref="WeightFormat"/>, over
/// memory it does not own (an array, or a tensor of a memory-mapped file used in place).
/// </summary>
public sealed unsafe class QuantizedMatrix
{
    /// <summary>
    /// Decode's rows per parallel work item: enough bytes per item to amortise claiming it (two interlocked operations
    /// on a line the threads share), few enough to balance (a 3584-row expert matrix is 56 items of 64). A multiple
    /// of 4; settable for the bench's A/B, and without effect on any result.
    /// </summary>
    internal static int RowsPerItem { get; set; } = 64;

    /// <summary>Rows per prefill work item: 64 rows of 4096 Q8_0 are 272 KiB, which stay in L2 while the tokens stream by.</summary>
    private const int PrefillRowsPerItem = 64;

    /// <param name="data">rows × <see cref="RowBytes"/> bytes.</param>
    /// <exception cref="ArgumentException">The byte count does not match the shape, or cols is not a whole number of blocks.</exception>
    public QuantizedMatrix(ReadOnlyMemory<byte> data, WeightFormat format, int rows, int cols)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rows);
        RowBytes = format.RowBytes(cols);
        if (data.Length != rows * RowBytes)
            throw new ArgumentException(
                $"a [{rows}, {cols}] {format} matrix is {rows * RowBytes} bytes; the data given is {data.Length}", nameof(data));
        Data = data;
        Format = format;
        Rows = rows;
        Cols = cols;
    }

    /// <summary>The stored rows back to back, <see cref="Rows"/> × <see cref="RowBytes"/> bytes, as GGUF lays them out.</summary>
    public ReadOnlyMemory<byte> Data { get; }

    /// <summary>Storage format of every row.</summary>
    public WeightFormat Format { get; }

    /// <summary>Output features: rows of W and length of y in <see cref="MatVec(ReadOnlySpan{float}, Span{float})"/>.</summary>
    public int Rows { get; }

    /// <summary>Input features: elements per row (a whole number of the format's blocks) and length of x.</summary>
    public int Cols { get; }

    /// <summary>Bytes per stored row.</summary>
    public long RowBytes { get; }

    /// <summary>The stored bytes of row <paramref name="row"/>.</summary>
    public ReadOnlySpan<byte> Row(int row)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual((uint)row, (uint)Rows, nameof(row));
        return Data.Span.Slice(checked((int)(row * RowBytes)), (int)RowBytes);
    }

    /// <summary>y = row <paramref name="row"/> as fp32; y is [cols].</summary>
    public void DequantizeRow(int row, Span<float> y) => RowKernels.DequantizeRow(Format, Row(row), y);

    /// <summary>
    /// y = W·x, with x [cols] and y [rows]. Q8_0 and MXFP4 quantize x once to 8-bit blocks of 32, Q4_K and Q6_K to
    /// blocks of 256 (ggml's <c>vec_dot_type</c>), and multiply in integers; the error against the dequantized
    /// row's exact dot product is at most half a quantization step of x per element, Σ|w|·max|x_block|/254.
    /// Rows are split over the worker threads in fixed groups, so results are bitwise identical for 1 and N threads.
    /// </summary>
    public void MatVec(ReadOnlySpan<float> x, Span<float> y) => MatVec(x, y, MatVecKernels.Best);

    /// <summary><see cref="MatVec(ReadOnlySpan{float}, Span{float})"/> on a chosen kernel path (tests force each one).</summary>
    internal void MatVec(ReadOnlySpan<float> x, Span<float> y, KernelPath path)
    {
        if (x.Length != Cols)
            throw new ArgumentException($"x has {x.Length} elements; the matrix has {Cols} columns", nameof(x));
        if (y.Length != Rows)
            throw new ArgumentException($"y has {y.Length} elements; the matrix has {Rows} rows", nameof(y));
        Multiply(x, y, 1, path);
    }

    /// <summary>
    /// Decode rows batched: Y = X·Wᵀ, with X [tokens, cols] and Y [tokens, rows]. Row t of Y is bitwise <see cref="MatVec(ReadOnlySpan{float}, Span{float})"/> of
    /// row t of X: every (weight row, token) pair runs the matrix-vector arithmetic, so a token's result does not
    /// depend on the other tokens of the batch. Weight rows are read once per group of four tokens (the float formats in
    /// 4 × 4 tiles); results do not depend on the thread count. A prompt's rows go faster through <see cref="Prefill"/>.
    /// </summary>
    public void MatMul(ReadOnlySpan<float> x, Span<float> y, int tokens) => MatMul(x, y, tokens, MatVecKernels.Best);

    /// <summary><see cref="MatMul(ReadOnlySpan{float}, Span{float}, int)"/> on a chosen kernel path.</summary>
    internal void MatMul(ReadOnlySpan<float> x, Span<float> y, int tokens, KernelPath path)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(tokens);
        if (x.Length != (long)tokens * Cols)
            throw new ArgumentException($"x has {x.Length} elements; [{tokens}, {Cols}] needs {(long)tokens * Cols}", nameof(x));
        if (y.Length != (long)tokens * Rows)
            throw new ArgumentException($"y has {y.Length} elements; [{tokens}, {Rows}] needs {(long)tokens * Rows}", nameof(y));
        if (tokens == 0 || Rows == 0) return;
        Multiply(x, y, tokens, path);
    }

    /// <summary>
    /// A prompt pass: Y = X·Wᵀ, with X [tokens, cols] and Y [tokens, rows], through <see cref="PrefillKernels"/>'s
    /// packed fp32 GEMM, with W dequantized panel by panel. Row t of Y depends on row t of X alone (not on the token
    /// count or the other rows, bitwise, on any thread count), but it is not <see cref="MatVec(ReadOnlySpan{float}, Span{float})"/>'s
    /// result: choose it by something that depends only on the sequence (its prompt), never on the batch. On a
    /// machine without AVX-512 it is <see cref="MatMul(ReadOnlySpan{float}, Span{float}, int)"/>.
    /// </summary>
    public void Prefill(ReadOnlySpan<float> x, Span<float> y, int tokens)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(tokens);
        if (x.Length != (long)tokens * Cols)
            throw new ArgumentException($"x has {x.Length} elements; [{tokens}, {Cols}] needs {(long)tokens * Cols}", nameof(x));
        if (y.Length != (long)tokens * Rows)
            throw new ArgumentException($"y has {y.Length} elements; [{tokens}, {Rows}] needs {(long)tokens * Rows}", nameof(y));
        if (tokens == 0 || Rows == 0) return;
        if (!PrefillKernels.Supported)
        {
            Multiply(x, y, tokens, MatVecKernels.Best);
            return;
        }
        using MemoryHandle pin = Data.Pin();
        fixed (float* px = x)
        fixed (float* py = y)
            PrefillKernels.Multiply(Format, (byte*)pin.Pointer, RowBytes, Rows, Cols, px, tokens, py);
    }

    /// <summary>
    /// Y = X·Wᵀ where row t is a prompt row when <paramref name="prompt"/>[t]: prompt rows through
    /// <see cref="Prefill"/>, the others through <see cref="MatMul(ReadOnlySpan{float}, Span{float}, int)"/> (each
    /// bitwise its <see cref="MatVec(ReadOnlySpan{float}, Span{float})"/>). An empty mask means no prompt rows. Each
    /// row's result depends on that row and its flag alone, so rows of many sequences may share one call.
    /// </summary>
    public void MatMul(ReadOnlySpan<float> x, Span<float> y, int tokens, ReadOnlySpan<bool> prompt)
    {
        int promptRows = prompt.IsEmpty ? 0 : prompt.Count(true);
        if (!prompt.IsEmpty && prompt.Length != tokens)
            throw new ArgumentException($"the prompt mask has {prompt.Length} flags for {tokens} rows", nameof(prompt));
        if (promptRows == tokens && tokens > 0)
        {
            Prefill(x, y, tokens);
            return;
        }
        if (promptRows == 0)
        {
            if (tokens == 1) MatVec(x, y);
            else MatMul(x, y, tokens);
            return;
        }
        // Mixed rows: each kind gathered, multiplied and scattered back.
        int decodeRows = tokens - promptRows;
        var px = ArrayPool<float>.Shared.Rent(promptRows * Cols); // [P, cols]
        var py = ArrayPool<float>.Shared.Rent(promptRows * Rows); // [P, rows]
        var dx = ArrayPool<float>.Shared.Rent(decodeRows * Cols); // [T - P, cols]
        var dy = ArrayPool<float>.Shared.Rent(decodeRows * Rows); // [T - P, rows]
        try
        {
            for (int t = 0, p = 0, d = 0; t < tokens; t++)
                x.Slice(t * Cols, Cols).CopyTo(prompt[t] ? px.AsSpan(p++ * Cols, Cols) : dx.AsSpan(d++ * Cols, Cols));
            Prefill(px.AsSpan(0, promptRows * Cols), py.AsSpan(0, promptRows * Rows), promptRows);
            if (decodeRows == 1) MatVec(dx.AsSpan(0, Cols), dy.AsSpan(0, Rows));
            else MatMul(dx.AsSpan(0, decodeRows * Cols), dy.AsSpan(0, decodeRows * Rows), decodeRows);
            for (int t = 0, p = 0, d = 0; t < tokens; t++)
                (prompt[t] ? py.AsSpan(p++ * Rows, Rows) : dy.AsSpan(d++ * Rows, Rows)).CopyTo(y.Slice(t * Rows, Rows));
        }
        finally
        {
            ArrayPool<float>.Shared.Return(px);
            ArrayPool<float>.Shared.Return(py);
            ArrayPool<float>.Shared.Return(dx);
            ArrayPool<float>.Shared.Return(dy);
        }
    }

    [ThreadStatic] private static Activation[]? t_activations; // [tokens]

    private void Multiply(ReadOnlySpan<float> x, Span<float> y, int tokens, KernelPath path)
    {
        if (!MatVecKernels.Supports(path))
            throw new PlatformNotSupportedException($"this machine has no {path} kernels");
        long start = DecodeProfile.Enabled ? Stopwatch.GetTimestamp() : 0;
        int block = Q8Activation.BlockFor(Format);
        Q8Activation? q8 = null;
        if (block != 0)
        {
            q8 = Q8Activation.Current;
            q8.QuantizeRows(x, tokens, Cols, block);
        }
        long quantized = DecodeProfile.Enabled ? Stopwatch.GetTimestamp() : 0;
        if (t_activations is null || t_activations.Length < tokens)
            t_activations = GC.AllocateArray<Activation>(Math.Max(tokens, 64), pinned: true);
        using MemoryHandle pin = Data.Pin();
        fixed (float* px = x)
        fixed (float* py = y)
        {
            var acts = (Activation*)Unsafe.AsPointer(ref t_activations[0]);
            for (int t = 0; t < tokens; t++)
                acts[t] = new Activation { X = px + (long)t * Cols, Q = q8 is null ? default : q8.ViewOf(t) };
            var job = new MultiplyJob
            {
                W = (byte*)pin.Pointer, Acts = acts, Y = py, Format = Format, Path = path, Rows = Rows, Cols = Cols, RowBytes = RowBytes, Tokens = tokens,
                // Prefill streams every token's activation once per item: bigger items read them fewer times.
                ItemRows = tokens == 1 ? RowsPerItem : PrefillRowsPerItem,
            };
            Workers.For((Rows + job.ItemRows - 1) / job.ItemRows, job);
        }
        DecodeProfile.Product(start, quantized);
    }

    private struct MultiplyJob : IWorkItem
    {
        public byte* W;
        public Activation* Acts; // [tokens]
        public float* Y; // [tokens, rows]
        public WeightFormat Format;
        public KernelPath Path;
        public int Rows, Cols, Tokens, ItemRows;
        public long RowBytes;

        public readonly void Invoke(int index)
        {
            int end = Math.Min(Rows, (index + 1) * ItemRows);
            byte** rows = stackalloc byte*[4]; // [4]
            float* tile = stackalloc float[16]; // [4 rows, 4 tokens]
            bool* special = stackalloc bool[PrefillRowsPerItem]; // [item rows]
            if (Tokens > 1)
                for (int r = index * ItemRows; r < end; r++) special[r - index * ItemRows] = MatVecKernels.Special(Format, W + r * RowBytes, Cols);
            for (int t = 0; t < Tokens; t += 4)
            {
                int tokenCount = Math.Min(4, Tokens - t);
                for (int r = index * ItemRows; r < end; r += 4)
                {
                    int rowCount = Math.Min(4, end - r);
                    for (int i = 0; i < rowCount; i++) rows[i] = W + (r + i) * RowBytes;
                    if (Tokens == 1)
                    {
                        // Rows are contiguous: the next four start where these end, in this item or the next one.
                        MatVecKernels.Rows(Path, Format, rowCount, rows, Acts, Cols, Y + r, W + (r + rowCount) * RowBytes, 4 * RowBytes);
                        continue;
                    }
                    MatVecKernels.Tile(Path, Format, rowCount, rows, special + (r - index * ItemRows), tokenCount, Acts + t, Cols, tile);
                    for (int i = 0; i < rowCount; i++)
                        for (int j = 0; j < tokenCount; j++) Y[(long)(t + j) * Rows + r + i] = tile[4 * i + j];
                }
            }
        }
    }
}
