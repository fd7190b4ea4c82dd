using MoeSharp.Formats;
using MoeSharp.Kernels;

namespace MoeSharp.Tests.Formats;

/// <summary>
/// Decode and prefill kernels: the 8-bit activation quantizer and the dot products of every kernel path this machine
/// runs (AVX-512, AVX2, scalar; forced through the internal path switch) against their scalar twins, the twins against
/// the exact dot product of the dequantized row, and the prefill product row for row against the matrix-vector one.
/// </summary>
[Trait("Category", "Kernel")]
public unsafe class MatVecKernelTests
{
    private static readonly WeightFormat[] IntegerFormats = [WeightFormat.Q8_0, WeightFormat.MXFP4, WeightFormat.Q4_K, WeightFormat.Q6_K];

    private static IEnumerable<int> Blocks() => Enumerable.Range(1, 9).Append(16);

    /// <summary>Every kernel path this machine supports; the scalar twin always.</summary>
    internal static KernelPath[] Paths { get; } =
        [.. new[] { KernelPath.Scalar, KernelPath.Avx2, KernelPath.Avx512 }.Where(MatVecKernels.Supports)];

    [Fact]
    public void TheBestPathIsAVectorPathWhereTheMachineHasOne()
    {
        if (System.Runtime.Intrinsics.X86.Avx2.IsSupported) Assert.NotEqual(KernelPath.Scalar, MatVecKernels.Best);
        Assert.Contains(MatVecKernels.Best, Paths);
    }

    [Fact]
    public void ActivationQuantizerMatchesTwinBitwise()
    {
        foreach (int block in new[] { 32, 256 })
        {
            foreach (int blocks in Enumerable.Range(0, 6).Append(16))
            {
                float[] x = Numerics.Random(blocks * block, (ulong)(blocks + block), 3f);
                if (blocks > 1) Array.Clear(x, 0, block); // an all-zero block: d = 0, q = 0
                var a = Q8Activation.Current;
                a.Quantize(x, block);
                var fast = a.Snapshot();
                a.QuantizeReference(x, block);
                var twin = a.Snapshot();
                string what = $"block={block} blocks={blocks}";
                Assert.Equal(twin.Q, fast.Q);
                Numerics.BitwiseEqual(twin.D, fast.D, what);
                Assert.Equal(twin.Sums16, fast.Sums16);
                Assert.Equal(twin.Sums32, fast.Sums32);
                for (int i = 0; i < x.Length; i++)
                    Assert.True(Math.Abs(x[i] - twin.D[i / block] * twin.Q[i]) <= 0.5001 * twin.D[i / block], $"{what} element {i}");
            }
        }
    }

    [Fact]
    public void AQuantizedActivationIsReusedOnlyForTheSameBits()
    {
        foreach (int block in new[] { 32, 256 })
        {
            float[] x = Numerics.Random(4 * block, (ulong)block, 3f);
            var a = Q8Activation.Current;
            a.Quantize(x, block);
            var first = a.Snapshot();
            // In place, as a reused activation buffer changes: the block's maximum moves, so its d and q change.
            x[block + 5] = 7f;
            a.Quantize(x, block);
            var changed = a.Snapshot();
            var fresh = new Q8Activation();
            fresh.Quantize(x, block);
            var expected = fresh.Snapshot();
            Assert.Equal(expected.Q, changed.Q);
            Numerics.BitwiseEqual(expected.D, changed.D, $"block={block} after an in-place change");
            Assert.Equal(expected.Sums16, changed.Sums16);
            Assert.NotEqual(first.Q, changed.Q);
            a.Quantize(x, block); // the same bits again: reused, and still the same values
            Assert.Equal(expected.Q, a.Snapshot().Q);
        }
    }

    [Fact]
    public void DecodeLeversChangeNoResult()
    {
        // Prefetching, reusing a quantized x and the work item size change speed only: bitwise the same y.
        foreach (var format in WeightFormats.All)
        {
            var matrix = RowKernelTests.RandomMatrix(format, 301, 512, 5);
            float[] x = Numerics.Random(512, 6, 1f);
            var on = new float[301];
            var off = new float[301];
            using (Workers.Limit(2))
            {
                matrix.MatVec(x, on);
                matrix.MatVec(x, on); // the second call reuses the quantized x
                try
                {
                    MatVecKernels.PrefetchAhead = false;
                    Q8Activation.Reuse = false;
                    QuantizedMatrix.RowsPerItem = 16;
                    matrix.MatVec(x, off);
                }
                finally
                {
                    MatVecKernels.PrefetchAhead = true;
                    Q8Activation.Reuse = true;
                    QuantizedMatrix.RowsPerItem = 64;
                }
            }
            Numerics.BitwiseEqual(off, on, format.ToString());
        }
    }

    [Fact]
    public void IntegerDotsEqualTwinBitwiseWhenEveryScaleIsAPowerOfTwo()
    {
        // Power-of-two weight scales and x whose every block holds ±127 (so d = 1 and q = x) make every fp32 step
        // exact, so any difference would be in the integer parts: the tolerance is 0.
        foreach (var format in IntegerFormats)
        {
            foreach (int blocks in Blocks())
            {
                int n = blocks * format.BlockSize();
                var rows = new byte[4][];
                for (int r = 0; r < 4; r++) rows[r] = PowerOfTwoScaledRow(format, blocks, (ulong)(100 * blocks + r));
                var rng = new Random(blocks);
                var x = new float[n];
                for (int i = 0; i < n; i++) x[i] = rng.Next(-127, 128);
                for (int b = 0; b < n / 32; b++) x[32 * b + rng.Next(32)] = rng.Next(2) == 0 ? 127 : -127;
                CompareToTwin(format, rows, x, (_, _) => 0, $"exact {format} blocks={blocks}");
            }
        }
    }

    [Fact]
    public void IntegerDotsMatchTwin()
    {
        foreach (var format in IntegerFormats)
        {
            foreach (int blocks in Blocks())
            {
                int n = blocks * format.BlockSize();
                var rows = new byte[4][];
                for (int r = 0; r < 4; r++) rows[r] = RowKernelTests.Quantized(format, n, (ulong)(7 * blocks + r));
                float[] x = Numerics.Random(n, (ulong)blocks + 11, 3f);
                // fp32 in the vector paths: each of 16 (AVX-512) or 8 (AVX2) lanes sums ≤ n/8 scaled block terms, then
                // ≤ 6 reduction levels and ≤ 3 tail blocks, so ≤ n/8 + 64 roundings of 2^-24 relative to the sum of term
                // magnitudes, ≤ 3·max|w|·Σ|x̂| (Q4_K's scale and min terms are bounded by 2·max|w| and max|w|).
                CompareToTwin(format, rows, x, (w, xhat) => (n / 8 + 64) * Math.ScaleB(1, -24) * 3 * MaxAbs(w) * SumAbs(xhat),
                    $"{format} blocks={blocks}");
            }
        }
    }

    [Fact]
    public void TwinIsTheDequantizedDotWithinHalfAnActivationStep()
    {
        foreach (var format in IntegerFormats)
        {
            foreach (int blocks in Blocks())
            {
                int n = blocks * format.BlockSize(), block = Q8Activation.BlockFor(format);
                byte[] row = RowKernelTests.Quantized(format, n, (ulong)blocks + 3);
                float[] x = Numerics.Random(n, (ulong)blocks + 5, 2f);
                var w = new float[n];
                RowKernels.DequantizeRowReference(format, row, w);
                var a = Q8Activation.Current;
                a.Quantize(x, block);
                var (q, d, _, _) = a.Snapshot();
                double twin, exact = 0, bound = 0, magnitude = 0;
                fixed (byte* pr = row) twin = MatVecKernels.DotReference(format, pr, a.View, n);
                for (int i = 0; i < n; i++)
                {
                    exact += (double)w[i] * x[i];
                    // |x − d·q| ≤ d/2, plus the fp32 rounding of x·(1/d) (a few ulps of 127, relative 2^-22).
                    bound += 0.5001 * d[i / block] * Math.Abs(w[i]);
                    magnitude += 3.0 * MaxAbs(w) * Math.Abs(d[i / block] * q[i]);
                }
                // The twin's fp32 scale products (d_w·d_x, and d·s inside the dequantized w) round by 2^-24 each.
                bound += 4 * Math.ScaleB(1, -24) * magnitude;
                Assert.True(Math.Abs(twin - exact) <= bound,
                    $"{format} blocks={blocks}: twin {twin:R} vs exact {exact:R} (|diff| {Math.Abs(twin - exact):G3} > {bound:G3})");
            }
        }
    }

    [Fact]
    public void FloatFormatsMatchTheRowTwin()
    {
        foreach (var format in new[] { WeightFormat.F32, WeightFormat.F16, WeightFormat.BF16 })
        {
            foreach (int n in Enumerable.Range(0, 70).Append(4099))
            {
                var rows = new byte[4][];
                for (int r = 0; r < 4; r++) rows[r] = RowKernelTests.Quantized(format, n, (ulong)(3 * n + r));
                float[] x = Numerics.Random(n, (ulong)n + 1, 3f);
                var y = new float[4];
                var all = rows.SelectMany(r => r).ToArray();
                var pointers = new nint[4];
                foreach (var path in Paths)
                {
                    fixed (float* px = x)
                    fixed (float* py = y)
                    fixed (byte* pw = all)
                    fixed (nint* pp = pointers)
                    {
                        for (int r = 0; r < 4; r++) pointers[r] = (nint)(pw + r * rows[0].Length);
                        var act = new Activation { X = px };
                        MatVecKernels.Rows(path, format, 4, (byte**)pp, &act, n, py);
                    }
                    for (int r = 0; r < 4; r++)
                    {
                        var w = new float[n];
                        RowKernels.DequantizeRowReference(format, rows[r], w);
                        double twin = RowKernels.DotReference(format, rows[r], x);
                        // fp32: 16 or 8 lanes of ≤ n/8 fused steps, a 4-level reduction and ≤ 15 tail steps.
                        double tolerance = (n / 8 + 32) * Math.ScaleB(1, -24) * SumAbsProducts(w, x);
                        Assert.True(Math.Abs(y[r] - twin) <= tolerance, $"{format} {path} n={n} row {r}: {y[r]:R} vs {twin:R}");
                    }
                }
            }
        }
    }

    [Fact]
    public void NonFiniteHalfWeightsStayNonFinite()
    {
        var row = new byte[2 * 64];
        row[2 * 5 + 1] = 0x7C; // +Inf at element 5: the fast conversion would make it 65536
        float[] x = Numerics.Random(64, 2, 1f);
        var matrix = new QuantizedMatrix(row, WeightFormat.F16, 1, 64);
        var y = new float[1];
        foreach (var path in Paths)
        {
            matrix.MatVec(x, y, path);
            Assert.True(float.IsInfinity(y[0]), $"{path}: got {y[0]}");
            var ys = new float[3];
            matrix.MatMul([.. x, .. x, .. x], ys, 3, path);
            Assert.True(float.IsInfinity(ys[2]), $"{path} MatMul: got {ys[2]}");
        }
    }

    [Fact]
    public void MatMulRowsAreMatVecBitwiseForEveryTokenCountAndThreadCount()
    {
        // A batched token's output must not depend on the other tokens: row t of MatMul(X) is MatVec(X[t]) bit for
        // bit, on every path, for 1..33 tokens (whole groups of four and every remainder) and 1 and 2 threads. The
        // tolerance is 0. Odd block counts exercise the kernels' tail blocks (Q8_0 pairs, MXFP4 quads).
        foreach (var format in WeightFormats.All)
        {
            int block = Math.Max(32, format.BlockSize());
            int cols = format.BlockSize() == 1 ? 2 * 32 + 7 : (format.BlockSize() == 32 ? 7 : 3) * block;
            const int Rows = 70; // prefill: a 64-row work item and a partial one; decode: four 16-row items and a partial one
            var matrix = RowKernelTests.RandomMatrix(format, Rows, cols, (ulong)format);
            foreach (var path in Paths)
            {
                for (int tokens = 1; tokens <= 33; tokens++)
                {
                    float[] x = Numerics.Random(tokens * cols, (ulong)(100 * tokens) + (ulong)format, 2f);
                    var alone = new float[tokens * Rows]; // [T, rows]
                    for (int t = 0; t < tokens; t++) matrix.MatVec(x.AsSpan(t * cols, cols), alone.AsSpan(t * Rows, Rows), path);
                    foreach (int threads in new[] { 1, 2 })
                    {
                        using var limit = Workers.Limit(threads);
                        var y = new float[tokens * Rows];
                        matrix.MatMul(x, y, tokens, path);
                        Numerics.BitwiseEqual(alone, y, $"{format} {path} tokens={tokens} threads={threads}");
                    }
                }
            }
        }
    }

    [Fact]
    public void MatMulShapeMismatchNamesTheSizes()
    {
        var matrix = RowKernelTests.RandomMatrix(WeightFormat.Q8_0, 4, 32, 1);
        var e = Assert.Throws<ArgumentException>(() => matrix.MatMul(new float[64], new float[4], 2));
        Assert.Contains("[2, 4] needs 8", e.Message);
    }

    private static void CompareToTwin(WeightFormat format, byte[][] rows, float[] x, Func<float[], float[], double> tolerance, string what)
    {
        int n = x.Length;
        var a = Q8Activation.Current;
        a.Quantize(x, Q8Activation.BlockFor(format));
        var (q, d, _, _) = a.Snapshot();
        var xhat = new float[n];
        for (int i = 0; i < n; i++) xhat[i] = d[i / a.Block] * q[i];
        var all = rows.SelectMany(r => r).ToArray();
        var y = new float[4];
        fixed (byte* pw = all)
        fixed (float* py = y)
        {
            byte** pointers = stackalloc byte*[4];
            for (int r = 0; r < 4; r++) pointers[r] = pw + r * rows[0].Length;
            var act = new Activation { Q = a.View };
            foreach (var path in Paths)
            {
                MatVecKernels.Rows(path, format, 4, pointers, &act, n, py);
                for (int r = 0; r < 4; r++)
                {
                    double twin = MatVecKernels.DotReference(format, pointers[r], a.View, n);
                    var w = new float[n];
                    RowKernels.DequantizeRowReference(format, rows[r], w);
                    double tol = tolerance(w, xhat);
                    Assert.True(Math.Abs(y[r] - twin) <= tol, $"{what} {path} row {r}: {y[r]:R} vs twin {twin:R} (tolerance {tol:G3})");
                }
            }
        }
    }

    /// <summary>
    /// Random quantized bytes with every scale field set to a power of two (2^0..2^2) and Q6_K's int8 scales within
    /// ±16, so that every partial sum is an integer below 2^24, which fp32 holds exactly.
    /// </summary>
    private static byte[] PowerOfTwoScaledRow(WeightFormat format, int blocks, ulong seed)
    {
        var rng = new Random((int)seed);
        var row = new byte[format.RowBytes(blocks * format.BlockSize())];
        rng.NextBytes(row);
        ushort Pow2() => (ushort)((15 + rng.Next(3)) << 10); // binary16 exponent 15..17 = 2^0..2^2
        for (int b = 0; b < blocks; b++)
        {
            int o = b * format.BlockBytes();
            switch (format)
            {
                case WeightFormat.Q8_0: BitConverter.TryWriteBytes(row.AsSpan(o), Pow2()); break;
                case WeightFormat.Q4_K:
                    BitConverter.TryWriteBytes(row.AsSpan(o), Pow2());
                    BitConverter.TryWriteBytes(row.AsSpan(o + 2), Pow2());
                    break;
                case WeightFormat.Q6_K:
                    BitConverter.TryWriteBytes(row.AsSpan(o + 208), Pow2());
                    for (int k = 0; k < 16; k++) row[o + 192 + k] = (byte)(sbyte)rng.Next(-16, 17);
                    break;
                case WeightFormat.MXFP4: row[o] = (byte)(128 + rng.Next(3)); break; // E8M0Half: 2^0..2^2
            }
        }
        return row;
    }

    private static double MaxAbs(float[] v)
    {
        double m = 0;
        foreach (float e in v) m = Math.Max(m, Math.Abs(e));
        return m;
    }

    private static double SumAbs(float[] v)
    {
        double s = 0;
        foreach (float e in v) s += Math.Abs(e);
        return s;
    }

    private static double SumAbsProducts(float[] a, float[] b)
    {
        double s = 0;
        for (int i = 0; i < a.Length; i++) s += Math.Abs((double)a[i] * b[i]);
        return s;
    }
}
