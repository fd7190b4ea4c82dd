using MoeSharp.Classic.Data;
using MoeSharp.Classic.Experts;
using MoeSharp.Classic.Models;
using MoeSharp.Tensors;
using MoeSharp.Classic.Training;
using MoeSharp.Classic.Tests.Data;

namespace MoeSharp.Classic.Tests.Training;

public class EmTests
{
    private static readonly float[] X = [-2, -1, 0, 1, 2, 3];
    private static readonly float[] Y = [-3.2f, -0.7f, 1.3f, 2.6f, 2.1f, 0.8f];

    /// <summary>Two linear experts (f₁ = 1.5x + 0.5, σ²₁ = 4; f₂ = −0.5x + 3, σ²₂ = 2) under the gate a = (0.3x + 0.1, −0.3x − 0.1).</summary>
    private static MixtureOfExperts Tiny()
    {
        var data = Data();
        var experts = new[] { Line(1.5f, 0.5f), Line(-0.5f, 3f) };
        var model = new MixtureOfExperts(MixtureOptions.For(data), experts);
        model.SetVariance(0, 4);
        model.SetVariance(1, 2);
        model.Gate.Output.Weight.Value.Span[0] = 0.3f;
        model.Gate.Output.Weight.Value.Span[1] = -0.3f;
        model.Gate.Output.Bias!.Value.Span[0] = 0.1f;
        model.Gate.Output.Bias!.Value.Span[1] = -0.1f;
        return model;
    }

    private static LinearExpert Line(float slope, float intercept)
    {
        var e = new LinearExpert(1, 1, TabularTask.Regression, new LinearExpertOptions { Ridge = 0 });
        e.Weight[0] = slope;
        e.Bias[0] = intercept;
        return e;
    }

    private static TabularData Data() => new(Tensor.FromArray(X, 6, 1), TabularTask.Regression, null, Y);

    private static double Normal(double y, double mean, double variance) => Math.Exp(-(y - mean) * (y - mean) / (2 * variance)) / Math.Sqrt(2 * Math.PI * variance);

    [Fact]
    public void OneEmStepMatchesTheClosedForm()
    {
        var model = Tiny();
        var trainer = new MixtureTrainer(model, new MixtureTrainOptions { GateStepsPerMStep = 4000, LearningRate = 0.02f, WeightDecay = 0 });
        var data = Data();

        // E-step by hand: g₁ = σ(0.6x + 0.2), h₁ = g₁·N(y; f₁, 4) / (g₁·N(y; f₁, 4) + g₂·N(y; f₂, 2)).
        var h1 = new double[6];
        double logLik = 0;
        for (int n = 0; n < 6; n++)
        {
            double g1 = 1 / (1 + Math.Exp(-(0.6 * X[n] + 0.2)));
            double p1 = g1 * Normal(Y[n], 1.5 * X[n] + 0.5, 4), p2 = (1 - g1) * Normal(Y[n], -0.5 * X[n] + 3, 2);
            h1[n] = p1 / (p1 + p2);
            logLik += Math.Log(p1 + p2);
        }
        var h = trainer.EStep(data, out double ll);
        Assert.Equal(logLik, ll, 1e-4);
        for (int n = 0; n < 6; n++)
        {
            Assert.Equal(h1[n], h[2 * n], 1e-5);
            Assert.Equal(1 - h1[n], h[2 * n + 1], 1e-5);
        }

        // M-step by hand: expert e is the weighted least-squares line with weights h_e; σ²_e = Σh·r² / Σh.
        trainer.MStep(data, h);
        for (int e = 0; e < 2; e++)
        {
            var w = h1.Select(v => e == 0 ? v : 1 - v).ToArray();
            double sw = w.Sum(), mx = 0, my = 0;
            for (int n = 0; n < 6; n++) { mx += w[n] * X[n] / sw; my += w[n] * Y[n] / sw; }
            double sxy = 0, sxx = 0;
            for (int n = 0; n < 6; n++) { sxy += w[n] * (X[n] - mx) * (Y[n] - my); sxx += w[n] * (X[n] - mx) * (X[n] - mx); }
            double slope = sxy / sxx, intercept = my - slope * mx, rss = 0;
            for (int n = 0; n < 6; n++) rss += w[n] * Math.Pow(Y[n] - slope * X[n] - intercept, 2);
            var expert = (LinearExpert)model.Experts[e];
            Assert.Equal(slope, expert.Weight[0], 1e-4);
            Assert.Equal(intercept, expert.Bias[0], 1e-4);
            Assert.Equal(rss / sw, model.Variances[e], 1e-4);
        }

        // The gate's M-step maximises Σ h·log g; at its optimum the score Σ_n (h_n − g_n)·(x_n, 1) vanishes.
        var g = model.GateWeights(X);
        double sx = 0, s1 = 0;
        for (int n = 0; n < 6; n++)
        {
            sx += (h1[n] - g[2 * n]) * X[n];
            s1 += h1[n] - g[2 * n];
        }
        Assert.True(Math.Abs(sx) < 2e-3 && Math.Abs(s1) < 2e-3, $"gate score equations: {sx:G3}, {s1:G3}");
    }

    [Fact]
    public void EmNeverLowersTheLikelihoodMuch()
    {
        var data = Synthetic.OnInterval(200, 3, x => x < 0 ? 2 * x + 1 : -x, 0.1f);
        var model = new MixtureOfExperts(MixtureOptions.For(data), [new LinearExpert(1, 1, TabularTask.Regression), Line(0.5f, 0)]);
        var report = new MixtureTrainer(model, new MixtureTrainOptions { EmIterations = 15, Phases = [MixturePhase.Em] }).Fit(data)[0];
        // The gate's M-step is a fixed number of AdamW steps, not an exact maximisation, so allow a sliver of slack.
        for (int i = 1; i < report.Loss.Count; i++)
            Assert.True(report.Loss[i] <= report.Loss[i - 1] + 1e-3, $"iteration {i}: loss rose from {report.Loss[i - 1]} to {report.Loss[i]}");
        Assert.True(report.Loss[^1] < report.Loss[0] - 0.5, $"EM went from {report.Loss[0]} to {report.Loss[^1]}");
    }
}

public class PhaseRowTests
{
    /// <summary>Records the weights of every fit.</summary>
    private sealed class Recorder(int inputs) : IExpert
    {
        public readonly List<float[]> Fits = [];
        public string Kind => "recorder";
        public int Inputs => inputs;
        public int Outputs => 1;
        public TabularTask Task => TabularTask.Regression;
        public void Predict(ReadOnlySpan<float> x, Span<float> output) => output.Fill(0.5f);
        public void Fit(TabularData data, ReadOnlySpan<float> weights) => Fits.Add(weights.ToArray());
    }

    private static TabularData Data(int n)
    {
        var x = Enumerable.Range(0, n).Select(i => i / (float)n).ToArray();
        return new TabularData(Tensor.FromArray(x, n, 1), TabularTask.Regression, null, x);
    }

    [Fact]
    public void WithAHoldoutExpertsNeverFitTheGateRows()
    {
        var data = Data(50);
        var a = new Recorder(1);
        var b = new Recorder(1);
        var model = new MixtureOfExperts(MixtureOptions.For(data), [a, b]);
        new MixtureTrainer(model, new MixtureTrainOptions
        {
            Phases = [MixturePhase.Experts, MixturePhase.Gate, MixturePhase.Joint, MixturePhase.Em], GateHoldout = 0.2f,
            GateEpochs = 1, JointEpochs = 2, RefitEvery = 1, EmIterations = 2, GateStepsPerMStep = 1,
        }).Fit(data);
        // One fit in the experts phase, two joint refits, two M-steps.
        Assert.Equal(5, a.Fits.Count);
        var gateRows = Enumerable.Range(0, 50).Where(r => a.Fits.All(w => w[r] == 0) && b.Fits.All(w => w[r] == 0)).ToArray();
        Assert.Equal(10, gateRows.Length); // ⌈0.2·50⌉, the same rows in every phase
        Assert.All(a.Fits.Skip(1).Concat(b.Fits.Skip(1)), w => Assert.Equal(40, w.Count(v => v > 0)));
    }

    [Fact]
    public void AllRowsStartFitsEveryExpertOnEveryRow()
    {
        var data = Data(30);
        var a = new Recorder(1);
        var model = new MixtureOfExperts(MixtureOptions.For(data), [a, new Recorder(1)]);
        new MixtureTrainer(model, new MixtureTrainOptions { Phases = [MixturePhase.Experts], ExpertStart = ExpertStart.AllRows }).Fit(data);
        Assert.Equal(Enumerable.Repeat(1f, 30), a.Fits.Single());
        var kmeans = new Recorder(1);
        new MixtureTrainer(new MixtureOfExperts(MixtureOptions.For(data), [kmeans, new Recorder(1)]), new MixtureTrainOptions { Phases = [MixturePhase.Experts] }).Fit(data);
        Assert.InRange(kmeans.Fits.Single().Count(v => v == 1), 10, 20); // k-means halves the line
    }
}
