using System.Text.Json.Nodes;
using MoeSharp.Autograd;
using MoeSharp.Classic.Data;
using MoeSharp.Nn;
using MoeSharp.Tensors;

namespace MoeSharp.Classic.Experts;

/// <summary>
/// One expert of a classic mixture: any model that maps inputs [N,D] to outputs [N,O] — class probabilities (O =
/// classes, rows summing to 1) or regression values (O = 1) — and can fit itself to rows weighted by how much the
/// mixture gives them to it. Experts of different kinds may sit in one mixture.
/// </summary>
/// <remarks>
/// Only <see cref="Predict"/> and <see cref="Fit"/> are needed; saving, cloning and perturbation have defaults so a
/// user class can start small. A mixture may call <see cref="Predict"/> from a worker thread (to enforce a time
/// budget), so it must not share mutable scratch between calls.
/// </remarks>
public interface IExpert
{
    /// <summary>A short name of the expert's kind ("mlp", "linear", "tree", or a user's own), saved in config.json.</summary>
    string Kind { get; }

    /// <summary>Input width D.</summary>
    int Inputs { get; }

    /// <summary>Output width O: the class count, or 1 for regression.</summary>
    int Outputs { get; }

    /// <summary>Whether the expert classifies or regresses; it must match the mixture's.</summary>
    TabularTask Task { get; }

    /// <summary>x [N,D] → output [N,O]: class probabilities or values.</summary>
    void Predict(ReadOnlySpan<float> x, Span<float> output);

    /// <summary>
    /// Fits to <paramref name="data"/> with per-row weights [N] ≥ 0: 0/1 for a partition, the gate's responsibilities
    /// in EM. Rows of weight 0 do not count. An expert that learns iteratively continues from its current state.
    /// </summary>
    void Fit(TabularData data, ReadOnlySpan<float> weights);

    /// <summary>The expert's settings and tensors, for saving. Kinds that cannot be saved throw.</summary>
    ExpertState Export() => throw new NotSupportedException($"Expert kind '{Kind}' cannot be saved: it does not implement IExpert.Export.");

    /// <summary>An independent copy (upcycling copies one trained model into every expert).</summary>
    IExpert Clone() => throw new NotSupportedException($"Expert kind '{Kind}' cannot be copied: it does not implement IExpert.Clone.");

    /// <summary>
    /// Adds noise of relative size <paramref name="scale"/> to the expert's continuous parameters, so that copies made
    /// by upcycling start apart. Experts without such parameters leave themselves unchanged.
    /// </summary>
    void Perturb(Rng rng, float scale) { }
}

/// <summary>
/// An expert trained by back-propagation: its parameters live in its own <see cref="ParameterArena"/>, and
/// <see cref="Forward"/> records on a tape. Joint training steps it together with the gate.
/// </summary>
public interface IDifferentiableExpert : IExpert
{
    /// <summary>The expert's own parameters and gradients, stepped by joint training.</summary>
    ParameterArena Arena { get; }

    /// <summary>x [N,D] → raw outputs [N,O]: logits for classification (softmax gives the probabilities), values for regression.</summary>
    Tensor Forward(Tape tape, Tensor x);
}

/// <summary>
/// What is saved of an expert: its kind, its settings as JSON (shapes, options) and its tensors by local name. The
/// mixture's file stores the settings in config.json and the tensors in model.safetensors under "experts.{e}.".
/// </summary>
public sealed record ExpertState(string Kind, JsonObject Settings, IReadOnlyDictionary<string, Tensor> Tensors)
{
    /// <summary>A tensor the expert needs; a missing one is an error naming the expert kind and the tensor.</summary>
    public Tensor Get(string name) => Tensors.TryGetValue(name, out var t) ? t
        : throw new KeyNotFoundException($"Saved '{Kind}' expert has no tensor '{name}'.");

    /// <summary>An integer setting; a missing or malformed one is an error naming the field.</summary>
    public int Int(string field) => Settings[field] is JsonValue v && v.TryGetValue(out int i) ? i
        : throw new FormatException($"Saved '{Kind}' expert: setting '{field}' is missing or not an integer.");

    /// <summary>The expert's task from its settings.</summary>
    public TabularTask Task => Settings["task"]?.GetValue<string>() switch
    {
        "classification" => TabularTask.Classification,
        "regression" => TabularTask.Regression,
        var other => throw new FormatException($"Saved '{Kind}' expert: task '{other}' is not 'classification' or 'regression'."),
    };

    internal static string TaskName(TabularTask task) => task == TabularTask.Classification ? "classification" : "regression";

    /// <summary>
    /// Rebuilds a built-in expert ("mlp", "linear", "tree"); other kinds go to <paramref name="custom"/>, which returns
    /// null for kinds it does not know either.
    /// </summary>
    public IExpert Restore(Func<ExpertState, IExpert?>? custom = null) => Kind switch
    {
        MlpExpert.KindName => MlpExpert.Restore(this),
        LinearExpert.KindName => LinearExpert.Restore(this),
        TreeExpert.KindName => TreeExpert.Restore(this),
        _ => custom?.Invoke(this) ?? throw new FormatException($"Unknown expert kind '{Kind}': pass a loader for it."),
    };
}

/// <summary>Checks shared by the experts, with messages naming the expert.</summary>
internal static class ExpertChecks
{
    /// <summary>The sizes every expert constructor checks: positive inputs, 1 output for regression, ≥ 2 classes.</summary>
    public static void Shape(int inputs, int outputs, TabularTask task)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(inputs);
        if (task == TabularTask.Classification && outputs < 2) throw new ArgumentException($"A classification expert needs at least 2 outputs, got {outputs}.", nameof(outputs));
        if (task == TabularTask.Regression && outputs != 1) throw new ArgumentException($"A regression expert has 1 output, got {outputs}.", nameof(outputs));
    }

    public static int Rows(IExpert e, ReadOnlySpan<float> x, Span<float> output)
    {
        if (x.Length % e.Inputs != 0)
            throw new ArgumentException($"{e.Kind} expert: {x.Length} inputs are not whole rows of {e.Inputs} features.");
        int n = x.Length / e.Inputs;
        if (output.Length != n * e.Outputs)
            throw new ArgumentException($"{e.Kind} expert: output has {output.Length} elements; {n} rows of {e.Outputs} outputs need {n * e.Outputs}.");
        return n;
    }

    public static void Data(IExpert e, TabularData data, ReadOnlySpan<float> weights)
    {
        if (data.Task != e.Task) throw new ArgumentException($"{e.Kind} expert is for {e.Task}, the data is for {data.Task}.");
        if (data.Features != e.Inputs) throw new ArgumentException($"{e.Kind} expert takes {e.Inputs} features, the data has {data.Features}.");
        if (data.Outputs != e.Outputs) throw new ArgumentException($"{e.Kind} expert has {e.Outputs} outputs, the data needs {data.Outputs}.");
        if (weights.Length != data.Rows) throw new ArgumentException($"{e.Kind} expert: {weights.Length} weights for {data.Rows} rows.");
        for (int r = 0; r < weights.Length; r++)
            if (!(weights[r] >= 0) || !float.IsFinite(weights[r]))
                throw new ArgumentException($"{e.Kind} expert: the weight of row {r} is {weights[r]}; weights must be finite and non-negative.");
    }

    public static JsonObject Settings(IExpert e) => new()
    {
        ["task"] = ExpertState.TaskName(e.Task),
        ["inputs"] = e.Inputs,
        ["outputs"] = e.Outputs,
    };
}
