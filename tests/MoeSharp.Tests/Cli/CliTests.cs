using System.Text.Json;
using MoeSharp.Tests.IO;

namespace MoeSharp.Tests.Cli;

/// <summary>A tiny run trained once for the whole class: train → save → generate → eval → inspect.</summary>
public sealed class TinyRun : IAsyncLifetime
{
    public string Folder { get; } = Directory.CreateTempSubdirectory("moesharp-cli-").FullName;
    public string Run => Path.Combine(Folder, "run");
    public string Config => Path.Combine(Folder, "tiny.json");
    public MoeCli.Result Train { get; private set; } = null!;

    public async ValueTask InitializeAsync()
    {
        File.WriteAllText(Config, MoeCli.TinyConfig);
        Train = await MoeCli.Run("train", "--config", Config, "--steps", "8", "--batch", "2", "--eval-every", "4", "--eval-batches", "1", "--log-every", "1", "--out", Run);
    }

    public ValueTask DisposeAsync()
    {
        Directory.Delete(Folder, recursive: true);
        return ValueTask.CompletedTask;
    }
}

public class CliTests(TinyRun tiny) : TempFolderTest, IClassFixture<TinyRun>
{
    [Fact]
    public void TrainWritesACompleteRunFolder()
    {
        Assert.True(tiny.Train.ExitCode == 0, tiny.Train.Stderr + tiny.Train.Stdout);
        foreach (var f in new[] { "config.json", "model.safetensors", "optimizer.safetensors", "checkpoint.json", "metrics.jsonl", "routing.jsonl", "alerts.jsonl", "domains.json", "report.html" })
            Assert.True(File.Exists(Path.Combine(tiny.Run, f)), $"{f} missing");
        var metrics = File.ReadAllLines(Path.Combine(tiny.Run, "metrics.jsonl"));
        Assert.Equal(8, metrics.Length);
        using var last = JsonDocument.Parse(metrics[^1]);
        Assert.True(last.RootElement.GetProperty("val_loss").GetDouble() > 0);
        Assert.True(last.RootElement.GetProperty("aux").GetProperty("load_balance").GetDouble() > 0);
        Assert.Contains("saved", tiny.Train.Stdout);
        // The checkpoint reads like a Mixtral checkpoint.
        using var weights = MoeSharp.IO.SafetensorsFile.Open(Path.Combine(tiny.Run, "model.safetensors"));
        Assert.True(weights.Contains("model.layers.1.block_sparse_moe.experts.3.w2.weight"));
        Assert.True(weights.Contains("model.layers.0.block_sparse_moe.gate.weight"));
    }

    [Fact]
    public async Task GenerateIsDeterministicWithASeed()
    {
        var a = await MoeCli.Run("generate", "--model", tiny.Run, "--prompt", "12+3=", "--max-tokens", "8", "--seed", "7", "--print-ids");
        var b = await MoeCli.Run("generate", "--model", tiny.Run, "--prompt", "12+3=", "--max-tokens", "8", "--seed", "7", "--print-ids");
        Assert.Equal(0, a.ExitCode);
        Assert.Equal(a.Stdout, b.Stdout);
        Assert.Equal(8, a.Stdout.Trim().Split(',').Length);
        var routing = await MoeCli.Run("generate", "--model", tiny.Run, "--prompt-ids", "3,14,15", "--max-tokens", "2", "--temperature", "0", "--show-routing");
        Assert.Equal(0, routing.ExitCode);
        Assert.Contains("L1:[", routing.Stdout);
    }

    [Fact]
    public async Task EvalReportsPerplexityAndTheDomainTable()
    {
        var r = await MoeCli.Run("eval", "--model", tiny.Run, "--max-tokens", "2000");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Contains("perplexity", r.Stdout);
        Assert.Contains("I(domain; expert)", r.Stdout);
        Assert.Contains("arithmetic", r.Stdout);
    }

    [Fact]
    public async Task ResumeContinuesExactly()
    {
        string split = Path.Combine(Folder, "split");
        var first = await MoeCli.Run("train", "--config", tiny.Config, "--steps", "8", "--batch", "2", "--eval-every", "4", "--eval-batches", "1", "--log-every", "1", "--out", split, "--stop-at", "4");
        Assert.True(first.ExitCode == 0, first.Stderr);
        var second = await MoeCli.Run("train", "--resume", split, "--steps", "8", "--eval-every", "4", "--eval-batches", "1", "--log-every", "1");
        Assert.True(second.ExitCode == 0, second.Stderr);
        static string[] Losses(string run) => File.ReadAllLines(Path.Combine(run, "metrics.jsonl"))
            .Select(l => JsonDocument.Parse(l).RootElement).Select(e => $"{e.GetProperty("step")}:{e.GetProperty("loss").GetRawText()}:{e.GetProperty("val_loss").GetRawText()}").ToArray();
        Assert.Equal(Losses(tiny.Run), Losses(split));
    }

    [Fact]
    public async Task BenchMeasuresTrainingGenerationAndGemm()
    {
        var r = await MoeCli.Run("bench", "--model", tiny.Run, "--steps", "2", "--tokens", "4", "--batch", "2", "--threads", "1");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Contains("4 experts, top-2", r.Stdout);
        Assert.Matches(@"train: +[0-9,]+ tok/s", r.Stdout);
        Assert.Matches(@"generate: +[0-9,]+ tok/s", r.Stdout);
        Assert.Matches(@"gemm: +[0-9.]+ GFLOP/s", r.Stdout);
    }

    // ---- bad input: one line, exit code 2, no stack trace ----

    [Fact]
    public async Task BenchWithoutSteps() =>
        MoeCli.UserError(await MoeCli.Run("bench", "--preset", "dense", "--steps", "0"), "--steps", "positive");

    [Fact]
    public async Task ResumeAfterTheDataFileChanged()
    {
        string data = Path.Combine(Folder, "resume-data.txt");
        File.WriteAllText(data, string.Concat(Enumerable.Repeat("the quick brown fox jumps over the lazy dog. ", 20)));
        string run = Path.Combine(Folder, "data-run");
        var first = await MoeCli.Run("train", "--data", data, "--config", tiny.Config, "--steps", "4", "--batch", "2", "--eval-every", "2", "--eval-batches", "1", "--out", run, "--stop-at", "2");
        Assert.True(first.ExitCode == 0, first.Stderr);
        File.AppendAllText(data, "a new line.\n");
        MoeCli.UserError(await MoeCli.Run("train", "--resume", run, "--steps", "4"), "resume-data.txt", "changed since the run started");
    }

    [Fact]
    public async Task MissingDataFile() =>
        MoeCli.UserError(await MoeCli.Run("train", "--data", Path.Combine(Folder, "nope.txt")), "nope.txt", "does not exist");

    [Fact]
    public async Task EmptyDataFile() =>
        MoeCli.UserError(await MoeCli.Run("train", "--data", Write("empty.txt", [])), "empty.txt", "empty");

    [Fact]
    public async Task UnknownPreset() =>
        MoeCli.UserError(await MoeCli.Run("train", "--preset", "gigantic", "--out", Path.Combine(Folder, "x")), "gigantic", "mixtral");

    [Fact]
    public async Task InvalidConfigValue()
    {
        string config = Path.Combine(Folder, "bad.json");
        File.WriteAllText(config, MoeCli.TinyConfig.Replace("\"layers\": 2", "\"layers\": 0"));
        MoeCli.UserError(await MoeCli.Run("train", "--config", config, "--out", Path.Combine(Folder, "x")), "bad.json", "layers");
    }

    [Fact]
    public async Task PromptOutsideTheVocabulary() =>
        MoeCli.UserError(await MoeCli.Run("generate", "--model", tiny.Run, "--prompt", "héllo"), "'é'", "vocabulary");

    [Fact]
    public async Task ResumeWithAnotherArchitecture() =>
        MoeCli.UserError(await MoeCli.Run("train", "--resume", tiny.Run, "--preset", "dense", "--steps", "9"), "different architecture", "dense");

    public static TheoryData<string, string> Corruptions() => new()
    {
        { "truncated", "header" },
        { "header-longer-than-file", "header" },
        { "overlapping", "overlap" },
        { "unknown-dtype", "Q9" },
        { "shape-size-mismatch", "bytes" },
    };

    [Theory]
    [MemberData(nameof(Corruptions))]
    public async Task CorruptedCheckpoint(string kind, string fragment)
    {
        string run = Path.Combine(Folder, kind);
        Directory.CreateDirectory(run);
        foreach (var f in Directory.GetFiles(tiny.Run)) File.Copy(f, Path.Combine(run, Path.GetFileName(f)));
        string model = Path.Combine(run, "model.safetensors");
        byte[] bytes = kind switch
        {
            "truncated" => File.ReadAllBytes(model)[..5],
            "header-longer-than-file" => SafetensorsBytes.WithLength(1 << 20, "{}"u8),
            "overlapping" => SafetensorsBytes.Build("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}""", new byte[12]),
            "unknown-dtype" => SafetensorsBytes.Build("""{"a":{"dtype":"Q9","shape":[2],"data_offsets":[0,8]}}""", new byte[8]),
            _ => SafetensorsBytes.Build("""{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}""", new byte[8]),
        };
        File.WriteAllBytes(model, bytes);
        MoeCli.UserError(await MoeCli.Run("generate", "--model", run, "--prompt", "1", "--max-tokens", "2"), "model.safetensors", fragment);
    }
}

public class HuggingFaceCliTests : TempFolderTest
{
    /// <summary>
    /// `moe generate` on a Hugging Face Mixtral folder (config.json + model.safetensors) prints the reference
    /// implementation's greedy continuation (shared/golden/mixtral-ref/io.json) as comma-separated ids.
    /// </summary>
    [Fact]
    public async Task GreedyIdsFromAHuggingFaceFolder()
    {
        string? golden = TestPaths.Shared("golden/mixtral-ref");
        if (golden is null) Assert.Skip($"shared golden fixtures not found under {TestPaths.SharedRoot}");
        File.Copy(Path.Combine(golden, "config.json"), Path.Combine(Folder, "config.json"));
        File.Copy(Path.Combine(golden, "model.hf.safetensors"), Path.Combine(Folder, "model.safetensors"));
        using var io = JsonDocument.Parse(File.ReadAllText(Path.Combine(golden, "io.json")));
        string prompt = string.Join(",", io.RootElement.GetProperty("greedy_prompt").EnumerateArray().Select(v => v.GetInt32()));
        string want = string.Join(",", io.RootElement.GetProperty("greedy_continuation").EnumerateArray().Select(v => v.GetInt32()));
        var r = await MoeCli.Run("generate", "--model", Folder, "--prompt-ids", prompt, "--max-tokens", "8", "--temperature", "0", "--print-ids");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Equal(want, r.Stdout.Trim());
    }
}
