using System.CommandLine;
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
        Assert.Equal(LmTrainOptions.Default.Batch, Default<int>(bench, "--batch"));
        Assert.Equal(LmTrainOptions.Default.Threads, Default<int>(bench, "--threads"));
    }
}
