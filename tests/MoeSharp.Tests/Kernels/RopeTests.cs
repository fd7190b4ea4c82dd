using System.Numerics.Tensors;
using MoeSharp.Kernels;

namespace MoeSharp.Tests.Kernels;

[Trait("Category", "Kernel")]
public class RopeTests
{
    [Fact]
    public void RotatesPairsByHandDerivedAngles()
    {
        // hd = 4, theta = 100: pair 0 turns by p·1, pair 1 by p·100^(−1/2) = p/10.
        var table = new RopeTable(4, 8, 100f, RopeStyle.HalfRotate);
        float[] x = [1, 0, 0, 1]; // pairs (x0,x2) = (1,0) and (x1,x3) = (0,1)
        Rope.Apply(x, 1, table, sequenceLength: 1, positionOffset: 3);
        Assert.Equal(MathF.Cos(3), x[0], 6);
        Assert.Equal(MathF.Sin(3), x[2], 6);
        Assert.Equal(-MathF.Sin(0.3f), x[1], 6);
        Assert.Equal(MathF.Cos(0.3f), x[3], 6);
    }

    /// <summary>
    /// hd 8, θ 100, factor 2, original context 64, β 32/1: the correction dims are 8·ln(64/(2π·β))/(2 ln 100) =
    /// −0.994 and 2.016, truncated to [0, 3], so pair i keeps the share 1 − i/3 of its extrapolated frequency
    /// 100^(−i/4) and takes the rest halved: 1, 0.263523, 0.0666667, 0.0158114. cos and sin carry
    /// 0.1·ln 2 + 1 = 1.0693147. Tolerance 1e-6 absolute (float32 table).
    /// </summary>
    [Fact]
    public void YarnMatchesHandDerivedFrequenciesAndMagnitude()
    {
        var table = new RopeTable(8, 8, 100f, RopeStyle.HalfRotate, new YarnScaling(2f, 64));
        double[] inv = [1, 0.263523, 0.0666667, 0.0158114];
        const double M = 1.0693147;
        for (int i = 0; i < 4; i++)
        {
            Assert.Equal(M * Math.Cos(5 * inv[i]), table.Cos[5 * 4 + i], 1e-5);
            Assert.Equal(M * Math.Sin(5 * inv[i]), table.Sin[5 * 4 + i], 1e-5);
        }
    }

    /// <summary>DeepSeek-V3's mscale = mscale_all_dim = 1 cancels (factor 1); a zero mscale_all_dim is ignored as in HF; an explicit attention_factor wins; factor 1 is no scaling.</summary>
    [Fact]
    public void YarnAttentionFactorFollowsTheMscales()
    {
        Assert.Equal(1.0, new YarnScaling(40f, 4096, Mscale: 1f, MscaleAllDim: 1f).ResolvedAttentionFactor, 12);
        Assert.Equal(0.1 * Math.Log(40) + 1, new YarnScaling(40f, 4096, Mscale: 0.707f, MscaleAllDim: 0f).ResolvedAttentionFactor, 6); // HF: a zero mscale_all_dim falls back to mscale(s, 1)
        Assert.Equal(1.5, new YarnScaling(40f, 4096, AttentionFactor: 1.5f).ResolvedAttentionFactor, 6);
        Assert.Equal(0.1 * Math.Log(32) + 1, new YarnScaling(32f, 4096).ResolvedAttentionFactor, 6);
        Assert.Throws<ArgumentException>(() => new RopeTable(8, 8, 100f, RopeStyle.HalfRotate, new YarnScaling(0.5f, 64)));
    }

    [Fact]
    public void InterleavedEqualsHalfRotateUnderTheHuggingFacePermutation()
    {
        // HF's conversion permutes each head so that element 2i goes to i and 2i+1 to i + hd/2.
        int hd = 8, heads = 2, rows = 5;
        var x = Numerics.Random(rows * heads * hd, 7);
        var perm = new float[x.Length];
        for (int r = 0; r < rows * heads; r++)
            for (int i = 0; i < hd / 2; i++)
            {
                perm[r * hd + i] = x[r * hd + 2 * i];
                perm[r * hd + i + hd / 2] = x[r * hd + 2 * i + 1];
            }
        Rope.Apply(x, heads, new RopeTable(hd, 16, 1e4f, RopeStyle.Interleaved), rows, 0);
        Rope.Apply(perm, heads, new RopeTable(hd, 16, 1e4f, RopeStyle.HalfRotate), rows, 0);
        for (int r = 0; r < rows * heads; r++)
            for (int i = 0; i < hd / 2; i++)
            {
                Assert.Equal(x[r * hd + 2 * i], perm[r * hd + i]);
                Assert.Equal(x[r * hd + 2 * i + 1], perm[r * hd + i + hd / 2]);
            }
    }

    [Fact]
    public void InverseUndoesForward()
    {
        var x = Numerics.Random(6 * 16, 3);
        var y = (float[])x.Clone();
        var table = new RopeTable(8, 32, 1e4f, RopeStyle.HalfRotate);
        Rope.Apply(y, 2, table, 3, 4);
        Rope.Apply(y, 2, table, 3, 4, inverse: true);
        Numerics.Close(x, y, 1e-6f, 1e-6f, "rope round trip");
    }

    /// <summary>
    /// The vector kernel against its scalar twin, bitwise (tolerance 0: each lane does the twin's arithmetic): head
    /// sizes whose half is a multiple of the vector, shorter than it, and with a scalar remainder; both layouts;
    /// forward and inverse; written and accumulated; out of place and in place; positions offset and wrapping.
    /// </summary>
    [Theory]
    [InlineData(2, RopeStyle.HalfRotate)]
    [InlineData(8, RopeStyle.HalfRotate)]
    [InlineData(32, RopeStyle.HalfRotate)]
    [InlineData(36, RopeStyle.HalfRotate)]
    [InlineData(64, RopeStyle.HalfRotate)]
    [InlineData(128, RopeStyle.HalfRotate)]
    [InlineData(32, RopeStyle.Interleaved)]
    public void VectorKernelEqualsScalarTwinBitwise(int hd, RopeStyle style)
    {
        const int heads = 3, rows = 7, seq = 4, offset = 2;
        var table = new RopeTable(hd, 8, 1e4f, style);
        var x = Numerics.Random(rows * heads * hd, 11);
        foreach (bool inverse in new[] { false, true })
            foreach (bool accumulate in new[] { false, true })
            {
                var fast = Numerics.Random(x.Length, 12);
                var slow = (float[])fast.Clone();
                Rope.Apply(x, fast, heads, table, seq, offset, inverse, accumulate);
                Rope.ApplyReference(x, slow, heads, table, seq, offset, inverse, accumulate);
                Numerics.BitwiseEqual(slow, fast, $"hd {hd} {style} inverse {inverse} accumulate {accumulate}");
            }
        var inPlace = (float[])x.Clone();
        var outOfPlace = new float[x.Length];
        Rope.Apply(inPlace, heads, table, seq, offset);
        Rope.Apply(x, outOfPlace, heads, table, seq, offset);
        Numerics.BitwiseEqual(outOfPlace, inPlace, "in place");
    }

    /// <summary>
    /// The fused forms against the composition they replace, bitwise: copy then rotate in place (the forward), and
    /// rotate a copy of the gradient backwards then add it (the backward).
    /// </summary>
    [Fact]
    public void FusedFormsEqualCopyRotateAndAdd()
    {
        const int hd = 32, heads = 4, rows = 10, seq = 5;
        var table = new RopeTable(hd, seq, 1e4f, RopeStyle.HalfRotate);
        var x = Numerics.Random(rows * heads * hd, 21);
        var y = new float[x.Length];
        Rope.Apply(x, y, heads, table, seq, 0);
        var copy = (float[])x.Clone();
        Rope.ApplyReference(copy, copy, heads, table, seq, 0);
        Numerics.BitwiseEqual(copy, y, "forward");
        var dy = Numerics.Random(x.Length, 22);
        var dx = Numerics.Random(x.Length, 23);
        var expected = (float[])dx.Clone();
        var g = (float[])dy.Clone();
        Rope.ApplyReference(g, g, heads, table, seq, 0, inverse: true);
        TensorPrimitives.Add(expected, g, expected);
        Rope.Apply(dy, dx, heads, table, seq, 0, inverse: true, accumulate: true);
        Numerics.BitwiseEqual(expected, dx, "backward");
    }

    [Fact]
    public void PositionBeyondTableIsAnError()
    {
        var table = new RopeTable(4, 4, 1e4f, RopeStyle.HalfRotate);
        Assert.Throws<ArgumentOutOfRangeException>(() => Rope.Apply(new float[8], 1, table, 2, 3));
    }
}
