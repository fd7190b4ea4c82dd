using MoeSharp.Formats;
using MoeSharp.Tensors;

namespace MoeSharp.Tests.Formats;

/// <summary>Quantize → dequantize round trips, with error bounds derived from each format's step size.</summary>
public class QuantizerTests
{
    private const int N = 4096;

    [Fact]
    public void FloatFormatsRoundToNearest()
    {
        float[] x = Numerics.Random(N, 1, 100f);
        // Round to nearest: half an ulp, i.e. 2^-11 of |x| for binary16 (10-bit mantissa; x is in its normal
        // range here) and 2^-8 for bfloat16 (7-bit mantissa).
        CheckEach(WeightFormat.F16, x, i => Math.ScaleB(Math.Abs(x[i]), -11));
        CheckEach(WeightFormat.BF16, x, i => Math.ScaleB(Math.Abs(x[i]), -8));
        CheckEach(WeightFormat.F32, x, _ => 0);
    }

    [Fact]
    public void Q8_0ErrorIsHalfAStepPlusScaleRounding()
    {
        float[] x = Numerics.Random(N, 2, 3f);
        // Per block d = max|x|/127; |x − q·d| ≤ d/2, and storing d in f16 moves q·d by at most 127·d·2^-11.
        CheckEach(WeightFormat.Q8_0, x, i => BlockMax(x, i, 32) / 127 * (0.5 + 127 * Math.ScaleB(1, -11)) * (1 + 1e-6));
    }

    [Fact]
    public void Q4_KAndQ6_KStayWithinTheirSteps()
    {
        float[] x = Numerics.Random(N, 3, 1f);
        // Q4_K: 16 levels over a sub-block's range of at most 2 (x in [−1, 1]): step ≤ 2/15. The least-squares scale
        // search may clip the range ends, so allow one full step per element; RMS error ≤ step/√12 for uniform data,
        // with 25% for the 6-bit scale rounding.
        CheckEach(WeightFormat.Q4_K, x, _ => 2.0 / 15);
        CheckRms(WeightFormat.Q4_K, x, 1.25 * 2.0 / 15 / Math.Sqrt(12));
        // Q6_K: 64 levels with a step of about max|x|/32 ≤ 1/32 per 16 elements.
        CheckEach(WeightFormat.Q6_K, x, _ => 1.0 / 32);
        CheckRms(WeightFormat.Q6_K, x, 1.25 * (1.0 / 32) / Math.Sqrt(12));
    }

    [Fact]
    public void Mxfp4ErrorIsBoundedByTheWidestGap()
    {
        float[] x = Numerics.Random(N, 4, 5f);
        // e = ⌊log2 max|x|⌋ − 2 + 127, so in units of d = 2^(e−128) = 2^(⌊log2 max|x|⌋ − 3) every |x| < 16d, while
        // the doubled E2M1 grid is 0, 1, 2, 3, 4, 6, 8, 12: gaps ≤ 4, and beyond 12 the clip costs < 4: error ≤ 4d.
        CheckEach(WeightFormat.MXFP4, x, i => 4 * Math.ScaleB(1, (int)Math.Floor(Math.Log2(BlockMax(x, i, 32))) - 3));
    }

    [Fact]
    public void ZeroRowsStayZero()
    {
        foreach (var format in WeightFormats.All)
        {
            int n = 256;
            var row = new byte[format.RowBytes(n)];
            Quantizer.QuantizeRow(format, new float[n], row);
            var y = new float[n];
            RowKernels.DequantizeRow(format, row, y);
            Assert.All(y, v => Assert.Equal(0f, Math.Abs(v)));
        }
    }

    [Theory]
    [InlineData(WeightFormat.Q8_0)]
    [InlineData(WeightFormat.Q4_K)]
    [InlineData(WeightFormat.Q6_K)]
    [InlineData(WeightFormat.MXFP4)]
    public void LanesEqualTheReferenceByteForByte(WeightFormat format)
    {
        // Exact equality (tolerance 0): the lane path must round every sum as ggml's reference does. Rows of 1, 2 and 3
        // super-blocks (Q4_K pairs them, so 1 and 3 leave a half-empty pass); each 16-element piece is drawn from one of
        // the shapes where the reference branches: flat (zero, ±constant), below Q6_K's 1e-15 floor, all positive
        // (Q4_K's min clamps to 0), all negative, ±0 mixed, values on a coarse grid (rounding ties), an outlier, and
        // plain noise at several magnitudes.
        var rng = new Rng(11);
        int rows = 0;
        foreach (int n in (int[])[256, 512, 768])
            for (int r = 0; r < 60; r++, rows++)
            {
                var x = new float[n];
                for (int piece = 0; piece < n / 16; piece++)
                {
                    int shape = (int)(rng.NextFloat() * 11);
                    float scale = MathF.Pow(10, -4 + 6 * rng.NextFloat());
                    for (int i = 16 * piece; i < 16 * piece + 16; i++)
                    {
                        float u = 2 * rng.NextFloat() - 1;
                        x[i] = shape switch
                        {
                            0 => 0f,
                            1 => 0.5f,
                            2 => -0.25f,
                            3 => 1e-17f * u,
                            4 => scale * Math.Abs(u),
                            5 => -scale * Math.Abs(u),
                            6 => u < 0 ? -0f : 0f,
                            7 => MathF.Round(u * 8) / 8,
                            8 => i % 16 == 3 ? 1000 * scale : scale * u * 1e-3f,
                            9 => scale * u * u * u * u * u,
                            _ => scale * u,
                        };
                    }
                }
                AssertSameBytes(format, x, $"row {rows} (n {n})");
            }
        // Q8_0's rounding ties: with max|x| = 127 the scale is 1, so x·(1/d) lands exactly on ±k.5, which round away
        // from zero; 0.49999997 rounds to 0 (adding 0.5 first would give 1).
        float[] ties = new float[256];
        float[] tieValues = [127, 2.5f, -2.5f, 3.5f, -3.5f, 0.5f, -0.5f, 0.49999997f, -0.49999997f, 126.5f, -126.5f, 1.5f, -1.5f, 0, -0f];
        for (int i = 0; i < ties.Length; i++) ties[i] = i % 32 == 0 ? 127 : tieValues[i % tieValues.Length];
        AssertSameBytes(format, ties, "ties");
    }

    private static void AssertSameBytes(WeightFormat format, float[] x, string what)
    {
        var lanes = new byte[format.RowBytes(x.Length)];
        var reference = new byte[lanes.Length];
        Quantizer.Quantize(format, x, lanes, lanes: true);
        Quantizer.QuantizeRowReference(format, x, reference);
        int at = lanes.AsSpan().CommonPrefixLength(reference);
        Assert.True(at == lanes.Length, $"{format} {what}: byte {at} is {(at < lanes.Length ? lanes[at] : 0)} on the lanes, {(at < lanes.Length ? reference[at] : 0)} in the reference");
    }

    private static double BlockMax(float[] x, int i, int block)
    {
        int start = i / block * block;
        double max = 0;
        for (int j = start; j < start + block; j++) max = Math.Max(max, Math.Abs(x[j]));
        return max;
    }

    private static float[] RoundTrip(WeightFormat format, float[] x)
    {
        var row = new byte[format.RowBytes(x.Length)];
        Quantizer.QuantizeRow(format, x, row);
        var y = new float[x.Length];
        RowKernels.DequantizeRow(format, row, y);
        return y;
    }

    private static void CheckEach(WeightFormat format, float[] x, Func<int, double> bound)
    {
        float[] y = RoundTrip(format, x);
        for (int i = 0; i < x.Length; i++)
            Assert.True(Math.Abs(y[i] - x[i]) <= bound(i),
                $"{format} element {i}: {x[i]:R} came back as {y[i]:R} (|err| {Math.Abs(y[i] - x[i]):G3} > {bound(i):G3})");
    }

    private static void CheckRms(WeightFormat format, float[] x, double bound)
    {
        float[] y = RoundTrip(format, x);
        double sum = 0;
        for (int i = 0; i < x.Length; i++) sum += (y[i] - (double)x[i]) * (y[i] - x[i]);
        double rms = Math.Sqrt(sum / x.Length);
        Assert.True(rms <= bound, $"{format} RMS error {rms:G4} > {bound:G4}");
    }
}
