using MoeSharp.Classic.Data;
using MoeSharp.Classic.Experts;
using MoeSharp.Tensors;

namespace MoeSharp.Classic.Tests.Experts;

public class MlpExpertTests
{
    [Fact]
    public void WeightsDecideBetweenContradictoryRows()
    {
        // Each x appears twice, labelled 0 and 1; weight 1 on one copy and 0 on the other decides which is learnt.
        int n = 20;
        var x = new float[2 * n];
        var labels = new int[2 * n];
        var w = new float[2 * n];
        for (int r = 0; r < n; r++)
        {
            x[r] = x[n + r] = r / (float)n - 0.5f;
            labels[r] = 0;
            labels[n + r] = 1;
            bool left = x[r] < 0;
            w[r] = left ? 1 : 0;
            w[n + r] = left ? 0 : 1;
        }
        var data = new TabularData(Tensor.FromArray(x, 2 * n, 1), TabularTask.Classification, labels, null, 2);
        var expert = new MlpExpert(1, 2, TabularTask.Classification, new MlpExpertOptions { Hidden = 8, Epochs = 200, BatchSize = 16, LearningRate = 0.03f });
        expert.Fit(data, w);
        var p = new float[4];
        expert.Predict([-0.4f, 0.4f], p);
        Assert.True(p[0] > 0.9f, $"p(class 0 | x = −0.4) = {p[0]}");
        Assert.True(p[3] > 0.9f, $"p(class 1 | x = 0.4) = {p[3]}");
    }

    [Fact]
    public void ExportRestoreCloneAndPerturb()
    {
        var expert = new MlpExpert(3, 1, TabularTask.Regression, new MlpExpertOptions { Hidden = 5, Seed = 4 });
        var x = Numerics.Random(12, 1);
        var a = new float[4];
        var b = new float[4];
        expert.Predict(x, a);
        ((IExpert)expert).Export().Restore().Predict(x, b);
        Numerics.BitwiseEqual(a, b, "restored");
        var copy = ((IExpert)expert).Clone();
        copy.Predict(x, b);
        Numerics.BitwiseEqual(a, b, "clone");
        copy.Perturb(new Rng(1), 0.1f);
        copy.Predict(x, b);
        Assert.NotEqual(a, b);
        expert.Predict(x, b);
        Numerics.BitwiseEqual(a, b, "the original after perturbing its clone");
    }
}
