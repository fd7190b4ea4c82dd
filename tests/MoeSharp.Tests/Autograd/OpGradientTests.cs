using MoeSharp.Kernels;
using MoeSharp.Tensors;

namespace MoeSharp.Tests.Autograd;

/// <summary>Every op with a backward, against finite differences. Inputs are O(1), ε = 1e-2 unless stated.</summary>
public class OpGradientTests
{
    private static Tensor R(ulong seed, float scale, params int[] shape) => Numerics.RandomTensor(seed, scale, shape);

    [Fact]
    public void Linear() => GradCheck.Run("Linear", (t, x) => t.Linear(x[0], x[1], x[2]),
        [R(1, 1, 5, 7), R(2, 1, 3, 7), R(3, 1, 3)], eps: 1e-2f, rtol: 1e-3f, atol: 1e-4f);

    [Fact]
    public void LinearWithoutBiasOnRank3Input() => GradCheck.Run("Linear", (t, x) => t.Linear(x[0], x[1]),
        [R(1, 1, 2, 3, 6), R(2, 1, 4, 6)], eps: 1e-2f, rtol: 1e-3f, atol: 1e-4f);

    [Fact]
    public void AddAndScale() => GradCheck.Run("Add/Scale", (t, x) => t.Scale(t.Add(x[0], x[1]), -1.5f),
        [R(1, 1, 4, 5), R(2, 1, 4, 5)], eps: 1e-2f, rtol: 1e-3f, atol: 1e-4f);

    [Fact]
    public void ReshapeFeedsAnOpThatSeesTheNewShape() => GradCheck.Run("Reshape", (t, x) => t.Linear(t.Reshape(x[0], 2, 10), x[1]),
        [R(1, 1, 4, 5), R(2, 1, 3, 10)], eps: 1e-2f, rtol: 1e-3f, atol: 1e-4f);

    [Fact]
    public void ReshapeNamesBothShapes() =>
        Assert.Contains("[4,5] (20 elements) cannot become [3,7]", Assert.Throws<ArgumentException>(() => new MoeSharp.Autograd.Tape().Reshape(R(1, 1, 4, 5), 3, 7)).Message);

    [Fact]
    public void Embedding() => GradCheck.Run("Embedding", (t, x) => t.Embedding(x[0], [3, 1, 3, 0, 5]),
        [R(1, 1, 6, 4)], eps: 1e-2f, rtol: 1e-3f, atol: 1e-4f);

    [Fact]
    public void RmsNorm() => GradCheck.Run("RmsNorm", (t, x) => t.RmsNorm(x[0], x[1], 1e-5f),
        [R(1, 2, 6, 9), R(2, 1, 9)], eps: 1e-2f, rtol: 2e-3f, atol: 2e-4f);

    /// <summary>
    /// One input feeding every op whose backward writes a fresh gradient instead of clearing and adding (Add, both
    /// operands the same tensor; Linear; RmsNorm; RoPE), in both orders of first contribution, against finite
    /// differences: ε 1e-2, rtol 2e-3, atol 2e-4 as the single ops.
    /// </summary>
    [Fact]
    public void GradientsWrittenFreshStillSumOverConsumers()
    {
        var table = new MoeSharp.Kernels.RopeTable(4, 3, 1e4f, MoeSharp.Kernels.RopeStyle.HalfRotate);
        GradCheck.Run("fresh gradients", (t, x) =>
        {
            var twice = t.Add(x[0], x[0]); // [6, 8]
            var h = t.Add(t.Linear(twice, x[1]), t.RmsNorm(x[0], x[2], 1e-5f));
            return t.Add(t.Rope(h, 2, table, 3), t.Linear(x[0], x[1]));
        }, [R(1, 1, 6, 8), R(2, 0.3f, 8, 8), R(3, 1, 8)], eps: 1e-2f, rtol: 2e-3f, atol: 2e-4f);
    }

    [Fact]
    public void LayerNorm() => GradCheck.Run("LayerNorm", (t, x) => t.LayerNorm(x[0], x[1], x[2], 1e-5f),
        [R(1, 2, 6, 9), R(2, 1, 9), R(3, 1, 9)], eps: 1e-2f, rtol: 2e-3f, atol: 2e-4f);

    [Fact]
    public void SwiGlu() => GradCheck.Run("SwiGlu", (t, x) => t.SwiGlu(x[0], x[1]),
        [R(1, 3, 40), R(2, 2, 40)], eps: 1e-2f, rtol: 1e-3f, atol: 1e-4f);

    [Fact]
    public void Gelu() => GradCheck.Run("Gelu", (t, x) => t.Gelu(x[0]),
        [R(1, 3, 40)], eps: 1e-2f, rtol: 1e-3f, atol: 1e-4f);

    [Theory]
    [InlineData(RopeStyle.HalfRotate)]
    [InlineData(RopeStyle.Interleaved)]
    public void Rope(RopeStyle style)
    {
        var table = new RopeTable(8, 16, 100f, style);
        GradCheck.Run("Rope", (t, x) => t.Rope(x[0], 2, table, 5, 2), [R(1, 1, 10, 16)], eps: 1e-2f, rtol: 1e-3f, atol: 1e-4f);
    }

    [Theory]
    [InlineData(2, 3, 2, 2, 4)] // multi-head
    [InlineData(1, 6, 4, 2, 4)] // grouped-query
    [InlineData(2, 5, 2, 1, 8)] // one KV head
    public void CausalAttention(int batch, int seq, int heads, int kvHeads, int hd) =>
        GradCheck.Run("CausalAttention", (t, x) => t.CausalAttention(x[0], x[1], x[2], batch, heads, kvHeads, hd),
            [R(1, 1, batch * seq, heads * hd), R(2, 1, batch * seq, kvHeads * hd), R(3, 1, batch * seq, kvHeads * hd)],
            eps: 1e-2f, rtol: 2e-3f, atol: 2e-4f);

    /// <summary>Sliding window 3 (shorter than the 7 positions) and per-head sinks, whose gradient is checked too.</summary>
    [Theory]
    [InlineData(2, 7, 2, 2, 4, 3)]
    [InlineData(1, 7, 4, 2, 4, 2)]
    [InlineData(2, 5, 2, 1, 8, 0)]
    public void CausalAttentionWithWindowAndSinks(int batch, int seq, int heads, int kvHeads, int hd, int window) =>
        GradCheck.Run("CausalAttention window+sinks", (t, x) => t.CausalAttention(x[0], x[1], x[2], batch, heads, kvHeads, hd, window, x[3]),
            [R(1, 1, batch * seq, heads * hd), R(2, 1, batch * seq, kvHeads * hd), R(3, 1, batch * seq, kvHeads * hd), R(4, 1, heads)],
            eps: 1e-2f, rtol: 2e-3f, atol: 2e-4f);

    [Fact]
    public void RopeWithYarn()
    {
        var table = new RopeTable(8, 16, 100f, RopeStyle.HalfRotate, new YarnScaling(4f, 8));
        GradCheck.Run("Rope YaRN", (t, x) => t.Rope(x[0], 2, table, 5, 2), [R(1, 1, 10, 16)], eps: 1e-2f, rtol: 1e-3f, atol: 1e-4f);
    }

    [Fact]
    public void CrossEntropyWithIgnoredRow() => GradCheck.Run("CrossEntropy", (t, x) => t.CrossEntropy(x[0], [2, -100, 0, 6]),
        [R(1, 2, 4, 7)], eps: 1e-2f, rtol: 1e-3f, atol: 1e-4f);

    [Fact]
    public void GradientsAccumulateAcrossBackwardCalls()
    {
        var tape = new MoeSharp.Autograd.Tape();
        var x = R(1, 1, 3, 4);
        var w = R(2, 1, 2, 4);
        w.RequiresGrad = true;
        w.Grad = new Tensor(2, 4);
        tape.Backward(tape.Linear(x, w), Numerics.Random(6, 5));
        var once = w.Grad.ToArray();
        tape.Reset();
        tape.Backward(tape.Linear(x, w), Numerics.Random(6, 5));
        Numerics.Close(once.Select(v => 2 * v).ToArray(), w.Grad.Span, 1e-6f, 1e-7f, "accumulated gradient");
    }

    [Fact]
    public void NoGradRecordsNothing()
    {
        var tape = new MoeSharp.Autograd.Tape();
        var w = R(2, 1, 2, 4);
        w.RequiresGrad = true;
        using (tape.NoGrad())
        {
            var y = tape.Linear(R(1, 1, 3, 4), w);
            Assert.False(y.RequiresGrad);
        }
        Assert.Empty(tape.Nodes);
    }

    [Fact]
    public void FirstNonFiniteNamesTheLayer()
    {
        var tape = new MoeSharp.Autograd.Tape();
        var x = R(1, 1, 2, 3);
        x.RequiresGrad = true;
        var w = Tensor.FromArray([1, 0, 0, float.NaN, 0, 0], 2, 3);
        Tensor y;
        using (tape.Named("layers.1.mlp")) y = tape.Linear(x, w);
        using (tape.Named("layers.2.mlp")) tape.Scale(y, 2f);
        var node = tape.FirstNonFinite();
        Assert.NotNull(node);
        Assert.Equal("layers.1.mlp", node.Label);
        Assert.Equal("Linear", node.Op);
    }
}
