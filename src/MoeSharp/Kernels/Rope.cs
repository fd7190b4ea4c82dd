using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace MoeSharp.Kernels;

/// <summary>Which elements of a head RoPE rotates together.</summary>
public enum RopeStyle
{
    /// <summary>Pairs (i, i + hd/2): the Hugging Face "rotate_half" layout.</summary>
    HalfRotate,

    /// <summary>Pairs (2i, 2i + 1) as complex numbers: Meta's and Mistral's reference layout.</summary>
    Interleaved,
}

/// <summary>
/// YaRN context extension (Peng et al. 2023), as Hugging Face's <c>_compute_yarn_parameters</c> computes it: pair
/// frequencies with fewer than <see cref="BetaSlow"/> turns over the original context are interpolated (divided by
/// <see cref="Factor"/>), those with more than <see cref="BetaFast"/> kept, a linear ramp between; cos and sin are
/// then multiplied by the attention factor, so every q·k logit is scaled by its square.
/// </summary>
/// <param name="Factor">The context extension s (rope_scaling.factor), ≥ 1.</param>
/// <param name="OriginalContext">The context the model was pre-trained on (original_max_position_embeddings).</param>
/// <param name="BetaFast">Turns above which a frequency is extrapolated (kept): beta_fast, 32 by default.</param>
/// <param name="BetaSlow">Turns below which a frequency is interpolated: beta_slow, 1 by default.</param>
/// <param name="AttentionFactor">attention_factor; null computes it from the mscales as HF does.</param>
/// <param name="Mscale">DeepSeek's mscale; with <paramref name="MscaleAllDim"/> the factor is mscale(s, Mscale) / mscale(s, MscaleAllDim).</param>
/// <param name="MscaleAllDim">DeepSeek's mscale_all_dim.</param>
/// <param name="Truncate">Round the ramp's ends to whole dimensions (HF's truncate, true by default and in llama.cpp; GPT-OSS sets false).</param>
public sealed record YarnScaling(float Factor, int OriginalContext, float BetaFast = 32, float BetaSlow = 1, float? AttentionFactor = null,
    float? Mscale = null, float? MscaleAllDim = null, bool Truncate = true)
{
    /// <summary>The factor cos and sin are multiplied by: <see cref="AttentionFactor"/>, else 0.1·m·ln s + 1 per the mscales.</summary>
    public double ResolvedAttentionFactor
    {
        get
        {
            if (AttentionFactor is float a) return a;
            static double Get(double scale, double m) => scale <= 1 ? 1 : 0.1 * m * Math.Log(scale) + 1;
            return Mscale is float m && m != 0 && MscaleAllDim is float all && all != 0 ? Get(Factor, m) / Get(Factor, all) : Get(Factor, 1);
        }
    }

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid field.</summary>
    public void Validate()
    {
        if (!(Factor >= 1)) throw new ArgumentException($"YaRN factor must be at least 1, got {Factor}.", nameof(Factor));
        if (OriginalContext <= 0) throw new ArgumentException($"YaRN original_max_position_embeddings must be positive, got {OriginalContext}.", nameof(OriginalContext));
        if (!(BetaFast > 0) || !(BetaSlow > 0)) throw new ArgumentException($"YaRN beta_fast and beta_slow must be positive, got {BetaFast} and {BetaSlow}.", nameof(BetaFast));
        if (AttentionFactor is float a && !(a > 0)) throw new ArgumentException($"YaRN attention_factor must be positive, got {a}.", nameof(AttentionFactor));
    }

    /// <summary>
    /// The inverse frequency of each of the <paramref name="headDim"/>/2 pairs: θ^(−2i/hd) extrapolated, the same
    /// divided by the factor interpolated, mixed by the ramp over [low, high] from the correction dimensions.
    /// </summary>
    internal double[] InverseFrequencies(int headDim, double theta)
    {
        int half = headDim / 2;
        double CorrectionDim(double turns) => headDim * Math.Log(OriginalContext / (turns * 2 * Math.PI)) / (2 * Math.Log(theta));
        double low = CorrectionDim(BetaFast), high = CorrectionDim(BetaSlow);
        if (Truncate)
        {
            low = Math.Floor(low);
            high = Math.Ceiling(high);
        }
        low = Math.Max(low, 0);
        high = Math.Min(high, headDim - 1);
        if (low == high) high += 0.001; // HF's guard against a zero-width ramp
        var inv = new double[half]; // [hd/2]
        for (int i = 0; i < half; i++)
        {
            double extrapolated = Math.Pow(theta, -2.0 * i / headDim), interpolated = extrapolated / Factor;
            double keep = 1 - Math.Clamp((i - low) / (high - low), 0, 1); // share of the extrapolated frequency
            inv[i] = interpolated * (1 - keep) + extrapolated * keep;
        }
        return inv;
    }
}

/// <summary>
/// Rotary position embedding. Pair i of a head at position p turns by p·θ^(−2i/hd). The table holds cos and sin
/// [positions, hd/2], computed in double so positions far out stay accurate. With <see cref="YarnScaling"/> the
/// frequencies and the magnitude follow YaRN.
/// </summary>
public sealed class RopeTable
{
    /// <summary>Builds the table for heads of <paramref name="headDim"/> (even) elements over positions [0, <paramref name="maxPositions"/>), with base <paramref name="theta"/> (10000 in Llama, 1e6 in Mixtral), YaRN-scaled when <paramref name="yarn"/> is set.</summary>
    public RopeTable(int headDim, int maxPositions, float theta, RopeStyle style, YarnScaling? yarn = null)
    {
        yarn?.Validate();
        if (headDim <= 0 || headDim % 2 != 0) throw new ArgumentException($"RoPE head dimension must be even and positive, got {headDim}.", nameof(headDim));
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxPositions);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(theta);
        HeadDim = headDim;
        MaxPositions = maxPositions;
        Style = style;
        Yarn = yarn;
        int half = headDim / 2;
        double[]? inv = yarn?.InverseFrequencies(headDim, theta); // [hd/2]
        double magnitude = yarn?.ResolvedAttentionFactor ?? 1;
        Cos = new float[maxPositions * half]; // [positions, hd/2]
        Sin = new float[maxPositions * half]; // [positions, hd/2]
        for (int p = 0; p < maxPositions; p++)
            for (int i = 0; i < half; i++)
            {
                double angle = p * (inv is null ? Math.Pow(theta, -2.0 * i / headDim) : inv[i]);
                Cos[p * half + i] = (float)(magnitude * Math.Cos(angle));
                Sin[p * half + i] = (float)(magnitude * Math.Sin(angle));
            }
    }

    /// <summary>Elements per attention head the table rotates (hd).</summary>
    public int HeadDim { get; }

    /// <summary>Positions the table covers; a sequence plus its cache offset must fit inside.</summary>
    public int MaxPositions { get; }

    /// <summary>Which element pairs are rotated together.</summary>
    public RopeStyle Style { get; }

    /// <summary>The YaRN scaling the table was built with; null for plain RoPE.</summary>
    public YarnScaling? Yarn { get; }

    internal float[] Cos { get; }
    internal float[] Sin { get; }
}

internal static class Rope
{
    /// <summary>
    /// Rotates x [rows, heads·hd] in place. Row r sits at position <paramref name="positionOffset"/> + r mod
    /// <paramref name="sequenceLength"/>. <paramref name="inverse"/> turns the other way, which is the backward (a
    /// rotation by −angle scaled by the same magnitude: the transpose of the forward's scaled rotation).
    /// </summary>
    public static void Apply(Span<float> x, int heads, RopeTable table, int sequenceLength, int positionOffset, bool inverse = false) =>
        Apply(x, x, heads, table, sequenceLength, positionOffset, inverse);

    /// <summary>
    /// y = rot(x), or y += rot(x) with <paramref name="accumulate"/>, for x and y [rows, heads·hd], which may be the
    /// same span (each pair is read whole before it is written). Rows and positions as in the in-place overload.
    /// The half-rotate layout runs on vectors; each lane does the scalar twin's arithmetic, so results are bitwise
    /// those of <see cref="ApplyReference"/>.
    /// </summary>
    public static void Apply(ReadOnlySpan<float> x, Span<float> y, int heads, RopeTable table, int sequenceLength, int positionOffset,
        bool inverse = false, bool accumulate = false)
    {
        int hd = table.HeadDim, half = hd / 2, width = heads * hd;
        int rows = Check(x, y, width, table, sequenceLength, positionOffset);
        float sign = inverse ? -1f : 1f;
        bool halfRotate = table.Style == RopeStyle.HalfRotate;
        int vector = !halfRotate ? 0 :
            Vector512.IsHardwareAccelerated ? Vector512<float>.Count :
            Vector256.IsHardwareAccelerated ? Vector256<float>.Count : 0;
        int vectorEnd = vector == 0 ? 0 : half - half % vector; // pairs [0, vectorEnd) on vectors, the rest scalar
        ref float cos0 = ref MemoryMarshal.GetArrayDataReference(table.Cos);
        ref float sin0 = ref MemoryMarshal.GetArrayDataReference(table.Sin);
        ref float x0 = ref MemoryMarshal.GetReference(x);
        ref float y0 = ref MemoryMarshal.GetReference(y);
        for (int r = 0; r < rows; r++)
        {
            int p = positionOffset + r % sequenceLength;
            ref float cos = ref Unsafe.Add(ref cos0, p * half);
            ref float sin = ref Unsafe.Add(ref sin0, p * half);
            for (int h = 0; h < heads; h++)
            {
                int at = r * width + h * hd;
                ref float xh = ref Unsafe.Add(ref x0, at);
                ref float yh = ref Unsafe.Add(ref y0, at);
                if (vector == Vector512<float>.Count)
                    for (int i = 0; i < vectorEnd; i += vector)
                    {
                        var c = Vector512.LoadUnsafe(ref cos, (nuint)i);
                        var s = Vector512.LoadUnsafe(ref sin, (nuint)i) * sign;
                        var x1 = Vector512.LoadUnsafe(ref xh, (nuint)i);
                        var x2 = Vector512.LoadUnsafe(ref xh, (nuint)(i + half));
                        var y1 = x1 * c - x2 * s;
                        var y2 = x1 * s + x2 * c;
                        if (accumulate)
                        {
                            y1 = Vector512.LoadUnsafe(ref yh, (nuint)i) + y1;
                            y2 = Vector512.LoadUnsafe(ref yh, (nuint)(i + half)) + y2;
                        }
                        y1.StoreUnsafe(ref yh, (nuint)i);
                        y2.StoreUnsafe(ref yh, (nuint)(i + half));
                    }
                else if (vector == Vector256<float>.Count)
                    for (int i = 0; i < vectorEnd; i += vector)
                    {
                        var c = Vector256.LoadUnsafe(ref cos, (nuint)i);
                        var s = Vector256.LoadUnsafe(ref sin, (nuint)i) * sign;
                        var x1 = Vector256.LoadUnsafe(ref xh, (nuint)i);
                        var x2 = Vector256.LoadUnsafe(ref xh, (nuint)(i + half));
                        var y1 = x1 * c - x2 * s;
                        var y2 = x1 * s + x2 * c;
                        if (accumulate)
                        {
                            y1 = Vector256.LoadUnsafe(ref yh, (nuint)i) + y1;
                            y2 = Vector256.LoadUnsafe(ref yh, (nuint)(i + half)) + y2;
                        }
                        y1.StoreUnsafe(ref yh, (nuint)i);
                        y2.StoreUnsafe(ref yh, (nuint)(i + half));
                    }
                RotatePairs(ref xh, ref yh, ref cos, ref sin, vectorEnd, half, halfRotate, sign, accumulate);
            }
        }
    }

    /// <summary>The scalar twin of <see cref="Apply(ReadOnlySpan{float}, Span{float}, int, RopeTable, int, int, bool, bool)"/>.</summary>
    public static void ApplyReference(ReadOnlySpan<float> x, Span<float> y, int heads, RopeTable table, int sequenceLength, int positionOffset,
        bool inverse = false, bool accumulate = false)
    {
        int hd = table.HeadDim, half = hd / 2, width = heads * hd;
        int rows = Check(x, y, width, table, sequenceLength, positionOffset);
        ref float x0 = ref MemoryMarshal.GetReference(x);
        ref float y0 = ref MemoryMarshal.GetReference(y);
        for (int r = 0; r < rows; r++)
        {
            int p = positionOffset + r % sequenceLength;
            for (int h = 0; h < heads; h++)
                RotatePairs(ref Unsafe.Add(ref x0, r * width + h * hd), ref Unsafe.Add(ref y0, r * width + h * hd),
                    ref table.Cos[p * half], ref table.Sin[p * half], 0, half, table.Style == RopeStyle.HalfRotate, inverse ? -1f : 1f, accumulate);
        }
    }

    private static int Check(ReadOnlySpan<float> x, Span<float> y, int width, RopeTable table, int sequenceLength, int positionOffset)
    {
        if (x.Length != y.Length || x.Length % width != 0)
            throw new ArgumentException($"RoPE: input ({x.Length}) and output ({y.Length}) must be the same whole number of {width}-wide rows.");
        int rows = x.Length / width;
        if (positionOffset + Math.Min(rows, sequenceLength) > table.MaxPositions)
            throw new ArgumentOutOfRangeException(nameof(positionOffset),
                $"RoPE position {positionOffset + Math.Min(rows, sequenceLength) - 1} exceeds the table's {table.MaxPositions} positions.");
        return rows;
    }

    /// <summary>Pairs [from, half) of one head. Pair i is (a, a + gap) with a = i·step: half-rotate has step 1, gap hd/2; interleaved step 2, gap 1.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void RotatePairs(ref float x, ref float y, ref float cos, ref float sin, int from, int half, bool halfRotate, float sign, bool accumulate)
    {
        int step = halfRotate ? 1 : 2, gap = halfRotate ? half : 1;
        for (int i = from; i < half; i++)
        {
            int a = i * step, b = a + gap;
            float x1 = Unsafe.Add(ref x, a), x2 = Unsafe.Add(ref x, b), c = Unsafe.Add(ref cos, i), s = sign * Unsafe.Add(ref sin, i);
            float y1 = x1 * c - x2 * s, y2 = x1 * s + x2 * c;
            if (accumulate)
            {
                y1 = Unsafe.Add(ref y, a) + y1;
                y2 = Unsafe.Add(ref y, b) + y2;
            }
            Unsafe.Add(ref y, a) = y1;
            Unsafe.Add(ref y, b) = y2;
        }
    }
}
