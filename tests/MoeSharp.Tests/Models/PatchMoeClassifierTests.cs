using MoeSharp.Layers;
using MoeSharp.Models;
using MoeSharp.Routing;
using MoeSharp.Tensors;
using MoeSharp.Tests.Autograd;
using MoeSharp.Training;

namespace MoeSharp.Tests.Models;

public class PatchMoeClassifierTests
{
    /// <summary>4×4 images in 2×2 patches: 4 tokens per image.</summary>
    private static readonly PatchMoeOptions Small = new()
    {
        Height = 4, Width = 4, PatchSize = 2, Dim = 6, Classes = 4, Seed = 3,
        Moe = new MoeOptions { Experts = 3, TopK = 2, ExpertHidden = 5, Router = RouterKind.SoftmaxTopK, LoadBalanceCoef = 0.1f, ZLossCoef = 0.01f },
    };

    [Fact]
    public void PatchesAreCutRowMajorOverTheGrid()
    {
        var image = Enumerable.Range(0, 16).Select(i => (float)i).ToArray(); // one 4×4 image, pixel value = index
        var patches = PatchMoeClassifier.Patchify(image, 1, 4, 4, 2);
        Assert.Equal([0f, 1, 4, 5, 2, 3, 6, 7, 8, 9, 12, 13, 10, 11, 14, 15], patches);
    }

    [Fact]
    public void LossGradientsMatchFiniteDifferences()
    {
        var model = new PatchMoeClassifier(Small);
        var images = Numerics.RandomTensor(5, 1, 3, 16);
        int[] labels = [0, 3, 2];
        var parameters = model.Arena.Parameters.Select(p => p.Value).ToArray();
        model.Arena.ZeroGrad();
        GradCheck.Run("patch MoE", (t, inputs) => PatchMoeTrainer.Loss(t, model, images, labels, out float unused), parameters, eps: 1e-2f, rtol: 2e-3f, atol: 2e-4f, samples: 12);
    }

    /// <summary>Class k lights up quadrant k; each quadrant is one patch, so routing by position can solve it.</summary>
    private static (Tensor Images, int[] Labels) Quadrants(int n, ulong seed)
    {
        var rng = new Rng(seed);
        var images = new Tensor(n, 16);
        var labels = new int[n];
        for (int i = 0; i < n; i++)
        {
            labels[i] = rng.NextInt(4);
            int top = labels[i] / 2 * 2, left = labels[i] % 2 * 2;
            for (int p = 0; p < 16; p++) images[i * 16 + p] = 0.3f * rng.NextNormal();
            for (int r = 0; r < 2; r++)
                for (int c = 0; c < 2; c++) images[i * 16 + (top + r) * 4 + left + c] += 2;
        }
        return (images, labels);
    }

    [Fact]
    public void LearnsWhichQuadrantIsLitAndCountsEveryRoutedPatch()
    {
        var model = new PatchMoeClassifier(Small with { Dim = 8 });
        var (x, y) = Quadrants(400, 1);
        var losses = PatchMoeTrainer.Train(model, x, y, new PatchMoeTrainOptions { Epochs = 15, BatchSize = 32, LearningRate = 1e-2f });
        Assert.True(losses[^1] < 0.25 * losses[0], $"cross-entropy {losses[0]:F3} → {losses[^1]:F3}");
        var (xt, yt) = Quadrants(200, 2);
        var predicted = model.Predict(xt);
        double accuracy = predicted.Zip(yt, (a, b) => a == b ? 1.0 : 0).Average();
        Assert.True(accuracy > 0.95, $"held-out accuracy {accuracy:P1}");
        var counts = model.PositionExpertCounts(xt);
        for (int position = 0; position < 4; position++)
        {
            long routed = 0;
            for (int e = 0; e < 3; e++) routed += counts[position, e];
            Assert.Equal(200 * 2, routed); // every patch of every image, top-2
        }
    }

    [Fact]
    public void BadSizesAndLabelsNameTheField()
    {
        Assert.Contains("PatchSize", Assert.Throws<ArgumentException>(() => new PatchMoeClassifier(Small with { PatchSize = 3 })).Message);
        var model = new PatchMoeClassifier(Small);
        Assert.Contains("expected [N, 16]", Assert.Throws<ArgumentException>(() => model.Predict(new Tensor(2, 15))).Message);
        var error = Assert.Throws<ArgumentException>(() => PatchMoeTrainer.Train(model, new Tensor(2, 16), [0, 4], new PatchMoeTrainOptions { Epochs = 1 }));
        Assert.Contains("Label 4 of image 1", error.Message);
    }
}
