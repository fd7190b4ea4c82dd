using MoeSharp.Data;
using MoeSharp.IO;
using MoeSharp.Models;
using MoeSharp.Tests.Cli;
using MoeSharp.Training;

namespace MoeSharp.Tests.IO;

/// <summary>The library's <see cref="LmRun"/> leaves the run folder `moe train` leaves, with the same losses.</summary>
public sealed class LmRunTests(CheckpointReference reference) : IClassFixture<CheckpointReference>
{
    [Fact]
    public void ALibraryRunWritesTheCliRunFolderWithTheSameLosses()
    {
        string path = Path.Combine(reference.Folder, "library");
        var source = new DataSource { Kind = "file", Path = reference.Data };
        var data = LmData.Load(source);
        var config = new RunConfig
        {
            Model = ModelConfig.FromJson(MoeCli.TinyConfig, "tiny", validate: false) with { Vocab = data.Tokenizer.VocabSize },
            Training = new LmTrainOptions { Steps = 6, Batch = 2, Threads = 1 },
            Alphabet = new string(((CharTokenizer)data.Tokenizer).Alphabet),
            Data = source with { Sha256 = LmData.Hash(source) },
        };
        var steps = new List<int>();
        var result = LmRun.Create(path, config).Train(new LmRunOptions { SaveEvery = 2, EvalEvery = 2, EvalBatches = 1, LogEvery = 1 },
            new Recorder(r => steps.Add(r.Step)));

        Assert.Equal([1, 2, 3, 4, 5, 6], steps);
        Assert.Equal(6, result.Step);
        foreach (var f in new[] { "config.json", "model.safetensors", "optimizer.safetensors", "checkpoint.json", "metrics.jsonl", "routing.jsonl", "alerts.jsonl", "report.html" })
            Assert.True(File.Exists(Path.Combine(path, f)), $"{f} missing");
        // No expert was flagged in 6 steps: the file is there and empty, and the report says so.
        Assert.Equal("", File.ReadAllText(Path.Combine(path, "alerts.jsonl")));
        Assert.Contains("No alerts", File.ReadAllText(result.ReportPath));
        Assert.Equal(CheckpointReference.Losses(reference.Run), CheckpointReference.Losses(path));
    }

    [Fact]
    public void BadRunOptionsNameTheField()
    {
        var ex = Assert.Throws<ArgumentException>(() => new LmRunOptions { EvalBatches = 0 }.Validate());
        Assert.Contains("EvalBatches", ex.Message);
    }

    private sealed class Recorder(Action<LmStepReport> onStep) : IProgress<LmStepReport>
    {
        public void Report(LmStepReport value) => onStep(value);
    }
}
