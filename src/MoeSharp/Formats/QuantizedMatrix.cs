using System.Buffers;
using MoeSharp.Kernels;

namespace MoeSharp.Formats;

/// <summary>
/// A [rows, cols] weight matrix whose rows are stored one after another in a <see cref="WeightFormat"/>, over
/// memory it does not own (an array, or a tensor of a memory-mapped file used in place).
/// </summary>
public sealed unsafe class QuantizedMatrix
{
    /// <summary>Rows per parallel work item: enough bytes per item to amortise the hand-off, few enough to balance.</summary>
    private const int RowsPerItem = 16;

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

    /// <summary>Output features: rows of W and length of y in <see cref="MatVec"/>.</summary>
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
    /// y = W·x, with x [cols] and y [rows]. Rows are split over the worker threads; each row's dot product is
    /// the same computation whatever the thread count, so results are bitwise identical for 1 and N threads.
    /// </summary>
    public void MatVec(ReadOnlySpan<float> x, Span<float> y)
    {
        if (x.Length != Cols)
            throw new ArgumentException($"x has {x.Length} elements; the matrix has {Cols} columns", nameof(x));
        if (y.Length != Rows)
            throw new ArgumentException($"y has {y.Length} elements; the matrix has {Rows} rows", nameof(y));
        using MemoryHandle pin = Data.Pin();
        fixed (float* px = x)
        fixed (float* py = y)
        {
            var job = new MatVecJob { W = (byte*)pin.Pointer, X = px, Y = py, Format = Format, Rows = Rows, Cols = Cols, RowBytes = RowBytes };
            Workers.For((Rows + RowsPerItem - 1) / RowsPerItem, job);
        }
    }

    private struct MatVecJob : IWorkItem
    {
        public byte* W;
        public float* X, Y; // [cols], [rows]
        public WeightFormat Format;
        public int Rows, Cols;
        public long RowBytes;

        public readonly void Invoke(int index)
        {
            int end = Math.Min(Rows, (index + 1) * RowsPerItem);
            for (int r = index * RowsPerItem; r < end; r++) Y[r] = RowKernels.Dot(Format, W + r * RowBytes, X, Cols);
        }
    }
}
