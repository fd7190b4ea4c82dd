using MoeSharp.Tensors;

namespace MoeSharp.Tests.Autograd;

/// <summary>The per-row likelihood ops against finite differences (ε = 1e-2) and against their closed forms.</summary>
public class LossOpGradientTests
{
    private static Tensor R(ulong seed, float scale, params int[] shape) => Numerics.RandomTensor(seed, scale, shape);

    [Fact]
    public void ClassLogLikelihood() => GradCheck.Run("ClassLogLikelihood", (t, x) => t.ClassLogLikelihood(x[0], [2, 0, 4, 1, 3]),
        [R(1, 2, 5, 5)], eps: 1e-2f, rtol: 1e-3f, atol: 1e-4f);

    [Fact]
    public void ClassLogLikelihoodIsLogSoftmaxOfTheLabel()
    {
        var logits = Tensor.FromArray([1f, 2f, 3f, 0f, 0f, 0f], 2, 3);
        var y = new MoeSharp.Autograd.Tape().ClassLogLikelihood(logits, [2, 1]);
        double lse = Math.Log(Math.Exp(1) + Math.Exp(2) + Math.Exp(3));
        Numerics.Close([(float)(3 - lse), (float)-Math.Log(3)], y.Span, 1e-6f, 1e-6f, "log p");
    }

    [Fact]
    public void SquaredError() => GradCheck.Run("SquaredError", (t, x) => t.SquaredError(x[0], Numerics.Random(12, 5)),
        [R(1, 1, 4, 3)], eps: 1e-2f, rtol: 1e-3f, atol: 1e-4f);

    [Fact]
    public void GaussianLogLikelihood() => GradCheck.Run("GaussianLogLikelihood", (t, x) => t.GaussianLogLikelihood(x[0], Numerics.Random(6, 5), 0.7f),
        [R(1, 1, 6, 1)], eps: 1e-2f, rtol: 1e-3f, atol: 1e-4f);

    [Fact]
    public void GaussianLogLikelihoodIsTheNormalDensity()
    {
        var y = new MoeSharp.Autograd.Tape().GaussianLogLikelihood(Tensor.FromArray([1f, -2f], 2, 1), [1.5f, 0f], 0.25f);
        // log N(t; p, v) = −(t − p)²/(2v) − ½·log(2πv)
        double c = -0.5 * Math.Log(2 * Math.PI * 0.25);
        Numerics.Close([(float)(c - 0.25 / 0.5), (float)(c - 4 / 0.5)], y.Span, 1e-6f, 1e-6f, "log density");
    }

    [Fact]
    public void SoftCrossEntropyWithRowWeights()
    {
        var targets = Numerics.Random(12, 3).Select(Math.Abs).ToArray();
        GradCheck.Run("SoftCrossEntropy", (t, x) => t.SoftCrossEntropy(x[0], targets, [0.5f, 2f, 0f, 1f]),
            [R(1, 2, 4, 3)], eps: 1e-2f, rtol: 1e-3f, atol: 1e-4f);
    }

    [Fact]
    public void SoftCrossEntropyWithOneHotTargetsIsCrossEntropy()
    {
        var logits = R(4, 3, 5, 4);
        int[] labels = [3, 0, 1, 1, 2];
        var oneHot = new float[20];
        for (int r = 0; r < 5; r++) oneHot[r * 4 + labels[r]] = 1;
        var tape = new MoeSharp.Autograd.Tape();
        Numerics.Close(tape.CrossEntropy(logits, labels).Span, tape.SoftCrossEntropy(logits, oneHot).Span, 1e-6f, 1e-6f, "loss");
    }

    [Fact]
    public void Concat() => GradCheck.Run("Concat", (t, x) => t.Concat([x[0], x[1], x[2]]),
        [R(1, 1, 3, 2), R(2, 1, 3), R(3, 1, 3, 4)], eps: 1e-2f, rtol: 1e-3f, atol: 1e-4f);

    [Fact]
    public void ConcatPlacesColumnsInOrder()
    {
        var y = new MoeSharp.Autograd.Tape().Concat([Tensor.FromArray([1f, 2f], 2), Tensor.FromArray([3f, 4f, 5f, 6f], 2, 2)]);
        Assert.Equal([2, 3], y.Shape.ToArray());
        Assert.Equal([1f, 3f, 4f, 2f, 5f, 6f], y.ToArray());
    }
}
