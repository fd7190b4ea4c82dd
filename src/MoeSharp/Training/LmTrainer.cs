using System.Diagnostics;
using System.Text.Json.Serialization;
using MoeSharp.Autograd;
using MoeSharp.Data;
using MoeSharp.Kernels;
using MoeSharp.Models;
using MoeSharp.Nn;
using MoeSharp.Routing;
using MoeSharp.Tensors;

namespace MoeSharp.Training;

/// <summary>
/// Hyper-parameters of a language-model training run. These defaults are <c>moe train</c>'s defaults: the CLI
/// reads them from <see cref="Default"/>.
/// </summary>
public sealed record LmTrainOptions
{
    /// <summary>The defaults, for callers (the CLI's option declarations) that show or compare them.</summary>
    public static LmTrainOptions Default { get; } = new();

    private readonly float? _minLearningRate;

    /// <summary>Total optimisation steps: the cosine schedule's length.</summary>
    public int Steps { get; init; } = 2500;

    /// <summary>Sequences per step.</summary>
    public int Batch { get; init; } = 12;

    /// <summary>Peak learning rate, reached after <see cref="WarmupSteps"/>.</summary>
    public float LearningRate { get; init; } = 2e-3f;

    /// <summary>Where the cosine decay ends; a tenth of <see cref="LearningRate"/> unless set.</summary>
    public float MinLearningRate
    {
        get => _minLearningRate ?? LearningRate / 10;
        init => _minLearningRate = value;
    }

    /// <summary>Steps of linear warm-up from 0 to <see cref="LearningRate"/>.</summary>
    public int WarmupSteps { get; init; } = 100;

    /// <summary>AdamW's decoupled weight decay, per unit of learning rate.</summary>
    public float WeightDecay { get; init; } = 0.1f;

    /// <summary>AdamW's second-moment decay β2 (β1 stays 0.9).</summary>
    public float Beta2 { get; init; } = 0.99f;

    /// <summary>Maximum global L2 norm of the gradients; 0 turns clipping off.</summary>
    public float ClipNorm { get; init; } = 1f;

    /// <summary>Seed of the batch sampler; with the model's seed it fixes every loss.</summary>
    public ulong Seed { get; init; } = 1337;

    /// <summary>
    /// Worker threads for this trainer's steps and evaluations (scoped to them, not process-wide). Not a
    /// hyper-parameter: losses are bitwise the same for any count, so it is not saved in a run's config.
    /// </summary>
    [JsonIgnore]
    public int Threads { get; init; } = Environment.ProcessorCount;

    /// <summary>Throws, naming the field and value, unless every option is in range.</summary>
    public void Validate()
    {
        static void Require(bool ok, string field, string message)
        {
            if (!ok) throw new ArgumentException($"Training options: {field} {message}", field);
        }
        Require(Steps > 0, nameof(Steps), $"must be positive, got {Steps}.");
        Require(Batch > 0, nameof(Batch), $"must be positive, got {Batch}.");
        Require(LearningRate > 0 && float.IsFinite(LearningRate), nameof(LearningRate), $"must be positive, got {LearningRate}.");
        Require(MinLearningRate >= 0 && MinLearningRate <= LearningRate, nameof(MinLearningRate), $"must be in [0, LearningRate], got {MinLearningRate}.");
        Require(WarmupSteps >= 0, nameof(WarmupSteps), $"must be non-negative, got {WarmupSteps}.");
        Require(ClipNorm >= 0, nameof(ClipNorm), $"must be non-negative, got {ClipNorm}.");
        Require(Threads >= 1, nameof(Threads), $"must be at least 1, got {Threads}.");
    }
}

/// <summary>
/// Next-token training of a <see cref="MoeTransformer"/> on a <see cref="TextDataset"/>: random windows, AdamW,
/// warm-up and cosine decay, global-norm clipping, auxiliary-loss-free bias updates after each optimizer step, a
/// routing monitor per MoE layer, and a guard that stops at the first NaN naming its layer. Batches come from one
/// seeded generator whose state is part of a checkpoint, so a seed and thread count fix every loss, resumed or not.
/// </summary>
public sealed class LmTrainer
{
    private readonly Tape _tape = new();
    private readonly int[] _inputs, _targets; // [B·T]
    private readonly RoutingMonitor[] _monitors;

    /// <summary>A trainer for <paramref name="model"/> on <paramref name="data"/>, with a fresh AdamW state and the batch generator at <see cref="LmTrainOptions.Seed"/>.</summary>
    public LmTrainer(MoeTransformer model, TextDataset data, LmTrainOptions options)
    {
        options.Validate();
        Model = model;
        Data = data;
        Options = options;
        Optimizer = new AdamW(model.Arena, beta2: options.Beta2, weightDecay: options.WeightDecay);
        Schedule = new CosineSchedule(options.LearningRate, options.WarmupSteps, options.Steps, options.MinLearningRate);
        BatchRng = new Rng(options.Seed);
        _inputs = new int[options.Batch * model.Config.Context];
        _targets = new int[options.Batch * model.Config.Context];
        _monitors = model.MoeLayers.Select(m => new RoutingMonitor(m.Options.Experts, m.Options.DeadExpertSteps, m.Options.CollapseThreshold)).ToArray();
    }

    /// <summary>The model whose parameters every step updates in place.</summary>
    public MoeTransformer Model { get; }
    /// <summary>The token streams batches and validation windows are drawn from.</summary>
    public TextDataset Data { get; }
    /// <summary>The validated options this trainer runs with.</summary>
    public LmTrainOptions Options { get; }
    /// <summary>The optimizer; its moments are part of a checkpoint.</summary>
    public AdamW Optimizer { get; }
    /// <summary>Learning rate per step: warm-up, then cosine decay to <see cref="LmTrainOptions.MinLearningRate"/>.</summary>
    public CosineSchedule Schedule { get; }

    /// <summary>The generator that draws training batches; part of the state a resume restores.</summary>
    public Rng BatchRng { get; }

    /// <summary>Steps completed.</summary>
    public int Step { get; set; }

    /// <summary>Runs one optimisation step.</summary>
    public StepResult TrainStep()
    {
        using var limit = Workers.Limit(Options.Threads);
        int ctx = Model.Config.Context;
        Data.Sample(BatchRng, validation: false, Options.Batch, ctx, _inputs, _targets);
        var sw = Stopwatch.StartNew();
        Model.Arena.ZeroGrad();
        var (loss, ce, output) = Model.Loss(_tape, _inputs, _targets, Options.Batch, training: true, step: Step);
        float value = ce[0];
        if (!float.IsFinite(loss[0]))
        {
            var node = _tape.FirstNonFinite();
            _tape.Reset();
            throw new NonFiniteException(node is null
                ? $"Step {Step}: the loss is {loss[0]}."
                : $"Step {Step}: the loss is {loss[0]}; the first non-finite value came from {node.Op} in layer '{node.Label}'.");
        }
        var aux = new Dictionary<string, float>();
        foreach (var r in output.Moe)
            foreach (var (name, term) in r.AuxLosses) aux[name] = aux.GetValueOrDefault(name) + term[0];
        var stats = output.Moe.Select(r => r.Stats).ToArray();
        float auxTotal = output.AuxLoss?[0] ?? 0;
        _tape.Backward(loss);
        _tape.Reset();
        float norm = GradientClipping.ClipGlobalNorm(Model.Arena, Options.ClipNorm);
        if (!float.IsFinite(norm))
        {
            var bad = Model.Arena.Parameters.First(p => p.Trainable && !TensorPrimitives.IsFiniteAll(p.Value.Grad!.Span));
            throw new NonFiniteException($"Step {Step}: the gradient of '{bad.Name}' is not finite.");
        }
        float lr = Schedule.At(Step);
        Optimizer.Step(lr);
        var layers = Model.MoeLayers;
        var alerts = new List<RoutingAlert>();
        for (int i = 0; i < layers.Count; i++)
        {
            layers[i].UpdateBias(stats[i]);
            alerts.AddRange(_monitors[i].Observe(stats[i], Step + 1));
        }
        Step++;
        return new StepResult(value, auxTotal, lr, norm, _inputs.Length / sw.Elapsed.TotalSeconds, aux, stats, alerts);
    }

    /// <summary>Mean cross-entropy over <paramref name="batches"/> validation batches drawn from <paramref name="seed"/> (the same batches every call).</summary>
    public float Evaluate(int batches, ulong seed = 42)
    {
        using var limit = Workers.Limit(Options.Threads);
        var rng = new Rng(seed);
        double total = 0;
        for (int i = 0; i < batches; i++)
        {
            Data.Sample(rng, validation: true, Options.Batch, Model.Config.Context, _inputs, _targets);
            using (_tape.NoGrad()) total += Model.Loss(_tape, _inputs, _targets, Options.Batch).CrossEntropy[0];
            _tape.Reset();
        }
        return (float)(total / batches);
    }

    /// <summary>One step's outcome: cross-entropy, weighted aux loss, rate, pre-clip gradient norm, speed, aux terms summed over layers, per-layer routing, new alerts.</summary>
    public sealed record StepResult(float Loss, float AuxLoss, float LearningRate, float GradNorm, double TokensPerSecond,
        IReadOnlyDictionary<string, float> AuxTerms, IReadOnlyList<RoutingStats> Routing, IReadOnlyList<RoutingAlert> Alerts);
}
