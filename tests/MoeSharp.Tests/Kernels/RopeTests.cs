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

    [Fact]
    public void PositionBeyondTableIsAnError()
    {
        var table = new RopeTable(4, 4, 1e4f, RopeStyle.HalfRotate);
        Assert.Throws<ArgumentOutOfRangeException>(() => Rope.Apply(new float[8], 1, table, 2, 3));
    }
}
