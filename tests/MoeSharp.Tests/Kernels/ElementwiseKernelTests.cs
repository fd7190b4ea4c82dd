using MoeSharp.Kernels;

namespace MoeSharp.Tests.Kernels;

/// <summary>Row kernels against their double-precision scalar twins, for every length 0..256.</summary>
[Trait("Category", "Kernel")]
public class ElementwiseKernelTests
{
    private static IEnumerable<int> Lengths => Enumerable.Range(0, 257);

    [Fact]
    public void SoftmaxAndLogSoftmaxMatchTwinForAllLengths()
    {
        foreach (int n in Lengths)
        {
            var x = Numerics.Random(3 * n, (ulong)n, 8f);
            var fast = new float[3 * n];
            var twin = new float[3 * n];
            Softmax.Rows(x, fast, n);
            Softmax.RowsReference(x, twin, n);
            Numerics.Close(twin, fast, 2e-6f, 1e-7f, $"softmax n={n}");
            Softmax.LogRows(x, fast, n);
            Softmax.LogRowsReference(x, twin, n);
            Numerics.Close(twin, fast, 1e-5f, 2e-6f, $"log-softmax n={n}");
            // In place gives the same answer.
            Softmax.Rows(x, x, n);
            Softmax.RowsReference(Numerics.Random(3 * n, (ulong)n, 8f), twin, n);
            Numerics.Close(twin, x, 2e-6f, 1e-7f, $"in-place softmax n={n}");
        }
    }

    [Fact]
    public void SoftmaxWithHugeLogitStaysFinite()
    {
        float[] x = [1e4f, 0f, -1e4f, 1e4f];
        var y = new float[4];
        Softmax.Rows(x, y, 4);
        Assert.Equal([0.5f, 0f, 0f, 0.5f], y);
        Softmax.LogRows(x, y, 4);
        Assert.Equal(-MathF.Log(2), y[0], 6);
        Assert.True(float.IsFinite(y[2]));
    }

    [Fact]
    public void CrossEntropyOfUniformPredictionIsLogV()
    {
        foreach (int v in new[] { 2, 65, 101 })
        {
            var logits = new float[4 * v]; // all equal → uniform
            var lse = new float[4];
            float loss = CrossEntropy.Forward(logits, [0, 1, v - 1, -100], v, lse);
            Assert.Equal(MathF.Log(v), loss, 5);
        }
    }

    [Fact]
    public void CrossEntropyMatchesTwinAndIgnoresIndex()
    {
        int v = 37, n = 20;
        var logits = Numerics.Random(n * v, 9, 5f);
        var targets = Enumerable.Range(0, n).Select(i => i % 4 == 0 ? -100 : i * 7 % v).ToArray();
        var lse = new float[n];
        float fast = CrossEntropy.Forward(logits, targets, v, lse);
        Assert.Equal(CrossEntropy.ForwardReference(logits, targets, v), fast, 5e-6f);
        // Gradient rows of ignored targets stay zero; the rest sum to zero (softmax minus one-hot).
        var d = new float[n * v];
        CrossEntropy.Backward(logits, targets, v, lse, 1f, d);
        for (int r = 0; r < n; r++)
        {
            float sum = 0;
            for (int j = 0; j < v; j++) sum += d[r * v + j];
            if (targets[r] == -100) Assert.All(d.AsSpan(r * v, v).ToArray(), g => Assert.Equal(0f, g));
            else Assert.Equal(0f, sum, 1e-6f);
        }
    }

    [Fact]
    public void NormsMatchTwinForAllLengths()
    {
        foreach (int d in Lengths.Skip(1))
        {
            var x = Numerics.Random(3 * d, (ulong)d, 3f);
            var w = Numerics.Random(d, 1000 + (ulong)d);
            var b = Numerics.Random(d, 2000 + (ulong)d);
            var fast = new float[3 * d];
            var twin = new float[3 * d];
            var s1 = new float[3];
            var s2 = new float[3];
            Norms.RmsForward(x, w, fast, s1, d, 1e-5f);
            Norms.RmsForwardReference(x, w, twin, d, 1e-5f);
            Numerics.Close(twin, fast, 2e-6f, 1e-6f, $"rmsnorm d={d}");
            Norms.LayerForward(x, w, b, fast, s1, s2, d, 1e-5f);
            Norms.LayerForwardReference(x, w, b, twin, d, 1e-5f);
            Numerics.Close(twin, fast, 1e-5f, 2e-6f, $"layernorm d={d}");
        }
    }

    [Fact]
    public void RmsNormOfConstantRowIsTheWeight()
    {
        // mean(x²) = 9 for x = ±3, so x/3 = ±1 (eps = 0).
        float[] x = [3, -3, 3, -3], w = [1, 2, 3, 4], y = new float[4], rstd = new float[1];
        Norms.RmsForward(x, w, y, rstd, 4, 0f);
        Assert.Equal([1f, -2f, 3f, -4f], y);
        Assert.Equal(1f / 3, rstd[0], 7);
    }

    /// <summary>RMSNorm's backward writing dx equals it adding into a cleared dx, bitwise (x + 0 = x), dw accumulating alike.</summary>
    [Fact]
    public void RmsBackwardWritingEqualsAddingIntoZeros()
    {
        const int d = 37, rows = 5;
        var x = Numerics.Random(rows * d, 1);
        var w = Numerics.Random(d, 2);
        var dy = Numerics.Random(rows * d, 3);
        var y = new float[rows * d];
        var rstd = new float[rows];
        Norms.RmsForward(x, w, y, rstd, d, 1e-5f);
        var added = new float[rows * d];
        var written = Numerics.Random(rows * d, 4); // stale values the write must not read
        var dwAdded = Numerics.Random(d, 5);
        var dwWritten = (float[])dwAdded.Clone();
        Norms.RmsBackward(dy, x, w, rstd, added, dwAdded, new float[2 * d], d);
        Norms.RmsBackward(dy, x, w, rstd, written, dwWritten, new float[2 * d], d, accumulate: false);
        Numerics.BitwiseEqual(added, written, "dx");
        Numerics.BitwiseEqual(dwAdded, dwWritten, "dw");
    }

    [Fact]
    public void ActivationsMatchTwinForAllLengths()
    {
        foreach (int n in Lengths)
        {
            var a = Numerics.Random(n, (ulong)n, 6f);
            var b = Numerics.Random(n, 500 + (ulong)n, 2f);
            var fast = new float[n];
            var twin = new float[n];
            Activations.SwiGluForward(a, b, fast);
            Activations.SwiGluReference(a, b, twin);
            Numerics.Close(twin, fast, 2e-6f, 1e-7f, $"swiglu n={n}");
            Activations.GeluForward(a, fast);
            Activations.GeluReference(a, twin);
            Numerics.Close(twin, fast, 2e-6f, 1e-7f, $"gelu n={n}");
        }
    }

    [Fact]
    public void ActivationKnownValues()
    {
        var y = new float[3];
        Activations.SiluForward([0f, 1f, -1f], y);
        Assert.Equal(0f, y[0]);
        Assert.Equal(1f / (1f + MathF.Exp(-1f)), y[1], 6);
        Assert.Equal(-1f / (1f + MathF.Exp(1f)), y[2], 6);
        Activations.GeluForward([0f, 10f, -10f], y);
        Assert.Equal([0f, 10f, 0f], y.Select(v => MathF.Round(v, 5)).ToArray());
    }

    [Fact]
    public void EmbeddingGatherAndScatterAreAdjoint()
    {
        // <gather(T), G> = <T, scatter(G)> for any table T and row gradients G.
        int v = 11, d = 5;
        int[] ids = [3, 0, 3, 10, 7];
        var table = Numerics.Random(v * d, 1);
        var g = Numerics.Random(ids.Length * d, 2);
        var rows = new float[ids.Length * d];
        var dtable = new float[v * d];
        Embedding.Gather(table, ids, rows, d);
        Embedding.ScatterAdd(g, ids, dtable, d);
        double lhs = 0, rhs = 0;
        for (int i = 0; i < rows.Length; i++) lhs += rows[i] * g[i];
        for (int i = 0; i < table.Length; i++) rhs += table[i] * dtable[i];
        Assert.Equal(lhs, rhs, 5);
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => Embedding.Gather(table, [11], new float[d], d));
        Assert.Contains("11", ex.Message);
    }
}
