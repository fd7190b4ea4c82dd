using MoeSharp.Formats;
using MoeSharp.Kernels;

namespace MoeSharp.Tests.Formats;

/// <summary>
/// The prompt pass's panel GEMM (<see cref="QuantizedMatrix.Prefill"/>): bitwise its scalar twin in every format and
/// shape, close to the exact product of the dequantized rows, each token's row independent of the others and of the
/// thread count, and the mixed product's rows each on their own path.
/// </summary>
[Trait("Category", "Kernel")]
public class PrefillKernelTests
{
    private static readonly int[] TokenCounts = [1, 2, 7, 8, 9, 33];
    private static readonly int[] RowCounts = [1, 5, 32, 33, 70];

    /// <summary>Column counts per format: whole blocks, across one and several 256-deep panels, ragged ones for the plain floats.</summary>
    private static int[] ColumnCounts(WeightFormat format) => format.BlockSize() switch
    {
        1 => [1, 7, 256, 300, 520],
        32 => [32, 96, 288, 544],
        _ => [256, 512, 768],
    };

    private static QuantizedMatrix Matrix(WeightFormat format, int rows, int cols, ulong seed)
    {
        long rowBytes = format.RowBytes(cols);
        var data = new byte[rows * rowBytes];
        for (int r = 0; r < rows; r++)
            Quantizer.QuantizeRow(format, Numerics.Random(cols, seed + (ulong)r), data.AsSpan((int)(r * rowBytes), (int)rowBytes));
        return new QuantizedMatrix(data, format, rows, cols);
    }

    private static void SkipWithoutTheVectorPath()
    {
        if (!PrefillKernels.Supported) Assert.Skip("no AVX-512: Prefill is the row-exact MatMul here, tested by MatVecKernelTests");
    }

    [Fact]
    public void PanelGemmEqualsTwinBitwise()
    {
        SkipWithoutTheVectorPath();
        foreach (var format in WeightFormats.All)
            foreach (int cols in ColumnCounts(format))
                foreach (int rows in RowCounts)
                {
                    var w = Matrix(format, rows, cols, (ulong)(rows * 7 + cols));
                    foreach (int tokens in TokenCounts)
                    {
                        float[] x = Numerics.Random(tokens * cols, (ulong)(tokens + 100 * cols), 2f); // [T, K]
                        var fast = new float[tokens * rows]; // [T, N]
                        var twin = new float[tokens * rows]; // [T, N]
                        w.Prefill(x, fast, tokens);
                        PrefillKernels.MultiplyReference(format, w.Data.Span, rows, cols, x, tokens, twin);
                        Numerics.BitwiseEqual(twin, fast, $"{format} [{tokens}, {cols}]·[{rows}, {cols}]ᵀ");
                    }
                }
    }

    /// <summary>
    /// Against Σ w·x in double over the dequantized row: an fp32 chain of K fused multiply-adds (in blocks of 256, then
    /// the blocks added) errs by at most about (K + 1)·2⁻²⁴·Σ|w·x| (the standard γ bound), so that is the tolerance.
    /// </summary>
    [Fact]
    public void PanelGemmIsWithinTheFp32BoundOfTheExactProduct()
    {
        SkipWithoutTheVectorPath();
        foreach (var format in WeightFormats.All)
        {
            int cols = ColumnCounts(format)[^1], rows = 33, tokens = 9;
            var w = Matrix(format, rows, cols, 11);
            float[] x = Numerics.Random(tokens * cols, 12); // [T, K]
            var y = new float[tokens * rows]; // [T, N]
            w.Prefill(x, y, tokens);
            var row = new float[cols]; // [K]
            for (int r = 0; r < rows; r++)
            {
                RowKernels.DequantizeRowReference(format, w.Row(r), row);
                for (int t = 0; t < tokens; t++)
                {
                    double exact = 0, magnitude = 0;
                    for (int k = 0; k < cols; k++)
                    {
                        exact += (double)row[k] * x[t * cols + k];
                        magnitude += Math.Abs((double)row[k] * x[t * cols + k]);
                    }
                    double bound = (cols + 1) * Math.Pow(2, -24) * magnitude;
                    Assert.True(Math.Abs(y[t * rows + r] - exact) <= bound, $"{format} row {r} token {t}: {y[t * rows + r]} vs {exact} (bound {bound:G3})");
                }
            }
        }
    }

    [Fact]
    public void ATokensRowDoesNotDependOnTheOtherTokens()
    {
        SkipWithoutTheVectorPath();
        foreach (var format in WeightFormats.All)
        {
            int cols = ColumnCounts(format)[^1], rows = 70, tokens = 37;
            var w = Matrix(format, rows, cols, 21);
            float[] x = Numerics.Random(tokens * cols, 22); // [T, K]
            var all = new float[tokens * rows]; // [T, N]
            w.Prefill(x, all, tokens);
            var one = new float[rows]; // [1, N]
            foreach (int t in new[] { 0, 8, 36 })
            {
                w.Prefill(x.AsSpan(t * cols, cols), one, 1);
                Numerics.BitwiseEqual(one, all.AsSpan(t * rows, rows), $"{format} token {t} alone");
            }
            // The last 7 tokens as their own call: one ragged micro-panel, where two of them sat in a full one before.
            var tail = new float[7 * rows]; // [7, N]
            w.Prefill(x.AsSpan((tokens - 7) * cols), tail, 7);
            Numerics.BitwiseEqual(all.AsSpan((tokens - 7) * rows), tail, $"{format} last seven tokens");
        }
    }

    [Fact]
    public void OneAndTwoThreadsAreBitwiseEqual()
    {
        foreach (var format in WeightFormats.All)
        {
            int cols = ColumnCounts(format)[^1], rows = 200, tokens = 19;
            var w = Matrix(format, rows, cols, 31);
            float[] x = Numerics.Random(tokens * cols, 32); // [T, K]
            var one = new float[tokens * rows]; // [T, N]
            var two = new float[tokens * rows]; // [T, N]
            using (Workers.Limit(1)) w.Prefill(x, one, tokens);
            using (Workers.Limit(2)) w.Prefill(x, two, tokens);
            Numerics.BitwiseEqual(one, two, $"{format} 1 vs 2 threads");
        }
    }

    [Fact]
    public void AMixedProductRunsPromptRowsThroughPrefillAndTheOthersThroughMatVec()
    {
        foreach (var format in WeightFormats.All)
        {
            int cols = ColumnCounts(format)[^1], rows = 40, tokens = 7;
            var w = Matrix(format, rows, cols, 41);
            float[] x = Numerics.Random(tokens * cols, 42); // [T, K]
            bool[] prompt = [false, true, true, false, true, true, false];
            var y = new float[tokens * rows]; // [T, N]
            w.MatMul(x, y, tokens, prompt);
            var alone = new float[rows]; // [N]
            for (int t = 0; t < tokens; t++)
            {
                if (prompt[t]) w.Prefill(x.AsSpan(t * cols, cols), alone, 1);
                else w.MatVec(x.AsSpan(t * cols, cols), alone);
                Numerics.BitwiseEqual(alone, y.AsSpan(t * rows, rows), $"{format} token {t} ({(prompt[t] ? "prompt" : "decode")})");
            }
            // An empty mask and an all-false one are the matrix-vector arithmetic throughout.
            var none = new float[tokens * rows]; // [T, N]
            w.MatMul(x, none, tokens, new bool[tokens]);
            var exact = new float[tokens * rows]; // [T, N]
            w.MatMul(x, exact, tokens);
            Numerics.BitwiseEqual(exact, none, $"{format} all-false mask");
        }
    }

    [Fact]
    public void AMaskOfTheWrongLengthIsNamed()
    {
        var w = Matrix(WeightFormat.Q8_0, 4, 32, 1);
        var ex = Assert.Throws<ArgumentException>(() => w.MatMul(new float[3 * 32], new float[3 * 4], 3, new bool[2]));
        Assert.StartsWith("the prompt mask has 2 flags for 3 rows", ex.Message);
    }
}
