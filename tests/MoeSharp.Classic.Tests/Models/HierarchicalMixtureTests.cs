using MoeSharp.Classic.Data;
using MoeSharp.Classic.Experts;
using MoeSharp.Classic.Models;
using MoeSharp.Tensors;
using MoeSharp.Classic.Training;
using MoeSharp.Classic.Tests.Data;

namespace MoeSharp.Classic.Tests.Models;

public class HierarchicalMixtureTests
{
    /// <summary>Four regimes on [−1, 1], breaks at −0.5, 0 and 0.5, alternating slopes; noise σ = 0.05.</summary>
    private static TabularData FourRegimes(int n, ulong seed) => Synthetic.OnInterval(n, seed, x =>
    {
        int k = Math.Min(3, (int)((x + 1) * 2));
        return (k % 2 == 0 ? 2 : -2) * x + k;
    }, 0.05f);

    private static HierarchicalMixture Build(TabularData data) =>
        new(Enumerable.Range(0, 2).Select(_ => new MixtureOfExperts(MixtureOptions.For(data),
            Enumerable.Range(0, 2).Select(_ => new LinearExpert(1, 1, TabularTask.Regression)))).ToArray());

    [Fact]
    public void EmRaisesTheLikelihoodAndFitsFourRegimes()
    {
        var data = FourRegimes(400, 1);
        var model = Build(data);
        var trainer = new HierarchicalTrainer(model, new MixtureTrainOptions { EmIterations = 15, GateStepsPerMStep = 60, LearningRate = 0.05f });
        var init = trainer.Initialize(data);
        var em = trainer.RunEm(data);
        for (int i = 1; i < em.Loss.Count; i++)
            Assert.True(em.Loss[i] <= em.Loss[i - 1] + 1e-2, $"iteration {i}: loss rose from {em.Loss[i - 1]} to {em.Loss[i]}");
        Assert.True(em.FinalLoss < init.FinalLoss, $"EM went from {init.FinalLoss} to {em.FinalLoss}");
        // Each of the four lines (slope, intercept) is found by one expert, to within 0.1.
        var found = model.Groups.SelectMany(g => g.Experts).Cast<LinearExpert>().Select(e => (e.Weight[0], e.Bias[0])).ToList();
        foreach (var (slope, intercept) in new[] { (2f, 0f), (-2f, 1f), (2f, 2f), (-2f, 3f) })
            Assert.Contains(found, f => Math.Abs(f.Item1 - slope) < 0.1 && Math.Abs(f.Item2 - intercept) < 0.1);
        // The prediction is a soft blend near the jumps (of size 1 to 3), so its error stays above the noise of 0.05.
        var test = FourRegimes(300, 2);
        var y = model.Predict(test.X.Span).Output;
        double rmse = Math.Sqrt(y.Zip(test.Targets).Average(p => (p.First - p.Second) * (double)(p.First - p.Second)));
        Assert.True(rmse < 0.25, $"HME RMSE {rmse:F3} (one line: about 1.1)");
    }

    [Fact]
    public void PredictionIsTheTwoLevelGateWeightedSum()
    {
        var data = FourRegimes(100, 3);
        var model = Build(data);
        new HierarchicalTrainer(model, new MixtureTrainOptions { GateStepsPerMStep = 20 }).Initialize(data);
        var x = data.X.ToArray();
        var top = model.GroupWeights(x);
        var p = model.Predict(x);
        for (int r = 0; r < data.Rows; r++)
        {
            double expected = 0;
            for (int i = 0; i < 2; i++)
            {
                var g = model.Groups[i].GateWeights(x.AsSpan(r, 1));
                for (int j = 0; j < 2; j++)
                {
                    var f = new float[1];
                    model.Groups[i].Experts[j].Predict(x.AsSpan(r, 1), f);
                    expected += top[r * 2 + i] * g[j] * f[0];
                    Assert.Equal(top[r * 2 + i] * g[j], p.Gates[r * 4 + i * 2 + j], 1e-5f);
                }
            }
            Assert.Equal(expected, p.Output[r], 1e-4);
        }
    }
}
