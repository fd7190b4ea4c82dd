using MoeSharp.Classic.Models;
using MoeSharp.Tensors;
using MoeSharp.Tests.Autograd;
using MoeSharp.Classic.Training;

namespace MoeSharp.Classic.Tests.Models;

public class MultiGateMoeTests
{
    private static readonly MultiTaskOptions Small = new() { Inputs = 3, Tasks = 2, Experts = 3, ExpertHidden = 4, TowerHidden = 3, BottomHidden = 5, Seed = 2 };

    /// <summary>The summed task losses of the model against finite differences, in every parameter and the inputs.</summary>
    private static void CheckGradients(IMultiTaskModel model, string name)
    {
        var x = Numerics.RandomTensor(5, 1, 6, 3);
        var y = Numerics.Random(12, 6, 2);
        var inputs = model.Arena.Parameters.Select(p => p.Value).Append(x).ToArray();
        model.Arena.ZeroGrad();
        GradCheck.Run(name, (t, _) => MultiTaskTrainer.Loss(t, model, x, y), inputs, eps: 1e-2f, rtol: 2e-3f, atol: 2e-4f, samples: 20);
    }

    [Fact]
    public void MultiGateMoeGradients() => CheckGradients(new MultiGateMoe(Small), "MMoE");

    [Fact]
    public void SharedBottomGradients() => CheckGradients(new SharedBottom(Small), "shared-bottom");

    [Fact]
    public void EachTaskMixesTheSharedExpertsWithItsOwnGate()
    {
        var model = new MultiGateMoe(Small);
        var x = Numerics.RandomTensor(3, 1, 4, 3);
        var g0 = model.GateWeights(x, 0);
        var g1 = model.GateWeights(x, 1);
        Assert.NotEqual(g0, g1);
        for (int r = 0; r < 4; r++) Assert.Equal(1f, g0.AsSpan(r * 3, 3).ToArray().Sum(), 1e-6f);
        // Tower 0 applied by hand to Σ_e g0_e·expert_e(x) gives the model's task-0 output.
        var tape = new MoeSharp.Autograd.Tape();
        var h = tape.Gelu(model.ExpertLayer.Forward(tape, x)).ToArray(); // [N, E·H]
        var mixed = new float[4 * 4];
        for (int r = 0; r < 4; r++)
            for (int e = 0; e < 3; e++)
                for (int j = 0; j < 4; j++) mixed[r * 4 + j] += g0[r * 3 + e] * h[r * 12 + e * 4 + j];
        var expected = model.Towers[0].Forward(tape, Tensor.FromArray(mixed, 4, 4));
        Numerics.Close(expected.Span, model.Forward(tape, x)[0].Span, 1e-5f, 1e-6f, "task 0");
    }

    [Fact]
    public void SyntheticTaskWeightsHaveTheRequestedCosine()
    {
        foreach (double p in new[] { 1.0, 0.5, 0.0, -0.3 })
        {
            var gen = new MmoeSynthetic(p, new MmoeSyntheticOptions { Inputs = 20, Scale = 2 }, seed: 3);
            double dot = 0, n1 = 0, n2 = 0;
            for (int i = 0; i < 20; i++) { dot += gen.W1[i] * gen.W2[i]; n1 += gen.W1[i] * gen.W1[i]; n2 += gen.W2[i] * gen.W2[i]; }
            Assert.Equal(2, Math.Sqrt(n1), 1e-5);
            Assert.Equal(2, Math.Sqrt(n2), 1e-5);
            Assert.Equal(p, dot / Math.Sqrt(n1 * n2), 1e-5);
        }
    }

    [Fact]
    public void SyntheticLabelCorrelationFallsWithTheKnob()
    {
        double Correlation(double p)
        {
            var (_, y) = new MmoeSynthetic(p, seed: 1).Sample(4000, new Rng(2));
            double m1 = 0, m2 = 0;
            for (int r = 0; r < 4000; r++) { m1 += y[2 * r] / 4000; m2 += y[2 * r + 1] / 4000; }
            double c = 0, v1 = 0, v2 = 0;
            for (int r = 0; r < 4000; r++)
            {
                c += (y[2 * r] - m1) * (y[2 * r + 1] - m2);
                v1 += (y[2 * r] - m1) * (y[2 * r] - m1);
                v2 += (y[2 * r + 1] - m2) * (y[2 * r + 1] - m2);
            }
            return c / Math.Sqrt(v1 * v2);
        }
        double c1 = Correlation(1), c8 = Correlation(0.8), c5 = Correlation(0.5), c0 = Correlation(0);
        Assert.True(c1 > 0.98, $"p = 1 gives label correlation {c1:F3}; only the noise separates the tasks");
        Assert.True(c1 > c8 && c8 > c5 && c5 > c0, $"label correlations {c1:F3}, {c8:F3}, {c5:F3}, {c0:F3} should fall with p");
        Assert.True(Math.Abs(c0) < 0.1, $"p = 0 gives label correlation {c0:F3}");
    }

    [Fact]
    public void GivenSinusoidParametersShapeTheLabels()
    {
        var options = MmoeSyntheticOptions.Oscillating(inputs: 4, sinusoids: 3) with { NoiseStd = 0 };
        var gen = new MmoeSynthetic(0.5, options, seed: 2);
        Assert.Equal([1f, 2f, 3f], gen.Alpha);
        Assert.Equal([0f, 1f, 4f], gen.Beta);
        var (x, y) = gen.Sample(5, new Rng(3));
        for (int r = 0; r < 5; r++)
        {
            for (int task = 0; task < 2; task++)
            {
                var w = task == 0 ? gen.W1 : gen.W2;
                double z = 0;
                for (int i = 0; i < 4; i++) z += (double)x[r * 4 + i] * w[i];
                double expected = z + Math.Sin(z) + Math.Sin(2 * z + 1) + Math.Sin(3 * z + 4);
                // float dot product against a double one: 1e-5 absolute on labels of magnitude ≤ 4.
                Assert.Equal(expected, y[2 * r + task], 1e-5);
            }
        }
    }

    [Fact]
    public void SinusoidParametersMustMatchTheirCount()
    {
        var error = Assert.Throws<ArgumentException>(() => new MmoeSynthetic(0.5, new MmoeSyntheticOptions { Sinusoids = 3, Alphas = [1f, 2f] }));
        Assert.Contains("Alphas: expected 3 values", error.Message);
        error = Assert.Throws<ArgumentException>(() => new MmoeSynthetic(0.5, new MmoeSyntheticOptions { Sinusoids = 2, Betas = [1f, 2f, 3f] }));
        Assert.Contains("Betas: expected 2 values", error.Message);
    }

    [Fact]
    public void TrainingLowersBothTaskLosses()
    {
        var gen = new MmoeSynthetic(0.5, new MmoeSyntheticOptions { Inputs = 10 }, seed: 1);
        var (x, y) = gen.Sample(512, new Rng(1));
        var model = new MultiGateMoe(new MultiTaskOptions { Inputs = 10, Experts = 4, ExpertHidden = 8, TowerHidden = 4 });
        var before = MultiTaskTrainer.Evaluate(model, x, y);
        MultiTaskTrainer.Train(model, x, y, new MultiTaskTrainOptions { Epochs = 15, BatchSize = 64, LearningRate = 1e-2f });
        var after = MultiTaskTrainer.Evaluate(model, x, y);
        for (int t = 0; t < 2; t++) Assert.True(after[t] < 0.5 * before[t], $"task {t}: MSE {before[t]:F3} → {after[t]:F3}");
    }
}
