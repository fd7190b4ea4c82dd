using MoeSharp.Autograd;
using MoeSharp.Tensors;

namespace MoeSharp.Tests.Autograd;

/// <summary>The mixture ops against finite differences (ε = 1e-2) and closed forms.</summary>
public class MixtureOpsTests
{
    private static Tensor R(ulong seed, float scale, params int[] shape) => Numerics.RandomTensor(seed, scale, shape);

    [Fact]
    public void MixtureNllGradients() => GradCheck.Run("MixtureNll", (t, x) => t.MixtureNll(x[0], x[1]),
        [R(1, 2, 5, 3), R(2, 2, 5, 3)], eps: 1e-2f, rtol: 1e-3f, atol: 1e-4f);

    [Fact]
    public void MixtureNllGradientsWithRowWeights() => GradCheck.Run("MixtureNll", (t, x) => t.MixtureNll(x[0], x[1], [1f, 0.25f, 3f, 0f]),
        [R(3, 2, 4, 4), R(4, 2, 4, 4)], eps: 1e-2f, rtol: 1e-3f, atol: 1e-4f);

    [Fact]
    public void MixtureNllIsMinusLogOfTheGateWeightedLikelihood()
    {
        // One row, g = softmax(0, ln 3) = (1/4, 3/4), p = (0.2, 0.6): L = −log(0.05 + 0.45) = log 2;
        // posterior h = (0.05, 0.45)/0.5 = (0.1, 0.9); ∂L/∂a = −(h − g) = (0.15, −0.15); ∂L/∂ℓ = −h.
        var tape = new Tape();
        var a = Tensor.FromArray([0f, MathF.Log(3)], 1, 2);
        var l = Tensor.FromArray([MathF.Log(0.2f), MathF.Log(0.6f)], 1, 2);
        a.RequiresGrad = l.RequiresGrad = true;
        var loss = tape.MixtureNll(a, l);
        Assert.Equal(Math.Log(2), loss[0], 1e-6);
        tape.Backward(loss);
        Numerics.Close([0.15f, -0.15f], a.Grad!.Span, 1e-5f, 1e-6f, "dL/da");
        Numerics.Close([-0.1f, -0.9f], l.Grad!.Span, 1e-5f, 1e-6f, "dL/dl");
    }

    [Fact]
    public void MixRowsGradients() => GradCheck.Run("MixRows", (t, x) => t.MixRows(x[0], x[1]),
        [R(1, 1, 4, 3), R(2, 1, 4, 6)], eps: 1e-2f, rtol: 1e-3f, atol: 1e-4f);

    [Fact]
    public void MixRowsIsTheGateWeightedSum()
    {
        var y = new Tape().MixRows(Tensor.FromArray([0.25f, 0.75f], 1, 2), Tensor.FromArray([4f, 8f, 0f, -4f], 1, 4));
        Assert.Equal([1f, -1f], y.ToArray());
    }

    [Fact]
    public void GateEntropyGradients() => GradCheck.Run("GateEntropy", (t, x) => t.GateEntropy(x[0]),
        [R(1, 2, 5, 4)], eps: 1e-2f, rtol: 1e-3f, atol: 1e-4f);

    [Fact]
    public void GateEntropyOfAUniformGateIsLogE()
    {
        var h = new Tape().GateEntropy(new Tensor(3, 5));
        Assert.Equal(Math.Log(5), h[0], 1e-6);
    }

    [Fact]
    public void TopKMaskThenSoftmaxIsTheRenormalisedTopK()
    {
        var tape = new Tape();
        var logits = Tensor.FromArray([0.5f, 2f, -1f, 1f], 1, 4);
        var p = tape.Softmax(tape.TopKMask(logits, 2)).ToArray();
        var full = tape.Softmax(logits).ToArray();
        float kept = full[1] + full[3];
        Numerics.Close([0, full[1] / kept, 0, full[3] / kept], p, 1e-6f, 0, "top-2 gate");
        GradCheck.Run("TopKMask", (t, x) => t.Softmax(t.TopKMask(x[0], 2)), [R(5, 2, 4, 5)], eps: 1e-3f, rtol: 1e-3f, atol: 1e-4f);
    }
}
