using System.Diagnostics;
using System.Text.Json;
using MoeSharp.Data;
using MoeSharp.Diagnostics;
using MoeSharp.Kernels;
using MoeSharp.Models;
using MoeSharp.Routing;
using MoeSharp.Training;

namespace MoeSharp.IO;

/// <summary>
/// How often a run logs, validates and checkpoints, and where it stops. These defaults are <c>moe train</c>'s
/// defaults: the CLI reads them from <see cref="Default"/>.
/// </summary>
public sealed record LmRunOptions
{
    /// <summary>The defaults, shared with <c>moe train</c>.</summary>
    public static LmRunOptions Default { get; } = new();

    /// <summary>Validate every N steps (and at the last step).</summary>
    public int EvalEvery { get; init; } = 100;

    /// <summary>Validation batches per evaluation; the same batches every time.</summary>
    public int EvalBatches { get; init; } = 20;

    /// <summary>Write metrics.jsonl and routing.jsonl every N steps (and at every evaluation).</summary>
    public int LogEvery { get; init; } = 10;

    /// <summary>Checkpoint every N steps; 0 checkpoints only at the end.</summary>
    public int SaveEvery { get; init; }

    /// <summary>Stop (and checkpoint) at this step, keeping the schedule of the run's full length; a resume continues.</summary>
    public int? StopAt { get; init; }

    /// <summary>Throws <see cref="ArgumentException"/> naming the first field out of range.</summary>
    public void Validate()
    {
        static void Require(bool ok, string field, string message)
        {
            if (!ok) throw new ArgumentException($"Run options: {field} {message}", field);
        }
        Require(EvalEvery > 0, nameof(EvalEvery), $"must be positive, got {EvalEvery}.");
        Require(EvalBatches > 0, nameof(EvalBatches), $"must be positive, got {EvalBatches}.");
        Require(LogEvery > 0, nameof(LogEvery), $"must be positive, got {LogEvery}.");
        Require(SaveEvery >= 0, nameof(SaveEvery), $"must be non-negative, got {SaveEvery}.");
        Require(StopAt is null or > 0, nameof(StopAt), $"must be positive, got {StopAt}.");
    }
}

/// <summary>What a run reports after each step, for a progress display.</summary>
/// <param name="Step">Steps completed.</param>
/// <param name="End">The step this call of <see cref="LmRun.Train"/> stops at.</param>
/// <param name="ValLoss">The validation loss when this step was evaluated, else null.</param>
/// <param name="Alerts">Routing alerts raised at this step (already written to alerts.jsonl).</param>
public sealed record LmStepReport(int Step, int End, float Loss, float LearningRate, double TokensPerSecond, TimeSpan Elapsed,
    TimeSpan Remaining, float? ValLoss, IReadOnlyList<RoutingStats> Routing, IReadOnlyList<RoutingAlert> Alerts);

/// <summary>The end of <see cref="LmRun.Train"/>: the step reached, the domain × expert table (built-in corpus, MoE models) and the report.</summary>
public sealed record LmRunResult(int Step, IReadOnlyList<DomainRoutingLayer>? Domains, string ReportPath);

/// <summary>
/// A language-model training run in a <see cref="RunFolder"/>, as <c>moe train</c> runs it: config.json,
/// metrics.jsonl, routing.jsonl, alerts.jsonl (always, empty when nothing was flagged), atomic checkpoints, on the
/// built-in corpus domains.json, and report.html. <see cref="Create"/> starts a run, <see cref="Resume"/> continues
/// one from its last checkpoint with the same losses an uninterrupted run would have.
/// </summary>
public sealed class LmRun
{
    private static readonly JsonSerializerOptions Json = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    private LmRun(RunFolder folder, RunConfig config, bool resumed)
    {
        Folder = folder;
        Config = config;
        Resumed = resumed;
        Data = LmData.Load(config.Data, config.Alphabet);
        Model = new MoeTransformer(config.Model, config.Training.Seed);
        Trainer = new LmTrainer(Model, Data.Dataset, config.Training);
    }

    /// <summary>The run's folder on disk and its file paths.</summary>
    public RunFolder Folder { get; }
    /// <summary>The run's config.json: model, training options, alphabet and data source.</summary>
    public RunConfig Config { get; }
    /// <summary>The tokenized training and validation data, loaded from <see cref="RunConfig.Data"/>.</summary>
    public LmData Data { get; }
    /// <summary>The model being trained; after <see cref="Resume"/>, with the checkpoint's weights.</summary>
    public MoeTransformer Model { get; }
    /// <summary>The trainer: optimizer, schedule, batch generator and step counter.</summary>
    public LmTrainer Trainer { get; }

    /// <summary>Whether the run continues from a checkpoint.</summary>
    public bool Resumed { get; }

    /// <summary>Starts a run in <paramref name="path"/>, which must not hold one yet; writes config.json and an empty alerts.jsonl.</summary>
    public static LmRun Create(string path, RunConfig config)
    {
        config.Training.Validate();
        var folder = new RunFolder(path);
        if (File.Exists(folder.ConfigPath))
            throw new IOException($"Run folder '{folder.Path}' already holds a run; use --resume to continue it or choose another --out.");
        var run = new LmRun(folder, config, resumed: false);
        folder.WriteConfig(config);
        File.WriteAllText(folder.AlertsPath, "");
        return run;
    }

    /// <summary>
    /// Continues the run in <paramref name="path"/> from its last checkpoint. <paramref name="training"/> may change
    /// what does not alter the losses so far (the step count, the threads); the data must not have changed
    /// (SHA-256 in config.json), and the checkpoint must be whole (<see cref="RunFolder.RecoverCheckpoint"/>).
    /// Log lines written after the checkpoint are dropped: the resumed run writes them again.
    /// </summary>
    public static LmRun Resume(string path, Func<LmTrainOptions, LmTrainOptions>? training = null)
    {
        var folder = new RunFolder(path);
        var config = folder.ReadConfig();
        if (training is not null) config = config with { Training = training(config.Training) };
        config.Training.Validate();
        LmData.CheckUnchanged(config.Data);
        var run = new LmRun(folder, config, resumed: true);
        folder.LoadCheckpoint(run.Trainer);
        folder.TruncateLogs(run.Trainer.Step);
        if (!File.Exists(folder.AlertsPath)) File.WriteAllText(folder.AlertsPath, "");
        return run;
    }

    /// <summary>
    /// Trains up to the run's step count (or <see cref="LmRunOptions.StopAt"/>), logging, validating and
    /// checkpointing as <paramref name="options"/> say, then checkpoints, measures domain routing and writes the
    /// report. <paramref name="progress"/> is called on this thread after every step.
    /// </summary>
    public LmRunResult Train(LmRunOptions? options = null, IProgress<LmStepReport>? progress = null)
    {
        options ??= LmRunOptions.Default;
        options.Validate();
        int end = Math.Min(Config.Training.Steps, options.StopAt ?? int.MaxValue);
        var clock = Stopwatch.StartNew();
        int startStep = Trainer.Step, tokensPerStep = Config.Training.Batch * Config.Model.Context;
        double lossSum = 0;
        int lossCount = 0;
        while (Trainer.Step < end)
        {
            var r = Trainer.TrainStep();
            int step = Trainer.Step;
            lossSum += r.Loss;
            lossCount++;
            double tokPerSec = (step - startStep) * (double)tokensPerStep / clock.Elapsed.TotalSeconds;
            bool eval = step % options.EvalEvery == 0 || step == end;
            float? val = eval ? Trainer.Evaluate(options.EvalBatches) : null;
            if (step % options.LogEvery == 0 || eval)
            {
                Folder.Append(Folder.MetricsPath, JsonSerializer.Serialize(new
                {
                    step, loss = lossSum / lossCount, val_loss = val, lr = r.LearningRate, tokens_per_second = tokPerSec,
                    elapsed_seconds = clock.Elapsed.TotalSeconds, grad_norm = r.GradNorm, aux = r.AuxTerms,
                }));
                foreach (var stats in r.Routing)
                {
                    var obj = JsonSerializer.SerializeToNode(stats, Json)!.AsObject();
                    obj.Insert(0, "step", step);
                    Folder.Append(Folder.RoutingPath, obj.ToJsonString());
                }
                lossSum = 0;
                lossCount = 0;
            }
            foreach (var alert in r.Alerts) Folder.Append(Folder.AlertsPath, JsonSerializer.Serialize(alert, Json));
            var remaining = TimeSpan.FromSeconds((end - step) * tokensPerStep / Math.Max(1, tokPerSec));
            progress?.Report(new LmStepReport(step, end, r.Loss, r.LearningRate, tokPerSec, clock.Elapsed, remaining, val, r.Routing, r.Alerts));
            if (options.SaveEvery > 0 && step % options.SaveEvery == 0) Folder.SaveCheckpoint(Trainer);
        }
        Folder.SaveCheckpoint(Trainer);
        IReadOnlyList<DomainRoutingLayer>? domains = null;
        if (Data.Validation is not null && Model.MoeLayers.Count > 0)
        {
            using (Workers.Limit(Config.Training.Threads)) domains = DomainRouting.Measure(Model, Data.Tokenizer, Data.Validation);
            File.WriteAllText(Folder.DomainsPath, DomainRouting.ToJson(domains));
        }
        return new LmRunResult(Trainer.Step, domains, HtmlReport.Write(Folder.Path));
    }
}
