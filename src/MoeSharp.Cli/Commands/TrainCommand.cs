using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using MoeSharp.Data;
using MoeSharp.Diagnostics;
using MoeSharp.IO;
using MoeSharp.Kernels;
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
        var steps = CliOptions.Int("--steps", 2500, 1, "Total optimisation steps (the schedule's length).");
        var batch = CliOptions.Int("--batch", 12, 1, "Sequences per step.");
        var lr = CliOptions.Positive("--lr", 2e-3f, "Peak learning rate.");
        var seed = CliOptions.Seed(1337UL);
        var threads = CliOptions.Threads(Environment.ProcessorCount, "Worker threads (default: all cores).");
        var output = new Option<DirectoryInfo?>("--out") { Description = "Run folder to create (default: runs/<preset>-<time>)." };
        var resume = new Option<DirectoryInfo?>("--resume") { Description = "Continue the run in this folder from its last checkpoint, up to --steps." };
        var evalEvery = CliOptions.Int("--eval-every", 100, 1, "Validate every N steps.");
        var evalBatches = CliOptions.Int("--eval-batches", 20, 1);
        var logEvery = CliOptions.Int("--log-every", 10, 1, "Write metrics and routing every N steps.");
        var saveEvery = CliOptions.Int("--save-every", 0, 0, "Checkpoint every N steps (0: only at the end).");
        var stopAt = CliOptions.Optional("--stop-at", 1, int.MaxValue, description: "Stop (and checkpoint) at this step, keeping the schedule of --steps; --resume continues.");
        var command = new Command("train", "Train a language model into a run folder.")
        {
            data, bpeVocab, bpeMerges, preset, config, steps, batch, lr, seed, threads, output, resume, evalEvery, evalBatches, logEvery, saveEvery, stopAt,
        };
        command.SetAction(p =>
        {
            Workers.Threads = p.GetValue(threads);
            var resumeDir = p.GetValue(resume);
            RunFolder folder;
            RunConfig run;
            if (resumeDir is not null)
            {
                folder = new RunFolder(resumeDir.FullName);
                run = folder.ReadConfig();
                run = run with { Training = run.Training with { Steps = p.GetValue(steps) } };
                CheckResumeCompatible(p, run, preset, config, batch);
                LmData.CheckUnchanged(run.Data);
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
                var training = new LmTrainOptions { Steps = p.GetValue(steps), Batch = p.GetValue(batch), LearningRate = p.GetValue(lr), MinLearningRate = p.GetValue(lr) / 10, Seed = p.GetValue(seed) };
                training.Validate();
                run = new RunConfig { Model = model, Training = training, Alphabet = probe.Tokenizer is CharTokenizer c ? new string(c.Alphabet) : "", Data = source };
                folder = new RunFolder(p.GetValue(output)?.FullName ?? Path.Combine("runs", $"{model.Preset}-{DateTime.Now:yyyyMMdd-HHmmss}"));
                if (File.Exists(folder.ConfigPath))
                    throw new IOException($"Run folder '{folder.Path}' already holds a run; use --resume to continue it or choose another --out.");
                folder.WriteConfig(run);
            }
            return Train(folder, run, resumeDir is not null, p.GetValue(evalEvery), p.GetValue(evalBatches), p.GetValue(logEvery), p.GetValue(saveEvery), p.GetValue(stopAt));
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
    private static void CheckResumeCompatible(ParseResult p, RunConfig run, Option<string> preset, Option<FileInfo?> config, Option<int> batch)
    {
        var requested = p.GetResult(config) is not null && p.GetValue(config) is { } file
            ? ModelFor("", file, run.Model.Vocab)
            : p.GetResult(preset) is { Implicit: false } ? Presets.Get(p.GetValue(preset)!, run.Model.Vocab) : null;
        if (requested is not null && requested.ToJson() != run.Model.ToJson())
            throw new ArgumentException($"--resume points to a run of a different architecture (preset '{run.Model.Preset}', d_model {run.Model.DModel}, {run.Model.Layers} layers, {(run.Model.Moe is null ? "dense" : $"{run.Model.Moe.Experts} experts")}) than the one requested ('{requested.Preset}', d_model {requested.DModel}, {requested.Layers} layers, {(requested.Moe is null ? "dense" : $"{requested.Moe.Experts} experts")}).");
        if (p.GetResult(batch) is { Implicit: false } && p.GetValue(batch) != run.Training.Batch)
            throw new ArgumentException($"--resume continues with the run's batch of {run.Training.Batch}; --batch {p.GetValue(batch)} would change the data order.");
    }

    private static int Train(RunFolder folder, RunConfig run, bool resuming, int evalEvery, int evalBatches, int logEvery, int saveEvery, int? stopAt)
    {
        var lmData = LmData.Load(run.Data, run.Alphabet);
        var model = new MoeTransformer(run.Model, run.Training.Seed);
        var trainer = new LmTrainer(model, lmData.Dataset, run.Training);
        if (resuming)
        {
            folder.LoadCheckpoint(trainer);
            folder.TruncateLogs(trainer.Step);
        }
        int end = Math.Min(run.Training.Steps, stopAt ?? int.MaxValue);
        Console.WriteLine($"run {folder.Path}: preset {run.Model.Preset}, {model.Arena.Length:N0} parameters ({model.ActiveParameters:N0} active), vocab {run.Model.Vocab}, threads {Workers.Threads}" +
            (resuming ? $", resuming at step {trainer.Step}" : ""));
        var progress = new Progress(trainer, run, end, evalEvery, evalBatches, logEvery, saveEvery, folder);
        if (!Console.IsOutputRedirected && AnsiConsole.Profile.Capabilities.Interactive)
        {
            AnsiConsole.Progress().AutoClear(false).HideCompleted(false)
                .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
                .Start(ctx =>
                {
                    var task = ctx.AddTask("training", maxValue: end);
                    task.Value = trainer.Step;
                    progress.Run(line =>
                    {
                        task.Description = Markup.Escape(line);
                        task.Value = trainer.Step;
                    }, evalLine => AnsiConsole.WriteLine(evalLine));
                });
        }
        else
        {
            progress.Run(null, Console.WriteLine);
        }
        folder.SaveCheckpoint(trainer);
        if (lmData.Validation is not null && model.MoeLayers.Count > 0)
        {
            var table = DomainRouting.Measure(model, lmData.Tokenizer, lmData.Validation);
            File.WriteAllText(folder.File("domains.json"), DomainRouting.ToJson(table));
            foreach (var layer in table) Console.WriteLine($"{layer.Layer}: I(domain; expert) = {layer.MutualInformation:F3} bits");
        }
        Console.WriteLine($"saved {folder.Path} at step {trainer.Step}; report {HtmlReport.Write(folder.Path)}");
        return 0;
    }

    /// <summary>The training loop with its logging: metrics, routing statistics, alerts, validation and checkpoints.</summary>
    private sealed class Progress(LmTrainer trainer, RunConfig run, int end, int evalEvery, int evalBatches, int logEvery, int saveEvery, RunFolder folder)
    {
        private static readonly JsonSerializerOptions Json = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

        public void Run(Action<string>? live, Action<string> print)
        {
            var clock = Stopwatch.StartNew();
            int startStep = trainer.Step, tokensPerStep = run.Training.Batch * run.Model.Context;
            double lossSum = 0;
            int lossCount = 0;
            while (trainer.Step < end)
            {
                var r = trainer.TrainStep();
                int step = trainer.Step;
                lossSum += r.Loss;
                lossCount++;
                double tokPerSec = (step - startStep) * (double)tokensPerStep / clock.Elapsed.TotalSeconds;
                var eta = TimeSpan.FromSeconds((end - step) * tokensPerStep / Math.Max(1, tokPerSec));
                string load = Sparkline(r.Routing);
                bool eval = step % Math.Max(1, evalEvery) == 0 || step == end;
                float? val = eval ? trainer.Evaluate(evalBatches) : null;
                if (step % Math.Max(1, logEvery) == 0 || eval)
                {
                    folder.Append(folder.MetricsPath, JsonSerializer.Serialize(new
                    {
                        step, loss = lossSum / lossCount, val_loss = val, lr = r.LearningRate, tokens_per_second = tokPerSec,
                        elapsed_seconds = clock.Elapsed.TotalSeconds, grad_norm = r.GradNorm, aux = r.AuxTerms,
                    }));
                    foreach (var stats in r.Routing)
                    {
                        var obj = JsonSerializer.SerializeToNode(stats, Json)!.AsObject();
                        obj.Insert(0, "step", step);
                        folder.Append(folder.RoutingPath, obj.ToJsonString());
                    }
                    lossSum = 0;
                    lossCount = 0;
                }
                foreach (var alert in r.Alerts)
                {
                    folder.Append(folder.AlertsPath, JsonSerializer.Serialize(alert, Json));
                    print($"alert at step {alert.Step}: {alert.Message}");
                }
                string line = $"step {step}/{end} loss {r.Loss:F3} {tokPerSec / 1000:F1}k tok/s eta {eta:mm\\:ss}" + (load.Length > 0 ? $" load {load}" : "");
                live?.Invoke(line);
                if (val is not null) print($"step {step}/{end} train {r.Loss:F4} val {val:F4} lr {r.LearningRate:E2} {tokPerSec:F0} tok/s {clock.Elapsed.TotalSeconds:F0}s" + (load.Length > 0 ? $" load {load}" : ""));
                else if (live is null && step % Math.Max(1, logEvery * 5) == 0) print(line);
                if (saveEvery > 0 && step % saveEvery == 0) folder.SaveCheckpoint(trainer);
            }
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
