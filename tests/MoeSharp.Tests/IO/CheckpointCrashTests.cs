using System.Text.Json;
using MoeSharp.Tests.Cli;

namespace MoeSharp.Tests.IO;

/// <summary>An uninterrupted 6-step run with a checkpoint every 2 steps: the losses every interrupted run must reproduce.</summary>
public sealed class CheckpointReference : IAsyncLifetime
{
    public string Folder { get; } = Directory.CreateTempSubdirectory("moesharp-ckpt-").FullName;
    public string Config => Path.Combine(Folder, "tiny.json");
    public string Data => Path.Combine(Folder, "data.txt");
    public string Run => Path.Combine(Folder, "reference");

    public string[] Train(string output, params string[] extra) =>
        ["train", "--data", Data, "--config", Config, "--steps", "6", "--batch", "2", "--save-every", "2", "--eval-every", "2",
         "--eval-batches", "1", "--log-every", "1", "--threads", "1", "--out", output, .. extra];

    public string[] Resume(string folder) =>
        ["train", "--resume", folder, "--steps", "6", "--save-every", "2", "--eval-every", "2", "--eval-batches", "1", "--log-every", "1", "--threads", "1"];

    public async ValueTask InitializeAsync()
    {
        File.WriteAllText(Config, MoeCli.TinyConfig);
        File.WriteAllText(Data, string.Concat(Enumerable.Range(0, 60).Select(i => $"{i} plus {i * 7 % 13} is {i + i * 7 % 13}. ")));
        var r = await MoeCli.Run(Train(Run));
        Assert.True(r.ExitCode == 0, r.Stderr);
    }

    public ValueTask DisposeAsync()
    {
        Directory.Delete(Folder, recursive: true);
        return ValueTask.CompletedTask;
    }

    /// <summary>"step:loss:val_loss" per line of metrics.jsonl, the raw JSON numbers (so equality is bitwise).</summary>
    public static string[] Losses(string run) => File.ReadAllLines(Path.Combine(run, "metrics.jsonl"))
        .Select(l => JsonDocument.Parse(l).RootElement)
        .Select(e => $"{e.GetProperty("step")}:{e.GetProperty("loss").GetRawText()}:{e.GetProperty("val_loss").GetRawText()}").ToArray();
}

/// <summary>
/// A save killed at each of its write points (MOE_FAILPOINT, in a child process) leaves a folder that resumes to
/// exactly the uninterrupted run's losses; a weights/optimizer pair from different steps is refused.
/// </summary>
public sealed class CheckpointCrashTests(CheckpointReference reference) : IClassFixture<CheckpointReference>
{
    /// <summary>Each failpoint of the save at step 4, and the step the folder must resume from (before the commit: the step-2 checkpoint).</summary>
    public static TheoryData<string, int> WritePoints() => new()
    {
        { "checkpoint.model-written", 2 },
        { "checkpoint.optimizer-written", 2 },
        { "checkpoint.committed", 4 },
        { "checkpoint.model-renamed", 4 },
    };

    [Theory]
    [MemberData(nameof(WritePoints))]
    public async Task ACrashAtAnyWritePointResumesToTheSameLosses(string point, int resumesAt)
    {
        string run = Path.Combine(reference.Folder, point);
        var crashed = await MoeCli.Run(new Dictionary<string, string> { ["MOE_FAILPOINT"] = $"{point}@4" }, reference.Train(run));
        Assert.True(crashed.ExitCode is not 0 and not 2, $"exit code {crashed.ExitCode}: the failpoint did not fire. {crashed.Stderr}");
        Assert.Contains($"stopped at {point}, step 4", crashed.Stderr);

        var resumed = await MoeCli.Run(reference.Resume(run));
        Assert.True(resumed.ExitCode == 0, resumed.Stderr);
        Assert.Contains($"resuming at step {resumesAt}", resumed.Stdout);
        Assert.Equal(CheckpointReference.Losses(reference.Run), CheckpointReference.Losses(run));
        var leftovers = Directory.GetFiles(run).Where(f => f.EndsWith(".tmp") || f.EndsWith(".pending")).ToArray();
        Assert.True(leftovers.Length == 0, $"left behind: {string.Join(", ", leftovers)}");
    }

    [Fact]
    public async Task AMismatchedPairIsRefusedInOneLine()
    {
        string run = Path.Combine(reference.Folder, "mismatched");
        var first = await MoeCli.Run(reference.Train(run, "--stop-at", "2"));
        Assert.True(first.ExitCode == 0, first.Stderr);
        string step2 = Path.Combine(reference.Folder, "step2.safetensors");
        File.Copy(Path.Combine(run, "model.safetensors"), step2);
        var second = await MoeCli.Run([.. reference.Resume(run), "--stop-at", "4"]);
        Assert.True(second.ExitCode == 0, second.Stderr);
        // Step-2 weights beside step-4 optimizer state: what a kill between two plain renames used to leave.
        File.Copy(step2, Path.Combine(run, "model.safetensors"), overwrite: true);
        MoeCli.UserError(await MoeCli.Run(reference.Resume(run)), "model.safetensors", "checkpoint.json", "(step 4)", "not from the same checkpoint");
    }
}
