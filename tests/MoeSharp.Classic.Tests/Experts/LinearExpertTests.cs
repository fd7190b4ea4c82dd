using MoeSharp.Classic.Data;
using MoeSharp.Classic.Experts;
using MoeSharp.Tensors;

namespace MoeSharp.Classic.Tests.Experts;

public class LinearExpertTests
{
    [Fact]
    public void WeightedLeastSquaresMatchesTheClosedFormSlopeAndIntercept()
    {
        // 1-D WLS: β₁ = Σw(x − x̄)(y − ȳ) / Σw(x − x̄)², β₀ = ȳ − β₁x̄ with weighted means x̄, ȳ.
        float[] x = [0, 1, 2, 3, 4], y = [1, 0, 4, 3, 9], w = [1, 2, 0.5f, 1, 3];
        double sw = w.Sum(), mx = x.Zip(w).Sum(p => p.First * p.Second) / sw, my = y.Zip(w).Sum(p => p.First * p.Second) / sw;
        double sxy = 0, sxx = 0;
        for (int i = 0; i < 5; i++) { sxy += w[i] * (x[i] - mx) * (y[i] - my); sxx += w[i] * (x[i] - mx) * (x[i] - mx); }
        double slope = sxy / sxx, intercept = my - slope * mx;
        var expert = new LinearExpert(1, 1, TabularTask.Regression, new LinearExpertOptions { Ridge = 0 });
        expert.Fit(new TabularData(Tensor.FromArray(x, 5, 1), TabularTask.Regression, null, y), w);
        Assert.Equal(slope, expert.Weight[0], 1e-5);
        Assert.Equal(intercept, expert.Bias[0], 1e-5);
    }

    [Fact]
    public void ZeroWeightsSelectOneOfTwoLines()
    {
        var rng = new Rng(2);
        int n = 40;
        var x = new float[n * 2];
        var y = new float[n];
        var w = new float[n];
        for (int r = 0; r < n; r++)
        {
            x[2 * r] = rng.NextFloat();
            x[2 * r + 1] = rng.NextFloat();
            bool first = r % 2 == 0;
            y[r] = first ? 2 * x[2 * r] - 3 * x[2 * r + 1] + 0.5f : -x[2 * r] + 4;
            w[r] = first ? 1 : 0;
        }
        var expert = new LinearExpert(2, 1, TabularTask.Regression);
        expert.Fit(new TabularData(Tensor.FromArray(x, n, 2), TabularTask.Regression, null, y), w);
        Numerics.Close([2f, -3f], expert.Weight, 1e-4f, 1e-4f, "coefficients");
        Assert.Equal(0.5f, expert.Bias[0], 1e-4f);
    }

    [Theory]
    [InlineData(2, 0f)]
    [InlineData(2, 1f)]
    [InlineData(3, 0.5f)]
    public void IrlsSolvesTheWeightedRidgeScoreEquations(int classes, float ridge)
    {
        // At the optimum of Σw·[log(1 + eᶻ) − t·z] + λ/2·‖β‖², the gradient Σ w·(p − t)·x̃ + λ·β′ is zero.
        var rng = new Rng(9);
        int n = 120, d = 3;
        var x = new float[n * d];
        var labels = new int[n];
        var w = new float[n];
        for (int r = 0; r < n; r++)
        {
            for (int j = 0; j < d; j++) x[r * d + j] = rng.NextNormal();
            // Noisy labels, so that even λ = 0 has a finite optimum.
            labels[r] = (x[r * d] + 0.5f * x[r * d + 1] + rng.NextNormal() > 0 ? 1 : 0) + (classes == 3 && x[r * d + 2] > 0.7f ? 1 : 0);
            w[r] = 0.2f + rng.NextFloat();
        }
        var data = new TabularData(Tensor.FromArray(x, n, d), TabularTask.Classification, labels, null, classes);
        var expert = new LinearExpert(d, classes, TabularTask.Classification, new LinearExpertOptions { Ridge = ridge });
        expert.Fit(data, w);
        Assert.InRange(expert.Iterations, 2, 20);
        for (int c = 0; c < expert.Rows; c++)
        {
            int positive = expert.Rows == 1 ? 1 : c;
            var grad = new double[d + 1];
            for (int r = 0; r < n; r++)
            {
                double z = expert.Bias[c];
                for (int j = 0; j < d; j++) z += expert.Weight[c * d + j] * x[r * d + j];
                double p = 1 / (1 + Math.Exp(-z)), t = labels[r] == positive ? 1 : 0;
                for (int j = 0; j < d; j++) grad[j] += w[r] * (p - t) * x[r * d + j];
                grad[d] += w[r] * (p - t);
            }
            for (int j = 0; j < d; j++) grad[j] += ridge * expert.Weight[c * d + j];
            Assert.All(grad, g => Assert.True(Math.Abs(g) < 1e-3, $"class {c}: score equation residual {g}"));
        }
        var probs = new float[n * classes];
        expert.Predict(x, probs);
        for (int r = 0; r < n; r++) Assert.Equal(1f, probs.AsSpan(r * classes, classes).ToArray().Sum(), 1e-5f);
    }

    [Fact]
    public void SeparableDataStaysFiniteWithTheDefaultRidge()
    {
        var data = new TabularData(Tensor.FromArray([-2, -1, 1, 2], 4, 1), TabularTask.Classification, [0, 0, 1, 1], null, 2);
        var expert = new LinearExpert(1, 2, TabularTask.Classification);
        expert.Fit(data, [1, 1, 1, 1]);
        Assert.True(float.IsFinite(expert.Weight[0]) && expert.Weight[0] > 0);
        var p = new float[8];
        expert.Predict(data.X.Span, p);
        Assert.True(p[1] < 0.5f && p[7] > 0.5f);
    }
}
