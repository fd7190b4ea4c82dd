using MoeSharp.Formats;
using MoeSharp.Kernels;

namespace MoeSharp.Tests.Formats;

/// <summary>The vector paths of every format against the scalar twins, over many row lengths.</summary>
[Trait("Category", "Kernel")]
public unsafe class RowKernelTests
{
    /// <summary>Row lengths: 0, then 1..9 blocks and a longer row, in whole blocks (every length 0..256 for block size 1).</summary>
    private static IEnumerable<int> Lengths(WeightFormat format)
    {
        int block = format.BlockSize();
        if (block == 1) return Enumerable.Range(0, 257).Append(4099);
        return Enumerable.Range(0, 10).Select(b => b * block).Append(16 * block);
    }

    [Fact]
    public void DequantizeMatchesTwinBitwise()
    {
        // The vector paths round exactly as the twins (no fused multiply-add), so the tolerance is 0.
        foreach (var format in WeightFormats.All)
        {
            foreach (int n in Lengths(format))
            {
                byte[] row = Quantized(format, n, (ulong)n + 1);
                var fast = new float[n];
                var twin = new float[n];
                RowKernels.DequantizeRow(format, row, fast);
                RowKernels.DequantizeRowReference(format, row, twin);
                Numerics.BitwiseEqual(twin, fast, $"{format} n={n}");
            }
        }
    }

    [Fact]
    public void DotMatchesTwin()
    {
        foreach (var format in WeightFormats.All)
        {
            foreach (int n in Lengths(format))
            {
                byte[] row = Quantized(format, n, (ulong)n + 7);
                float[] x = Numerics.Random(n, (ulong)n + 11, 3f);
                var w = new float[n];
                RowKernels.DequantizeRowReference(format, row, w);
                double twin = RowKernels.DotReference(format, row, x);
                float fast = RowKernels.Dot(format, row, x);
                // fp32 accumulation: each lane sums ≤ n/16 terms in order, then ≤ 6 tree levels and per-block
                // partial sums, so ≤ n/16 + 64 roundings of 2^-24 each, relative to the sum of term magnitudes.
                // Formats with a min (Q4_K) compute d·s·Σq·x − dmin·m·Σx, whose terms are bounded by 3·max|w|·|x|.
                double magnitude = 0;
                float wmax = 0;
                foreach (float v in w) wmax = Math.Max(wmax, Math.Abs(v));
                foreach (float v in x) magnitude += 3.0 * wmax * Math.Abs(v);
                double tolerance = (n / 16 + 64) * Math.ScaleB(1, -24) * magnitude;
                Assert.True(Math.Abs(fast - twin) <= tolerance,
                    $"{format} n={n}: dot {fast:R} vs twin {twin:R} (|diff| {Math.Abs(fast - twin):G3} > {tolerance:G3})");
            }
        }
    }

    [Fact]
    public void MatVecMatchesRowTwinsForOddRowCounts()
    {
        foreach (var format in WeightFormats.All)
        {
            int cols = 2 * format.BlockSize() + (format.BlockSize() == 1 ? 17 : 0);
            foreach (int rows in new[] { 1, 7, 33 })
            {
                var matrix = RandomMatrix(format, rows, cols, (ulong)rows);
                float[] x = Numerics.Random(cols, 5, 2f);
                var y = new float[rows];
                matrix.MatVec(x, y);
                var a = Q8Activation.Current;
                int block = Q8Activation.BlockFor(format);
                if (block != 0) a.Quantize(x, block);
                var one = new float[1];
                for (int r = 0; r < rows; r++)
                {
                    // A row alone gives what it gave inside its group of four: the tolerance is 0.
                    fixed (byte* w = matrix.Row(r))
                    fixed (float* px = x, py = one)
                        MatVecKernels.Dot(format, w, matrix.RowBytes, 1, px, block != 0 ? a.View : default, cols, py);
                    Assert.Equal(one[0], y[r]);
                }
            }
        }
    }

    [Fact]
    public void MatVecIsBitwiseIdenticalForOneAndTwoThreads()
    {
        foreach (var format in WeightFormats.All)
        {
            var matrix = RandomMatrix(format, 301, 512, 3);
            float[] x = Numerics.Random(512, 4, 1f);
            foreach (var path in MatVecKernelTests.Paths)
            {
                var results = new List<float[]>();
                foreach (int threads in new[] { 1, 2 })
                {
                    using var limit = Workers.Limit(threads);
                    var y = new float[301];
                    matrix.MatVec(x, y, path);
                    results.Add(y);
                }
                Numerics.BitwiseEqual(results[0], results[1], $"{format} {path}");
            }
        }
    }

    [Fact]
    public void ShapeMismatchesNameTheSizes()
    {
        var e = Assert.Throws<ArgumentException>(() => RowKernels.Dot(WeightFormat.Q4_K, new byte[144], new float[100]));
        Assert.Contains("multiple", e.Message);
        e = Assert.Throws<ArgumentException>(() => new QuantizedMatrix(new byte[100], WeightFormat.Q8_0, 3, 32));
        Assert.Contains("102 bytes", e.Message);
    }

    internal static byte[] Quantized(WeightFormat format, int n, ulong seed)
    {
        var row = new byte[format.RowBytes(n)];
        Quantizer.QuantizeRow(format, Numerics.Random(n, seed, 2f), row);
        return row;
    }

    internal static QuantizedMatrix RandomMatrix(WeightFormat format, int rows, int cols, ulong seed)
    {
        long rowBytes = format.RowBytes(cols);
        var data = new byte[rows * rowBytes];
        float[] values = Numerics.Random(rows * cols, seed, 1f);
        for (int r = 0; r < rows; r++)
            Quantizer.QuantizeRow(format, values.AsSpan(r * cols, cols), data.AsSpan((int)(r * rowBytes), (int)rowBytes));
        return new QuantizedMatrix(data, format, rows, cols);
    }
}
