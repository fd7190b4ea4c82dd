using MoeSharp.Classic.Data;
using MoeSharp.Classic.Diagnostics;
using MoeSharp.Classic.Experts;
using MoeSharp.Classic.IO;
using MoeSharp.Classic.Models;
using MoeSharp.Tensors;

namespace MoeSharp.Classic.Tests.Diagnostics;

public class MixtureReportTests
{
    [Fact]
    public void PcaFindsTheClosedFormEigenvectorsOfATwoByTwoCovariance()
    {
        // Sample covariance [[a, b], [b, c]]: eigenvalues (a + c)/2 ± √(((a − c)/2)² + b²), leading direction ∝ (b, λ₁ − a).
        var rng = new Rng(1);
        var x = new float[400];
        for (int r = 0; r < 200; r++)
        {
            float t = rng.NextNormal(), s = rng.NextNormal();
            x[2 * r] = 2 * t + 0.3f * s;
            x[2 * r + 1] = t - 0.5f * s + 3;
        }
        double ma = 0, mc = 0;
        for (int r = 0; r < 200; r++) { ma += x[2 * r] / 200.0; mc += x[2 * r + 1] / 200.0; }
        double a = 0, b = 0, c = 0;
        for (int r = 0; r < 200; r++)
        {
            a += (x[2 * r] - ma) * (x[2 * r] - ma) / 199;
            b += (x[2 * r] - ma) * (x[2 * r + 1] - mc) / 199;
            c += (x[2 * r + 1] - mc) * (x[2 * r + 1] - mc) / 199;
        }
        double l1 = (a + c) / 2 + Math.Sqrt((a - c) * (a - c) / 4 + b * b), l2 = a + c - l1;
        double vx = b, vy = l1 - a, norm = Math.Sqrt(vx * vx + vy * vy);
        var pca = Pca.Fit(x, 2);
        Assert.Equal(vx / norm, pca.Components[0][0], 1e-6);
        Assert.Equal(vy / norm, pca.Components[0][1], 1e-6);
        Assert.Equal(l1 / (l1 + l2), pca.ExplainedVariance[0], 1e-6);
        Assert.Equal(l2 / (l1 + l2), pca.ExplainedVariance[1], 1e-6);
    }

    [Fact]
    public void RegionsLoadAndScoresFollowTheGate()
    {
        // Gate a = (5x, −5x): rows with x > 0 go to expert 0 (always 1), the rest to expert 1 (always −1).
        var x = Enumerable.Range(0, 10).Select(i => i - 4.5f).ToArray();
        var y = x.Select(v => v > 0 ? 1f : -0.5f).ToArray();
        var data = new TabularData(Tensor.FromArray(x, 10, 1), TabularTask.Regression, null, y);
        var model = new MixtureOfExperts(MixtureOptions.For(data), [new FixedExpert(1), new FixedExpert(-1)]);
        model.Gate.Output.Weight.Value.Span[0] = 5;
        model.Gate.Output.Weight.Value.Span[1] = -5;
        var report = MixtureReport.Build(new SavedMixture(model, null, null), data, new TabularSchema { Features = ["x"], Target = "y", TargetStd = 2 });
        Assert.Equal([1, 1, 1, 1, 1, 0, 0, 0, 0, 0], report.Routed);
        var (e0, e1) = (report.Experts[0], report.Experts[1]);
        Assert.Equal(5, e0.Rows);
        Assert.Equal(0.5, e0.Load, 1e-12);
        Assert.Equal(0, e0.ExpertScore, 1e-6);      // expert 0 is exact on x > 0
        Assert.Equal(2 * 0.5, e1.ExpertScore, 1e-6); // off by 0.5 on x < 0, times the target std of 2
        var text = report.ToText();
        Assert.Contains("mixture of 2 experts, 10 rows: RMSE", text);
        var html = report.ToHtml("test <report>");
        Assert.Contains("test &lt;report&gt;", html);
        Assert.Equal(3, html.Split("<svg").Length - 1); // one panel for the winner, one per expert
    }

    private sealed class FixedExpert(float value) : IExpert
    {
        public string Kind => "fixed";
        public int Inputs => 1;
        public int Outputs => 1;
        public TabularTask Task => TabularTask.Regression;
        public void Predict(ReadOnlySpan<float> x, Span<float> output) => output.Fill(value);
        public void Fit(TabularData data, ReadOnlySpan<float> weights) { }
    }
}
