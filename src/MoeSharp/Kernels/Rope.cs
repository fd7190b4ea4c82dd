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
/// Rotary position embedding. Pair i of a head at position p turns by p·θ^(−2i/hd). The table holds cos and sin
/// [positions, hd/2], computed in double so positions far out stay accurate.
/// </summary>
public sealed class RopeTable
{
    /// <summary>Builds the table for heads of <paramref name="headDim"/> (even) elements over positions [0, <paramref name="maxPositions"/>), with base <paramref name="theta"/> (10000 in Llama, 1e6 in Mixtral).</summary>
    public RopeTable(int headDim, int maxPositions, float theta, RopeStyle style)
    {
        if (headDim <= 0 || headDim % 2 != 0) throw new ArgumentException($"RoPE head dimension must be even and positive, got {headDim}.", nameof(headDim));
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxPositions);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(theta);
        HeadDim = headDim;
        MaxPositions = maxPositions;
        Style = style;
        int half = headDim / 2;
        Cos = new float[maxPositions * half]; // [positions, hd/2]
        Sin = new float[maxPositions * half]; // [positions, hd/2]
        for (int p = 0; p < maxPositions; p++)
            for (int i = 0; i < half; i++)
            {
                double angle = p * Math.Pow(theta, -2.0 * i / headDim);
                Cos[p * half + i] = (float)Math.Cos(angle);
                Sin[p * half + i] = (float)Math.Sin(angle);
            }
    }

    /// <summary>Elements per attention head the table rotates (hd).</summary>
    public int HeadDim { get; }

    /// <summary>Positions the table covers; a sequence plus its cache offset must fit inside.</summary>
    public int MaxPositions { get; }

    /// <summary>Which element pairs are rotated together.</summary>
    public RopeStyle Style { get; }

    internal float[] Cos { get; }
    internal float[] Sin { get; }
}

internal static class Rope
{
    /// <summary>
    /// Rotates x [rows, heads·hd] in place. Row r sits at position <paramref name="positionOffset"/> + r mod
    /// <paramref name="sequenceLength"/>. <paramref name="inverse"/> turns the other way, which is the backward.
    /// </summary>
    public static void Apply(Span<float> x, int heads, RopeTable table, int sequenceLength, int positionOffset, bool inverse = false)
    {
        int hd = table.HeadDim, half = hd / 2, width = heads * hd;
        int rows = x.Length / width;
        if (positionOffset + Math.Min(rows, sequenceLength) > table.MaxPositions)
            throw new ArgumentOutOfRangeException(nameof(positionOffset),
                $"RoPE position {positionOffset + Math.Min(rows, sequenceLength) - 1} exceeds the table's {table.MaxPositions} positions.");
        float sign = inverse ? -1f : 1f;
        // Pair (lo + i·step, lo + i·step + gap): HalfRotate has step 1, gap hd/2; Interleaved has step 2, gap 1.
        int step = table.Style == RopeStyle.HalfRotate ? 1 : 2;
        int gap = table.Style == RopeStyle.HalfRotate ? half : 1;
        for (int r = 0; r < rows; r++)
        {
            int p = positionOffset + r % sequenceLength;
            var cos = table.Cos.AsSpan(p * half, half);
            var sin = table.Sin.AsSpan(p * half, half);
            for (int h = 0; h < heads; h++)
            {
                var head = x.Slice(r * width + h * hd, hd);
                for (int i = 0; i < half; i++)
                {
                    int a = i * step, b = a + gap;
                    float x1 = head[a], x2 = head[b], c = cos[i], s = sign * sin[i];
                    head[a] = x1 * c - x2 * s;
                    head[b] = x1 * s + x2 * c;
                }
            }
        }
    }
}
