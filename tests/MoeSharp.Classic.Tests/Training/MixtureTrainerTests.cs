using MoeSharp.Classic.Data;
using MoeSharp.Classic.Experts;
using MoeSharp.Classic.Models;
using MoeSharp.Tensors;
using MoeSharp.Classic.Training;

namespace MoeSharp.Classic.Tests.Training;

public class MixtureTrainerTests
{
    /// <summary>Two Gaussian blobs whose label depends on the blob and on x₁ inside it.</summary>
    private static TabularData Blobs(int n, ulong seed)
    {
        var rng = new Rng(seed);
        var x = new float[2 * n];
        var labels = new int[n];
        for (int r = 0; r < n; r++)
        {
            bool left = r % 2 == 0;
            x[2 * r] = (left ? -2 : 2) + 0.5f * rng.NextNormal();
            x[2 * r + 1] = rng.NextNormal();
            labels[r] = left ^ x[2 * r + 1] > 0 ? 1 : 0;
        }
        return new TabularData(Tensor.FromArray(x, n, 2), TabularTask.Classification, labels, null, 2);
    }

    private static MixtureOfExperts Mlps(TabularData data, int experts) => new(MixtureOptions.For(data),
        Enumerable.Range(0, experts).Select(i => new MlpExpert(2, 2, TabularTask.Classification, new MlpExpertOptions { Hidden = 4, Epochs = 5, Seed = (ulong)i + 1 })));

    [Fact]
    public void JointBackPropagationLowersTheMixtureLoss()
    {
        var data = Blobs(200, 1);
        var model = Mlps(data, 2);
        var trainer = new MixtureTrainer(model, new MixtureTrainOptions { Phases = [MixturePhase.Joint], JointEpochs = 30, LearningRate = 0.03f });
        double before = trainer.Nll(data);
        var report = trainer.Fit(data)[0];
        double after = trainer.Nll(data);
        Assert.True(after < 0.5 * before, $"mixture NLL {before:F3} → {after:F3}");
        Assert.True(report.Loss[^1] < report.Loss[0], $"epoch losses {report.Loss[0]:F3} → {report.Loss[^1]:F3}");
    }

    [Fact]
    public void TheBalanceTermSpreadsTheLoadAndTheEntropyTermSharpensTheGate()
    {
        // One strong expert and two weak ones: left alone, the gate gives nearly everything to the strong one.
        var data = Blobs(200, 2);
        var strong = new TreeExpert(2, 2, TabularTask.Classification, new TreeExpertOptions { MaxDepth = 4 });
        strong.Fit(data, Enumerable.Repeat(1f, data.Rows).ToArray());
        double Cv(float[] importance)
        {
            double mean = importance.Average();
            return Math.Sqrt(importance.Sum(v => (v - mean) * (v - mean)) / importance.Length) / mean;
        }
        (double Cv, double Entropy) Train(float balance, float entropy)
        {
            IExpert[] experts = [strong.Clone(), new ScriptedConstant(0.5f), new ScriptedConstant(0.5f)];
            var model = new MixtureOfExperts(MixtureOptions.For(data), experts);
            for (int e = 0; e < 3; e++) model.Freeze(e);
            new MixtureTrainer(model, new MixtureTrainOptions { Phases = [MixturePhase.Gate], GateEpochs = 40, LearningRate = 0.05f, BalanceCoef = balance, EntropyCoef = entropy }).Fit(data);
            var g = model.GateWeights(data.X.Span);
            double h = 0;
            foreach (float v in g) if (v > 0) h -= v * Math.Log(v);
            return (Cv(model.Importance(data.X.Span)), h / data.Rows);
        }
        var plain = Train(0, 0);
        var balanced = Train(5, 0);
        var sharp = Train(0, 1);
        Assert.True(balanced.Cv < 0.5 * plain.Cv, $"importance CV {plain.Cv:F3} without the balance term, {balanced.Cv:F3} with it");
        Assert.True(sharp.Entropy < plain.Entropy, $"gate entropy {plain.Entropy:F3} without the entropy term, {sharp.Entropy:F3} with it");
    }

    /// <summary>A classifier that always says p(class 1) = p.</summary>
    private sealed class ScriptedConstant(float p) : IExpert
    {
        public string Kind => "constant";
        public int Inputs => 2;
        public int Outputs => 2;
        public TabularTask Task => TabularTask.Classification;

        public void Predict(ReadOnlySpan<float> x, Span<float> output)
        {
            for (int r = 0; r < output.Length / 2; r++) { output[2 * r] = 1 - p; output[2 * r + 1] = p; }
        }

        public void Fit(TabularData data, ReadOnlySpan<float> weights) { }
    }
}
