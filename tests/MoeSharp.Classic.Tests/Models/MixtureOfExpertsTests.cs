using MoeSharp.Autograd;
using MoeSharp.Classic.Data;
using MoeSharp.Classic.Experts;
using MoeSharp.Classic.Models;
using MoeSharp.Tensors;
using MoeSharp.Classic.Training;
using MoeSharp.Classic.Tests.Data;

namespace MoeSharp.Classic.Tests.Models;

public class MixtureOfExpertsTests
{
    /// <summary>y on x ∈ [−1, 1] in three linear regimes: 2x + 2 below −0.3, −3x up to 0.4, 1.5x − 1 above; noise σ = 0.05.</summary>
    private static TabularData Piecewise(int n, ulong seed) => Synthetic.OnInterval(n, seed, Regime, 0.05f);

    private static float Regime(float x) => x < -0.3f ? 2 * x + 2 : x < 0.4f ? -3 * x : 1.5f * x - 1;

    private static double Rmse(float[] predicted, float[] target) =>
        Math.Sqrt(predicted.Zip(target).Average(p => (p.First - p.Second) * (double)(p.First - p.Second)));

    [Fact]
    public void LinearExpertsRecoverAPiecewiseLinearFunctionThatOneLineCannot()
    {
        var data = Piecewise(600, 1);
        var model = new MixtureOfExperts(MixtureOptions.For(data), Enumerable.Range(0, 3).Select(_ => new LinearExpert(1, 1, TabularTask.Regression)));
        new MixtureTrainer(model, new MixtureTrainOptions
        {
            Phases = [MixturePhase.Experts, MixturePhase.Gate, MixturePhase.Em], GateEpochs = 10, EmIterations = 15, GateStepsPerMStep = 50, LearningRate = 0.05f,
        }).Fit(data);

        // Gate boundaries: where the most probable expert changes along a fine grid.
        var grid = Enumerable.Range(0, 2001).Select(i => -1 + i / 1000f).ToArray();
        var g = model.GateWeights(grid);
        var winner = grid.Select((_, i) => Array.IndexOf(g, g.AsSpan(i * 3, 3).ToArray().Max(), i * 3) - i * 3).ToArray();
        var boundaries = Enumerable.Range(1, grid.Length - 1).Where(i => winner[i] != winner[i - 1]).Select(i => grid[i]).ToArray();
        Assert.Equal(2, boundaries.Length);
        // Stated tolerance: each boundary within 0.02 of the true break (600 points on [−1, 1], 0.0033 apart on average).
        Assert.InRange(boundaries[0], -0.32f, -0.28f);
        Assert.InRange(boundaries[1], 0.38f, 0.42f);

        var test = Piecewise(400, 2);
        double mixture = Rmse(model.Predict(test.X.Span).Output, test.Targets);
        var line = new LinearExpert(1, 1, TabularTask.Regression);
        line.Fit(data, Enumerable.Repeat(1f, data.Rows).ToArray());
        var single = new float[test.Rows];
        line.Predict(test.X.Span, single);
        double linear = Rmse(single, test.Targets);
        Assert.True(mixture < 0.12, $"mixture RMSE {mixture:F3}");
        Assert.True(linear > 0.5, $"one line's RMSE {linear:F3}");
    }

    private static (MixtureOfExperts Model, TabularData Data) TrainedClassifier()
    {
        var rng = new Rng(4);
        int n = 120, d = 2;
        var x = new float[n * d];
        var labels = new int[n];
        for (int r = 0; r < n; r++)
        {
            x[r * d] = rng.NextNormal();
            x[r * d + 1] = rng.NextNormal();
            labels[r] = x[r * d] * x[r * d + 1] > 0 ? 1 : 0;
        }
        var data = new TabularData(Tensor.FromArray(x, n, d), TabularTask.Classification, labels, null, 2);
        IExpert[] experts =
        [
            new MlpExpert(d, 2, TabularTask.Classification, new MlpExpertOptions { Hidden = 6, Epochs = 10, Seed = 1 }),
            new LinearExpert(d, 2, TabularTask.Classification),
            new TreeExpert(d, 2, TabularTask.Classification, new TreeExpertOptions { MaxDepth = 3 }),
        ];
        var model = new MixtureOfExperts(MixtureOptions.For(data), experts);
        new MixtureTrainer(model, new MixtureTrainOptions { GateEpochs = 3, JointEpochs = 3, RefitEvery = 2 }).Fit(data);
        return (model, data);
    }

    [Fact]
    public void AddingAnExpertLeavesTheOldExpertsBitwiseUnchanged()
    {
        var (model, data) = TrainedClassifier();
        var before = model.Experts.Select(e => e.Export()).ToArray();
        var gateBefore = model.Gate.Arena.Values.ToArray();
        int added = model.AddExpert(new MlpExpert(2, 2, TabularTask.Classification, new MlpExpertOptions { Hidden = 6, Epochs = 5, Seed = 9 }));
        Assert.Equal(3, added);
        var newBefore = model.Experts[added].Export().Tensors["output.weight"].ToArray();
        new MixtureTrainer(model, new MixtureTrainOptions { Phases = [MixturePhase.Joint, MixturePhase.Em], JointEpochs = 3, RefitEvery = 1, EmIterations = 2, GateStepsPerMStep = 5 }).Fit(data);
        for (int e = 0; e < 3; e++)
        {
            Assert.True(model.IsFrozen(e));
            foreach (var (name, tensor) in before[e].Tensors)
                Numerics.BitwiseEqual(tensor.Span, model.Experts[e].Export().Tensors[name].Span, $"expert {e} {name}");
        }
        Assert.NotEqual(newBefore, model.Experts[added].Export().Tensors["output.weight"].ToArray());
        Assert.NotEqual(gateBefore, model.Gate.Arena.Values.AsSpan(0, gateBefore.Length).ToArray());
    }

    [Fact]
    public void RemovingAnExpertRenormalisesTheGateOverTheRest()
    {
        var (model, data) = TrainedClassifier();
        var g = model.GateWeights(data.X.Span);
        model.RemoveExpert(1);
        var g2 = model.GateWeights(data.X.Span);
        for (int r = 0; r < data.Rows; r++)
        {
            float rest = g[r * 3] + g[r * 3 + 2];
            Numerics.Close([g[r * 3] / rest, g[r * 3 + 2] / rest], g2.AsSpan(r * 2, 2), 1e-5f, 1e-7f, $"row {r}");
        }
        Assert.Equal(2, model.Count);
        Assert.Equal(["mlp", "tree"], model.Experts.Select(e => e.Kind));
    }

    [Fact]
    public void PruneDropsExpertsBelowTheImportanceThreshold()
    {
        var (model, data) = TrainedClassifier();
        var importance = model.Importance(data.X.Span);
        float threshold = importance.Order().ElementAt(1) + 1e-6f; // just above the second smallest
        var removed = model.Prune(data.X.Span, threshold);
        Assert.Equal(2, removed.Length);
        Assert.Equal(1, model.Count);
        Assert.Equal(Array.IndexOf(importance, importance.Max()), Enumerable.Range(0, 3).Except(removed).Single());
        Numerics.Close(Enumerable.Repeat(1f, data.Rows).ToArray(), model.GateWeights(data.X.Span), 0, 1e-7f, "a lone expert's gate");
    }

    [Fact]
    public void ReplaceAndChangeKAtInference()
    {
        var (model, data) = TrainedClassifier();
        var x = data.X.ToArray();
        var g = model.GateWeights(x);
        var outputs = Enumerable.Range(0, 3).Select(e => model.ExpertOutputs(e, x)).ToArray();
        model.TopK = 1;
        var top1 = model.Predict(x).Output;
        for (int r = 0; r < data.Rows; r++)
        {
            int best = Array.IndexOf(g, g.AsSpan(r * 3, 3).ToArray().Max(), r * 3) - r * 3;
            Numerics.Close(outputs[best].AsSpan(r * 2, 2), top1.AsSpan(r * 2, 2), 1e-6f, 1e-7f, $"top-1 row {r}");
        }
        model.TopK = 0;
        var constant = new ScriptedExpert(2, 2, TabularTask.Classification, value: 0.5f);
        model.ReplaceExpert(2, constant);
        var dense = model.Predict(x).Output;
        for (int r = 0; r < data.Rows; r++)
            for (int c = 0; c < 2; c++)
            {
                float expected = g[r * 3] * outputs[0][r * 2 + c] + g[r * 3 + 1] * outputs[1][r * 2 + c] + g[r * 3 + 2] * 0.5f;
                Assert.Equal(expected, dense[r * 2 + c], 1e-5f);
            }
        Assert.Throws<ArgumentOutOfRangeException>(() => model.TopK = 4);
    }

    [Fact]
    public void UpcyclingCopiesOneModelUnderAUniformGate()
    {
        var (_, data) = TrainedClassifier();
        var source = new MlpExpert(2, 2, TabularTask.Classification, new MlpExpertOptions { Hidden = 6, Epochs = 20 });
        source.Fit(data, Enumerable.Repeat(1f, data.Rows).ToArray());
        var expected = new float[data.Rows * 2];
        source.Predict(data.X.Span, expected);
        var exact = MixtureOfExperts.Upcycle(source, 4, noise: 0, seed: 1);
        Numerics.Close(Enumerable.Repeat(0.25f, data.Rows * 4).ToArray(), exact.GateWeights(data.X.Span), 0, 1e-7f, "uniform gate");
        Numerics.Close(expected, exact.Predict(data.X.Span).Output, 1e-5f, 1e-6f, "noise-free upcycled mixture");
        var noisy = MixtureOfExperts.Upcycle(source, 4, noise: 0.05f, seed: 1);
        var w0 = ((MlpExpert)noisy.Experts[0]).Arena.Values;
        var w1 = ((MlpExpert)noisy.Experts[1]).Arena.Values;
        Assert.NotEqual(w0, w1);
        Assert.NotEqual(source.Arena.Values, w0);
    }

    [Fact]
    public void TooFewRowsForTheExpertsIsAClearError()
    {
        var data = Piecewise(2, 1);
        var model = new MixtureOfExperts(MixtureOptions.For(data), Enumerable.Range(0, 3).Select(_ => new LinearExpert(1, 1, TabularTask.Regression)));
        var ex = Assert.Throws<ArgumentException>(() => new MixtureTrainer(model).Fit(data));
        Assert.Contains("2 rows cannot train 3 experts", ex.Message);
    }

    [Fact]
    public void AnExpertThatTurnsNaNDuringTrainingIsNamed()
    {
        var data = Piecewise(20, 1);
        var model = new MixtureOfExperts(MixtureOptions.For(data), [new LinearExpert(1, 1, TabularTask.Regression), new ScriptedExpert(1, 1, TabularTask.Regression, nanRow: 7)]);
        var ex = Assert.Throws<NonFiniteException>(() => new MixtureTrainer(model, new MixtureTrainOptions { Phases = [MixturePhase.Gate] }).Fit(data));
        Assert.Contains("Expert 1 (scripted)", ex.Message);
        Assert.Contains("row 7", ex.Message);
    }
}

/// <summary>An expert for fault tests: a constant output, optionally throwing on chosen rows, NaN on one row, or sleeping.</summary>
internal sealed class ScriptedExpert(int inputs, int outputs, TabularTask task, float value = 1, Func<float, bool>? throwsOn = null, int nanRow = -1, int sleepMs = 0) : IExpert
{
    public string Kind => "scripted";
    public int Inputs => inputs;
    public int Outputs => outputs;
    public TabularTask Task => task;
    public int Calls;

    public void Predict(ReadOnlySpan<float> x, Span<float> output)
    {
        Interlocked.Increment(ref Calls);
        if (sleepMs > 0) Thread.Sleep(sleepMs);
        int n = x.Length / inputs;
        for (int r = 0; r < n; r++)
        {
            if (throwsOn?.Invoke(x[r * inputs]) == true) throw new InvalidOperationException($"cannot handle x = {x[r * inputs]}");
            output.Slice(r * outputs, outputs).Fill(value);
        }
        if (nanRow >= 0 && nanRow < n) output[nanRow * outputs] = float.NaN;
    }

    public void Fit(TabularData data, ReadOnlySpan<float> weights) { }
}
