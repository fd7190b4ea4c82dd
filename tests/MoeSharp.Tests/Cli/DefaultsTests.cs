using System.CommandLine;
using MoeSharp.Classic.IO;
using MoeSharp.Cli.Commands;
using MoeSharp.Diagnostics;
using MoeSharp.IO;
using MoeSharp.Models;
using MoeSharp.Training;

namespace MoeSharp.Tests.Cli;

/// <summary>Each command's option defaults are the library's defaults, so `moe train` and a library run agree.</summary>
public class DefaultsTests
{
    private static T Default<T>(Command command, string option) => command.Parse([]).GetValue<T>(option)!;

    [Fact]
    public void TrainDefaultsAreTheLibraryDefaults()
    {
        var train = TrainCommand.Create();
        var t = LmTrainOptions.Default;
        var r = LmRunOptions.Default;
        Assert.Equal(t.Steps, Default<int>(train, "--steps"));
        Assert.Equal(t.Batch, Default<int>(train, "--batch"));
        Assert.Equal(t.LearningRate, Default<float>(train, "--lr"));
        Assert.Equal(t.Seed, Default<ulong>(train, "--seed"));
        Assert.Equal(t.Threads, Default<int>(train, "--threads"));
        Assert.Equal(r.EvalEvery, Default<int>(train, "--eval-every"));
        Assert.Equal(r.EvalBatches, Default<int>(train, "--eval-batches"));
        Assert.Equal(r.LogEvery, Default<int>(train, "--log-every"));
        Assert.Equal(r.SaveEvery, Default<int>(train, "--save-every"));
        Assert.Equal(r.StopAt, Default<int?>(train, "--stop-at"));
        // The CLI does not set the floor of the schedule: the library's rule (a tenth of the peak) applies.
        Assert.Equal(t.LearningRate / 10, t.MinLearningRate);
    }

    [Fact]
    public void EvalGenerateAndBenchDefaultsAreTheLibraryDefaults()
    {
        var eval = EvalCommand.Create();
        Assert.Equal(LmEvalOptions.Default.MaxTokens, Default<int>(eval, "--max-tokens"));
        Assert.Equal(LmEvalOptions.Default.Threads, Default<int>(eval, "--threads"));
        var generate = GenerateCommand.Create();
        var s = SamplingOptions.Default;
        Assert.Equal(s.Temperature, Default<float>(generate, "--temperature"));
        Assert.Equal(s.TopK, Default<int>(generate, "--top-k"));
        Assert.Equal(s.TopP, Default<float>(generate, "--top-p"));
        Assert.Equal(s.Seed, Default<ulong>(generate, "--seed"));
        Assert.Equal(s.Threads, Default<int>(generate, "--threads"));
        var bench = BenchCommand.Create();
        var b = SpeedBenchOptions.Default;
        Assert.Equal(b.Batch, Default<int>(bench, "--batch"));
        Assert.Equal(b.Steps, Default<int>(bench, "--steps"));
        Assert.Equal(b.Tokens, Default<int>(bench, "--tokens"));
        Assert.Equal(b.Threads, Default<int>(bench, "--threads"));
        Assert.Equal(LmTrainOptions.Default.Batch, b.Batch);
    }

    [Fact]
    public void FitDefaultsAreTheLibraryDefaults()
    {
        var fit = FitCommand.Create();
        var f = MixtureFitOptions.Default;
        Assert.Equal(f.Experts, Default<string>(fit, "--experts"));
        Assert.Equal(f.Phases, FitCommand.ParsePhases(Default<string>(fit, "--phases")));
        Assert.Equal(f.Partition, Default<string>(fit, "--partition"));
        Assert.Equal(f.GateHoldout, Default<float>(fit, "--gate-holdout"));
        Assert.Equal(f.Groups, Default<int>(fit, "--groups"));
        Assert.Equal(f.TopK, Default<int>(fit, "--top-k"));
        Assert.Equal(f.GateHidden, Default<int>(fit, "--gate-hidden"));
        Assert.Equal(f.Hidden, Default<int>(fit, "--hidden"));
        Assert.Equal(f.ExpertEpochs, Default<int>(fit, "--expert-epochs"));
        Assert.Equal(f.TreeDepth, Default<int>(fit, "--tree-depth"));
        Assert.Equal(f.Ridge, Default<float?>(fit, "--ridge"));
        Assert.Equal(f.Epochs, Default<int>(fit, "--epochs"));
        Assert.Equal(f.EmIterations, Default<int>(fit, "--em-iterations"));
        Assert.Equal(f.LearningRate, Default<float>(fit, "--lr"));
        Assert.Equal(f.Entropy, Default<float>(fit, "--entropy"));
        Assert.Equal(f.Balance, Default<float>(fit, "--balance"));
        Assert.Equal(f.TestFraction, Default<float>(fit, "--test-fraction"));
        Assert.Equal(f.Folds, Default<int>(fit, "--cv"));
        Assert.Equal(f.Seed, Default<ulong>(fit, "--seed"));
        Assert.Equal(f.Threads, Default<int>(fit, "--threads"));
    }
}
