using System.Diagnostics;
using MoeSharp.Autograd;
using MoeSharp.Data;
using MoeSharp.Nn;
using MoeSharp.Tensors;

namespace MoeSharp.Training;

/// <summary>Hyper-parameters of a language-model training run.</summary>
public sealed record LmTrainOptions
{
    public int Steps { get; init; } = 2000;
    public int Batch { get; init; } = 12;
    public float LearningRate { get; init; } = 1e-3f;
    public float MinLearningRate { get; init; } = 1e-4f;
    public int WarmupSteps { get; init; } = 100;
    public float WeightDecay { get; init; } = 0.1f;
    public float Beta2 { get; init; } = 0.99f;
    public float ClipNorm { get; init; } = 1f;
    public ulong Seed { get; init; } = 1337;

    public void Validate()
    {
        if (Steps <= 0) throw new ArgumentException($"Training options: Steps must be positive, got {Steps}.", nameof(Steps));
        if (Batch <= 0) throw new ArgumentException($"Training options: Batch must be positive, got {Batch}.", nameof(Batch));
        if (!(LearningRate > 0)) throw new ArgumentException($"Training options: LearningRate must be positive, got {LearningRate}.", nameof(LearningRate));
        if (WarmupSteps < 0) throw new ArgumentException($"Training options: WarmupSteps must be non-negative, got {WarmupSteps}.", nameof(WarmupSteps));
    }
}

/// <summary>Raised when a loss or gradient stops being finite; names the layer and op that first produced it.</summary>
public sealed class NonFiniteException(string message) : Exception(message);

/// <summary>
/// Next-token training of a <see cref="TransformerLm"/> on a <see cref="TextDataset"/>: random windows, AdamW,
/// warm-up and cosine decay, global-norm clipping, and a guard that stops at the first NaN naming its layer.
/// Batches come from one seeded generator, so a seed and thread count fix every loss.
/// </summary>
public sealed class LmTrainer
{
    private readonly Tape _tape = new();
    private readonly int[] _inputs, _targets; // [B·T]

    public LmTrainer(TransformerLm model, TextDataset data, LmTrainOptions options)
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
    }

    public TransformerLm Model { get; }
    public TextDataset Data { get; }
    public LmTrainOptions Options { get; }
    public AdamW Optimizer { get; }
    public CosineSchedule Schedule { get; }

    /// <summary>The generator that draws training batches; part of the state a resume restores.</summary>
    public Rng BatchRng { get; }

    /// <summary>Steps completed.</summary>
    public int Step { get; set; }

    /// <summary>Runs one optimisation step and returns its training loss.</summary>
    public StepResult TrainStep()
    {
        int ctx = Model.Config.Context;
        Data.Sample(BatchRng, validation: false, Options.Batch, ctx, _inputs, _targets);
        var sw = Stopwatch.StartNew();
        Model.Arena.ZeroGrad();
        var loss = Model.Loss(_tape, _inputs, _targets, Options.Batch);
        float value = loss[0];
        if (!float.IsFinite(value))
        {
            var node = _tape.FirstNonFinite();
            _tape.Reset();
            throw new NonFiniteException(node is null
                ? $"Step {Step}: the loss is {value}."
                : $"Step {Step}: the loss is {value}; the first non-finite value came from {node.Op} in layer '{node.Label}'.");
        }
        _tape.Backward(loss);
        _tape.Reset();
        float norm = GradientClipping.ClipGlobalNorm(Model.Arena, Options.ClipNorm);
        if (!float.IsFinite(norm))
        {
            var bad = Model.Arena.Parameters.First(p => !TensorPrimitives.IsFiniteAll(p.Value.Grad!.Span));
            throw new NonFiniteException($"Step {Step}: the gradient of '{bad.Name}' is not finite.");
        }
        float lr = Schedule.At(Step);
        Optimizer.Step(lr);
        Step++;
        return new StepResult(value, lr, norm, _inputs.Length / sw.Elapsed.TotalSeconds);
    }

    /// <summary>Mean loss over <paramref name="batches"/> validation batches drawn from <paramref name="seed"/> (the same batches every call).</summary>
    public float Evaluate(int batches, ulong seed = 42)
    {
        var rng = new Rng(seed);
        double total = 0;
        for (int i = 0; i < batches; i++)
        {
            Data.Sample(rng, validation: true, Options.Batch, Model.Config.Context, _inputs, _targets);
            using (_tape.NoGrad()) total += Model.Loss(_tape, _inputs, _targets, Options.Batch)[0];
            _tape.Reset();
        }
        return (float)(total / batches);
    }

    public readonly record struct StepResult(float Loss, float LearningRate, float GradNorm, double TokensPerSecond);
}
