using System.CommandLine;
using MoeSharp.Data;
using MoeSharp.IO;
using MoeSharp.Models;
using MoeSharp.Routing;
using MoeSharp.Training;
using Spectre.Console;

namespace MoeSharp.Cli.Commands;

/// <summary>
/// <c>moe train</c>: trains a language model (the built-in multi-domain corpus by default) into a run folder, with
/// a live progress bar on a terminal and plain periodic lines otherwise.
/// </summary>
internal static class TrainCommand
{
    public static Command Create()
    {
        var data = new Option<FileInfo?>("--data") { Description = "UTF-8 text file (char-level; last 10% is validation). Default: the built-in multi-domain corpus." };
        var bpeVocab = new Option<FileInfo?>("--bpe-vocab") { Description = "With --data: tokenize by BPE with this vocab.json (Microsoft.ML.Tokenizers)." };
        var bpeMerges = new Option<FileInfo?>("--bpe-merges") { Description = "With --bpe-vocab: the merges.txt." };
        var preset = new Option<string>("--preset") { Description = $"Model recipe: {string.Join(", ", Presets.Names)}.", DefaultValueFactory = _ => "mixtral" };
        var config = new Option<FileInfo?>("--config") { Description = "Model config JSON (snake_case ModelConfig); replaces the preset. vocab is taken from the data." };
        var steps = CliOptions.Int("--steps", LmTrainOptions.Default.Steps, 1, "Total optimisation steps (the schedule's length).");
        var batch = CliOptions.Int("--batch", LmTrainOptions.Default.Batch, 1, "Sequences per step.");
        var lr = CliOptions.Positive("--lr", LmTrainOptions.Default.LearningRate, "Peak learning rate.");
        var seed = CliOptions.Seed(LmTrainOptions.Default.Seed);
        var threads = CliOptions.Threads(LmTrainOptions.Default.Threads, "Worker threads (default: all cores).");
        var output = new Option<DirectoryInfo?>("--out") { Description = "Run folder to create (default: runs/<preset>-<time>)." };
        var resume = new Option<DirectoryInfo?>("--resume") { Description = "Continue the run in this folder from its last checkpoint, up to --steps." };
        var evalEvery = CliOptions.Int("--eval-every", LmRunOptions.Default.EvalEvery, 1, "Validate every N steps.");
        var evalBatches = CliOptions.Int("--eval-batches", LmRunOptions.Default.EvalBatches, 1);
        var logEvery = CliOptions.Int("--log-every", LmRunOptions.Default.LogEvery, 1, "Write metrics and routing every N steps.");
        var saveEvery = CliOptions.Int("--save-every", LmRunOptions.Default.SaveEvery, 0, "Checkpoint every N steps (0: only at the end).");
        var stopAt = CliOptions.Optional("--stop-at", 1, int.MaxValue, description: "Stop (and checkpoint) at this step, keeping the schedule of --steps; --resume continues.");
        var command = new Command("train", "Train a language model into a run folder.")
        {
            data, bpeVocab, bpeMerges, preset, config, steps, batch, lr, seed, threads, output, resume, evalEvery, evalBatches, logEvery, saveEvery, stopAt,
        };
        command.SetAction(p =>
        {
            int workers = p.GetValue(threads);
            LmRun run;
            if (p.GetValue(resume) is { } resumeDir)
            {
                CheckResumeCompatible(p, resumeDir.FullName, preset, config, batch);
                run = LmRun.Resume(resumeDir.FullName, t => t with { Steps = p.GetValue(steps), Threads = workers });
            }
            else
            {
                var file = p.GetValue(data);
                var vocab = p.GetValue(bpeVocab);
                var merges = p.GetValue(bpeMerges);
                if (file is null && (vocab is not null || merges is not null)) throw new ArgumentException("--bpe-vocab and --bpe-merges tokenize a --data file; the built-in corpus is char-level.");
                var source = file is null ? new DataSource()
                    : new DataSource { Kind = "file", Path = file.FullName, BpeVocab = vocab?.FullName, BpeMerges = merges?.FullName };
                var probe = LmData.Load(source);
                source = source with { Sha256 = LmData.Hash(source) };
                var model = ModelFor(p.GetValue(preset)!, p.GetValue(config), probe.Tokenizer.VocabSize);
                var training = new LmTrainOptions { Steps = p.GetValue(steps), Batch = p.GetValue(batch), LearningRate = p.GetValue(lr), Seed = p.GetValue(seed), Threads = workers };
                training.Validate();
                var runConfig = new RunConfig { Model = model, Training = training, Alphabet = probe.Tokenizer is CharTokenizer c ? new string(c.Alphabet) : "", Data = source };
                run = LmRun.Create(p.GetValue(output)?.FullName ?? Path.Combine("runs", $"{model.Preset}-{DateTime.Now:yyyyMMdd-HHmmss}"), runConfig);
            }
            var options = new LmRunOptions
            {
                EvalEvery = p.GetValue(evalEvery), EvalBatches = p.GetValue(evalBatches), LogEvery = p.GetValue(logEvery),
                SaveEvery = p.GetValue(saveEvery), StopAt = p.GetValue(stopAt),
            };
            return Train(run, options);
        });
        return command;
    }

    private static ModelConfig ModelFor(string preset, FileInfo? config, int vocab)
    {
        if (config is null) return Presets.Get(preset, vocab);
        if (!config.Exists) throw new FileNotFoundException($"Config file '{config.FullName}' does not exist.");
        // The vocabulary comes from the data, so validation waits until it is filled in.
        var parsed = ModelConfig.FromJson(File.ReadAllText(config.FullName), config.FullName, validate: false) with { Vocab = vocab };
        try
        {
            parsed.Validate();
        }
        catch (ArgumentException ex)
        {
            throw new ArgumentException($"{config.FullName}: {ex.Message}", ex.ParamName, ex);
        }
        return parsed;
    }

    /// <summary>A resumed run keeps its architecture and batch; asking for another is an error, not a silent override.</summary>
    private static void CheckResumeCompatible(ParseResult p, string folder, Option<string> preset, Option<FileInfo?> config, Option<int> batch)
    {
        var run = new RunFolder(folder).ReadConfig();
        var requested = p.GetResult(config) is not null && p.GetValue(config) is { } file
            ? ModelFor("", file, run.Model.Vocab)
            : p.GetResult(preset) is { Implicit: false } ? Presets.Get(p.GetValue(preset)!, run.Model.Vocab) : null;
        if (requested is not null && requested.ToJson() != run.Model.ToJson())
            throw new ArgumentException($"--resume points to a run of a different architecture (preset '{run.Model.Preset}', d_model {run.Model.DModel}, {run.Model.Layers} layers, {(run.Model.Moe is null ? "dense" : $"{run.Model.Moe.Experts} experts")}) than the one requested ('{requested.Preset}', d_model {requested.DModel}, {requested.Layers} layers, {(requested.Moe is null ? "dense" : $"{requested.Moe.Experts} experts")}).");
        if (p.GetResult(batch) is { Implicit: false } && p.GetValue(batch) != run.Training.Batch)
            throw new ArgumentException($"--resume continues with the run's batch of {run.Training.Batch}; --batch {p.GetValue(batch)} would change the data order.");
    }

    private static int Train(LmRun run, LmRunOptions options)
    {
        options.Validate();
        var config = run.Config;
        int end = Math.Min(config.Training.Steps, options.StopAt ?? int.MaxValue);
        Console.WriteLine($"run {run.Folder.Path}: preset {config.Model.Preset}, {run.Model.Arena.Length:N0} parameters ({run.Model.ActiveParameters:N0} active), vocab {config.Model.Vocab}, threads {config.Training.Threads}" +
            (run.Resumed ? $", resuming at step {run.Trainer.Step}" : ""));
        LmRunResult result;
        if (!Console.IsOutputRedirected && AnsiConsole.Profile.Capabilities.Interactive)
        {
            result = AnsiConsole.Progress().AutoClear(false).HideCompleted(false)
                .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
                .Start(ctx =>
                {
                    var task = ctx.AddTask("training", maxValue: end);
                    task.Value = run.Trainer.Step;
                    return run.Train(options, new Lines(options, live: line =>
                    {
                        task.Description = Markup.Escape(line);
                        task.Value = run.Trainer.Step;
                    }, AnsiConsole.WriteLine));
                });
        }
        else
        {
            result = run.Train(options, new Lines(options, live: null, Console.WriteLine));
        }
        foreach (var layer in result.Domains ?? []) Console.WriteLine($"{layer.Layer}: I(domain; expert) = {layer.MutualInformation:F3} bits");
        Console.WriteLine($"saved {run.Folder.Path} at step {result.Step}; report {result.ReportPath}");
        return 0;
    }

    /// <summary>
    /// Renders each step's report: the live line on a terminal, and printed lines for evaluations, alerts and (without
    /// a terminal) every fifth log interval. Called synchronously on the training thread.
    /// </summary>
    private sealed class Lines(LmRunOptions options, Action<string>? live, Action<string> print) : IProgress<LmStepReport>
    {
        public void Report(LmStepReport r)
        {
            foreach (var alert in r.Alerts) print($"alert at step {alert.Step}: {alert.Message}");
            string load = Sparkline(r.Routing);
            string line = $"step {r.Step}/{r.End} loss {r.Loss:F3} {r.TokensPerSecond / 1000:F1}k tok/s eta {r.Remaining:mm\\:ss}" + (load.Length > 0 ? $" load {load}" : "");
            live?.Invoke(line);
            if (r.ValLoss is { } val)
                print($"step {r.Step}/{r.End} train {r.Loss:F4} val {val:F4} lr {r.LearningRate:E2} {r.TokensPerSecond:F0} tok/s {r.Elapsed.TotalSeconds:F0}s" + (load.Length > 0 ? $" load {load}" : ""));
            else if (live is null && r.Step % (options.LogEvery * 5) == 0) print(line);
        }

        /// <summary>The first MoE layer's expert load as block characters, scaled to the busiest expert.</summary>
        private static string Sparkline(IReadOnlyList<RoutingStats> routing)
        {
            if (routing.Count == 0) return "";
            const string bars = "▁▂▃▄▅▆▇█";
            var load = routing[0].TokensPerExpert;
            int max = Math.Max(1, load.Max());
            return new string(load.Select(c => bars[Math.Min(bars.Length - 1, c * bars.Length / (max + 1))]).ToArray());
        }
    }
}
