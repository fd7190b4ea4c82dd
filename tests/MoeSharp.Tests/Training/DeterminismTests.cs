using MoeSharp.Autograd;
using MoeSharp.Data;
using MoeSharp.Models;
using MoeSharp.Nn;
using MoeSharp.Training;

namespace MoeSharp.Tests.Training;

public class DeterminismTests
{
    private static float[] TenLosses(int threads, ulong seed)
    {
        var tokens = Enumerable.Range(0, 3000).Select(i => (i * 7 + i / 13) % 29).ToArray();
        var model = new MoeTransformer(new ModelConfig { Vocab = 29, DModel = 32, Layers = 2, Heads = 4, DFF = 64, Context = 16 }, seed);
        var trainer = new LmTrainer(model, new TextDataset(tokens), new LmTrainOptions { Steps = 10, Batch = 4, WarmupSteps = 2, Seed = seed, Threads = threads });
        return Enumerable.Range(0, 10).Select(_ => trainer.TrainStep().Loss).ToArray();
    }

    [Fact]
    public void SameSeedAndThreadsGiveIdenticalLosses() => Numerics.BitwiseEqual(TenLosses(2, 1), TenLosses(2, 1), "losses");

    [Fact]
    public void OneThreadEqualsTwoThreadsBitwise() => Numerics.BitwiseEqual(TenLosses(1, 3), TenLosses(2, 3), "losses");

    [Fact]
    public void LossFallsOverTenSteps()
    {
        var losses = TenLosses(2, 4);
        Assert.True(losses[^1] < losses[0] - 0.1f, $"loss went from {losses[0]} to {losses[^1]}");
    }
}

public class NonFiniteTests
{
    [Fact]
    public void ANaNWeightIsReportedWithItsLayer()
    {
        var tokens = Enumerable.Range(0, 3000).Select(i => i % 29).ToArray();
        var model = new MoeTransformer(Presets.Get("mixtral", 29) with { DModel = 16, Heads = 2, Layers = 2, DFF = 32, Context = 16 }, 1);
        model.Arena["model.layers.1.block_sparse_moe.experts.w2"].Value[5] = float.NaN;
        var trainer = new LmTrainer(model, new TextDataset(tokens), new LmTrainOptions { Steps = 3, Batch = 2 });
        var ex = Assert.Throws<NonFiniteException>(() => trainer.TrainStep());
        Assert.Contains("model.layers.1.block_sparse_moe", ex.Message);
        Assert.Contains("ExpertFfn", ex.Message);
    }
}
