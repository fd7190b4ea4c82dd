using System.Text.Json.Nodes;
using MoeSharp.Autograd;
using MoeSharp.Classic.Data;
using MoeSharp.Nn;
using MoeSharp.Tensors;

namespace MoeSharp.Classic.Experts;

/// <summary>Settings of an <see cref="MlpExpert"/>, validated by <see cref="Validate"/>, which names the bad field.</summary>
public sealed record MlpExpertOptions
{
    /// <summary>Width H of the hidden layer.</summary>
    public int Hidden { get; init; } = 16;

    /// <summary>Passes over the weighted rows per <see cref="MlpExpert.Fit"/> call.</summary>
    public int Epochs { get; init; } = 100;

    /// <summary>Rows per AdamW step.</summary>
    public int BatchSize { get; init; } = 64;

    /// <summary>AdamW learning rate of the fits.</summary>
    public float LearningRate { get; init; } = 1e-2f;

    /// <summary>AdamW's decoupled decay on the weight matrices.</summary>
    public float WeightDecay { get; init; } = 1e-4f;

    /// <summary>Seeds the initial weights and the batch order.</summary>
    public ulong Seed { get; init; } = 1;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first field out of range.</summary>
    public void Validate()
    {
        static void Require(bool ok, string field, string message)
        {
            if (!ok) throw new ArgumentException($"MlpExpertOptions.{field}: {message}", field);
        }
        Require(Hidden > 0, nameof(Hidden), $"must be positive, got {Hidden}.");
        Require(Epochs >= 0, nameof(Epochs), $"must be non-negative, got {Epochs}.");
        Require(BatchSize > 0, nameof(BatchSize), $"must be positive, got {BatchSize}.");
        Require(LearningRate > 0 && float.IsFinite(LearningRate), nameof(LearningRate), $"must be a positive number, got {LearningRate}.");
        Require(WeightDecay >= 0 && float.IsFinite(WeightDecay), nameof(WeightDecay), $"must be a non-negative number, got {WeightDecay}.");
    }
}

/// <summary>
/// A one-hidden-layer perceptron expert, output(gelu(hidden(x))), trained by back-propagation: alone through
/// <see cref="Fit"/> (weighted mini-batch AdamW on the weighted log-likelihood or squared error), or jointly with the
/// gate through <see cref="Forward"/>. D inputs, H hidden, O outputs.
/// </summary>
public sealed class MlpExpert : IDifferentiableExpert
{
    /// <summary>The kind name saved in config.json and accepted by <c>moe fit --experts</c>.</summary>
    public const string KindName = "mlp";
    private readonly Rng _rng;

    /// <summary>An MLP with fresh weights from <paramref name="inputs"/> features to <paramref name="outputs"/> classes (or one value).</summary>
    public MlpExpert(int inputs, int outputs, TabularTask task, MlpExpertOptions? options = null)
    {
        options ??= new MlpExpertOptions();
        options.Validate();
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(inputs);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(outputs);
        if (task == TabularTask.Classification && outputs < 2) throw new ArgumentException($"A classification expert needs at least 2 outputs, got {outputs}.", nameof(outputs));
        Inputs = inputs;
        Outputs = outputs;
        Task = task;
        Options = options;
        Arena = new ParameterArena();
        // 1/√fan-in keeps the pre-activations O(1) for standardised inputs, whatever D and H are.
        Hidden = new Linear(Arena, "hidden", inputs, options.Hidden, bias: true, initStd: 1f / MathF.Sqrt(inputs));
        Output = new Linear(Arena, "output", options.Hidden, outputs, bias: true, initStd: 1f / MathF.Sqrt(options.Hidden));
        Arena.Build(options.Seed);
        _rng = new Rng(options.Seed ^ 0xBA7C4);
    }

    /// <inheritdoc/>
    public string Kind => KindName;
    /// <inheritdoc/>
    public int Inputs { get; }
    /// <inheritdoc/>
    public int Outputs { get; }
    /// <inheritdoc/>
    public TabularTask Task { get; }
    /// <summary>The settings it was built with.</summary>
    public MlpExpertOptions Options { get; }
    /// <inheritdoc/>
    public ParameterArena Arena { get; }

    /// <summary>[H,D] and [H] first layer.</summary>
    public Linear Hidden { get; }

    /// <summary>[O,H] and [O] output layer.</summary>
    public Linear Output { get; }

    /// <inheritdoc/>
    public Tensor Forward(Tape tape, Tensor x) => Output.Forward(tape, tape.Gelu(Hidden.Forward(tape, x)));

    /// <inheritdoc/>
    public void Predict(ReadOnlySpan<float> x, Span<float> output)
    {
        int n = ExpertChecks.Rows(this, x, output);
        if (n == 0) return;
        // A tape per call: Predict may run on a worker thread while an abandoned (timed-out) call still runs.
        var tape = new Tape();
        using (tape.NoGrad())
        {
            var y = Forward(tape, Tensor.FromArray(x.ToArray(), n, Inputs)); // [N,O]
            if (Task == TabularTask.Classification) tape.Softmax(y).Span.CopyTo(output);
            else y.Span.CopyTo(output);
        }
    }

    /// <summary>
    /// <see cref="MlpExpertOptions.Epochs"/> passes of AdamW over the rows of positive weight, continuing from the
    /// current weights. Each batch's loss is (1/B)·Σ ŵ·loss with ŵ = weight / mean weight, so a batch's expected loss is
    /// the weighted mean loss whatever the scale of the weights: −log p(y) for classification, (y − f(x))² for regression.
    /// </summary>
    public void Fit(TabularData data, ReadOnlySpan<float> weights)
    {
        ExpertChecks.Data(this, data, weights);
        float max = weights.Length == 0 ? 0 : TensorPrimitives.Max(weights);
        if (!(max > 0)) return;
        var rows = new List<int>();
        double sum = 0;
        // Rows a million times lighter than the heaviest change nothing measurable; skipping them saves the work.
        for (int r = 0; r < weights.Length; r++)
            if (weights[r] > 1e-6f * max) { rows.Add(r); sum += weights[r]; }
        float mean = (float)(sum / rows.Count);
        var order = rows.ToArray();
        var optimizer = new AdamW(Arena, weightDecay: Options.WeightDecay);
        var tape = new Tape();
        int b = Math.Min(Options.BatchSize, order.Length), d = Inputs;
        var xb = new Tensor(b, d);      // [B,D]
        var labels = new int[b];        // [B]
        var targets = new float[b];     // [B]
        var scale = new float[b];       // [B] loss weight of each row
        // The loss is −log-likelihood for classes and +squared error for values.
        float sign = data.IsClassification ? -1 : 1;
        for (int epoch = 0; epoch < Options.Epochs; epoch++)
        {
            _rng.Shuffle(order.AsSpan());
            for (int start = 0; start + b <= order.Length; start += b)
            {
                for (int i = 0; i < b; i++)
                {
                    int r = order[start + i];
                    data.X.Span.Slice(r * d, d).CopyTo(xb.Span.Slice(i * d, d));
                    if (data.IsClassification) labels[i] = data.Labels[r];
                    else targets[i] = data.Targets[r];
                    scale[i] = sign * weights[r] / mean / b;
                }
                Arena.ZeroGrad();
                var y = Forward(tape, xb);
                Tensor loss = data.IsClassification
                    ? tape.WeightedSum(tape.ClassLogLikelihood(y, labels), scale)
                    : tape.WeightedSum(tape.SquaredError(y, targets), scale);
                if (!float.IsFinite(loss[0]))
                {
                    tape.Reset();
                    throw new NonFiniteException($"mlp expert: the training loss became {loss[0]} in epoch {epoch + 1} (learning rate {Options.LearningRate}).");
                }
                tape.Backward(loss);
                tape.Reset();
                optimizer.Step(Options.LearningRate);
            }
        }
    }

    /// <inheritdoc/>
    public ExpertState Export()
    {
        var settings = ExpertChecks.Settings(this);
        settings["hidden"] = Options.Hidden;
        settings["epochs"] = Options.Epochs;
        settings["batch_size"] = Options.BatchSize;
        settings["learning_rate"] = Options.LearningRate;
        settings["weight_decay"] = Options.WeightDecay;
        settings["seed"] = Options.Seed;
        return new ExpertState(Kind, settings, Arena.Parameters.ToDictionary(p => p.Name, p => p.Value.Clone()));
    }

    /// <summary>Rebuilds an MLP expert from what <see cref="Export"/> saved; a missing or misshapen tensor is an error naming it.</summary>
    public static MlpExpert Restore(ExpertState state)
    {
        var s = state.Settings;
        var options = new MlpExpertOptions
        {
            Hidden = state.Int("hidden"),
            Epochs = s["epochs"]?.GetValue<int>() ?? 100,
            BatchSize = s["batch_size"]?.GetValue<int>() ?? 64,
            LearningRate = s["learning_rate"]?.GetValue<float>() ?? 1e-2f,
            WeightDecay = s["weight_decay"]?.GetValue<float>() ?? 1e-4f,
            Seed = s["seed"]?.GetValue<ulong>() ?? 1,
        };
        var expert = new MlpExpert(state.Int("inputs"), state.Int("outputs"), state.Task, options);
        foreach (var p in expert.Arena.Parameters)
        {
            var t = state.Get(p.Name);
            if (!t.Shape.SequenceEqual(p.Shape))
                throw new FormatException($"Saved mlp expert: tensor '{p.Name}' has shape {Shapes.Format(t.Shape)}, expected {Shapes.Format(p.Shape)}.");
            t.Span.CopyTo(p.Value.Span);
        }
        return expert;
    }

    /// <inheritdoc/>
    public IExpert Clone()
    {
        var copy = new MlpExpert(Inputs, Outputs, Task, Options);
        Arena.Values.CopyTo(copy.Arena.Values, 0);
        return copy;
    }

    /// <summary>Adds N(0, (scale·σ)²) to each parameter tensor, σ being that tensor's own standard deviation.</summary>
    public void Perturb(Rng rng, float scale)
    {
        foreach (var p in Arena.Parameters)
        {
            var v = p.Value.Span;
            float mean = TensorPrimitives.Sum(v) / v.Length;
            float std = MathF.Sqrt(MathF.Max(0, TensorPrimitives.SumOfSquares(v) / v.Length - mean * mean));
            if (std == 0) std = 1f / MathF.Sqrt(p.Shape[^1]);
            for (int i = 0; i < v.Length; i++) v[i] += scale * std * rng.NextNormal();
        }
    }

}
