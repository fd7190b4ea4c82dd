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
        AssertDefaults(train, (t.Steps, "--steps"), (t.Batch, "--batch"), (t.LearningRate, "--lr"), (t.Seed, "--seed"), (t.Threads, "--threads"), (r.EvalEvery, "--eval-every"), (r.EvalBatches, "--eval-batches"), (r.LogEvery, "--log-every"), (r.SaveEvery, "--save-every"), (r.StopAt, "--stop-at"));
        // The CLI does not set the floor of the schedule: the library's rule (a tenth of the peak) applies.
        Assert.Equal(t.LearningRate / 10, t.MinLearningRate);
    }

    [Fact]
    public void EvalGenerateAndBenchDefaultsAreTheLibraryDefaults()
    {
        var eval = EvalCommand.Create();
        AssertDefaults(eval, (LmEvalOptions.Default.MaxTokens, "--max-tokens"), (LmEvalOptions.Default.Threads, "--threads"));
        var generate = GenerateCommand.Create();
        var s = SamplingOptions.Default;
        AssertDefaults(generate, (s.Temperature, "--temperature"), (s.TopK, "--top-k"), (s.TopP, "--top-p"), (s.Seed, "--seed"), (s.Threads, "--threads"));
        var bench = BenchCommand.Create();
        var b = SpeedBenchOptions.Default;
        AssertDefaults(bench, (b.Batch, "--batch"), (b.Steps, "--steps"), (b.Tokens, "--tokens"), (b.Threads, "--threads"));
        Assert.Equal(LmTrainOptions.Default.Batch, b.Batch);
    }

    [Fact]
    public void FitDefaultsAreTheLibraryDefaults()
    {
        var fit = FitCommand.Create();
        var f = MixtureFitOptions.Default;
        Assert.Equal(f.Phases, FitCommand.ParsePhases(Default<string>(fit, "--phases")));
        AssertDefaults(fit, (f.Experts, "--experts"), (f.Partition, "--partition"), (f.GateHoldout, "--gate-holdout"), (f.Groups, "--groups"),
            (f.TopK, "--top-k"), (f.GateHidden, "--gate-hidden"), (f.Hidden, "--hidden"), (f.ExpertEpochs, "--expert-epochs"),
            (f.TreeDepth, "--tree-depth"), (f.Ridge, "--ridge"), (f.Epochs, "--epochs"), (f.EmIterations, "--em-iterations"),
            (f.LearningRate, "--lr"), (f.Entropy, "--entropy"), (f.Balance, "--balance"), (f.TestFraction, "--test-fraction"),
            (f.Folds, "--cv"), (f.Seed, "--seed"), (f.Threads, "--threads"));
    }

    /// <summary>Each option's default, parsed from an empty command line, equals the library value beside it.</summary>
    private static void AssertDefaults(Command command, params (object? Library, string Option)[] expected)
    {
        var parsed = command.Parse([]);
        foreach (var (library, option) in expected)
            Assert.True(Equals(library, parsed.GetValue<object?>(option)), $"{command.Name} {option}: the library's default is {library}, the option's {parsed.GetValue<object?>(option)}.");
    }
}
