using MoeSharp.Autograd;
using MoeSharp.Classic.Data;
using MoeSharp.Classic.Experts;
using MoeSharp.Tensors;

namespace MoeSharp.Classic.Models;

/// <summary>Shape of a <see cref="MixtureOfExperts"/>, validated by <see cref="Validate"/>, which names the bad field.</summary>
public sealed record MixtureOptions
{
    /// <summary>Classification or regression.</summary>
    public TabularTask Task { get; init; }

    /// <summary>Input width D.</summary>
    public int Inputs { get; init; }

    /// <summary>Number of classes C (classification only).</summary>
    public int Classes { get; init; }

    /// <summary>Settings of the gate (hidden width, top-k, seed).</summary>
    public GateOptions Gate { get; init; } = new();

    /// <summary>Output width O: C for classification, 1 for regression.</summary>
    public int Outputs => Task == TabularTask.Classification ? Classes : 1;

    /// <summary>The options that fit <paramref name="data"/>.</summary>
    public static MixtureOptions For(TabularData data, GateOptions? gate = null) =>
        new() { Task = data.Task, Inputs = data.Features, Classes = data.Classes, Gate = gate ?? new GateOptions() };

    /// <summary>Throws <see cref="ArgumentException"/> naming the first field out of range for <paramref name="experts"/> experts.</summary>
    public void Validate(int experts)
    {
        if (!Enum.IsDefined(Task)) throw new ArgumentException($"MixtureOptions.Task: unknown task {(int)Task}.", nameof(Task));
        if (Inputs <= 0) throw new ArgumentException($"MixtureOptions.Inputs: must be positive, got {Inputs}.", nameof(Inputs));
        if (Task == TabularTask.Classification && Classes < 2)
            throw new ArgumentException($"MixtureOptions.Classes: classification needs at least 2 classes, got {Classes}.", nameof(Classes));
        Gate.Validate(experts);
    }
}

/// <summary>What a mixture predicts for a batch: outputs [N,O], the gate weights actually used [N,E] (after top-k, exclusions and renormalisation) and the failures.</summary>
public sealed record MixturePrediction(float[] Output, float[] Gates, FaultReport Faults);

/// <summary>
/// The classic mixture of experts (Jacobs, Jordan, Nowlan and Hinton 1991): a gate g(x) = softmax(gate(x)) over E
/// experts of any kinds, and a combiner y(x) = Σ_e g_e(x)·f_e(x) — class probabilities for classification, values
/// for regression. Regression experts also have a noise variance σ²_e, so that each expert is a Gaussian
/// p_e(y | x) = N(y; f_e(x), σ²_e) for the mixture likelihood Σ_e g_e·p_e that EM maximises.
/// </summary>
/// <remarks>
/// Expert surgery keeps every surviving expert object untouched: <see cref="AddExpert"/> appends one (freezing
/// the others by default, so training moves only the new expert and the gate), <see cref="RemoveExpert"/> and
/// <see cref="Prune"/> drop experts and their gate rows (a softmax over the rest is the old gate renormalised),
/// <see cref="ReplaceExpert"/> swaps one, <see cref="TopK"/> changes k at inference, and <see cref="Upcycle"/> turns
/// one trained model into E perturbed copies under a uniform gate.
/// </remarks>
public sealed class MixtureOfExperts
{
    /// <summary>Probability floor inside log p(y): a tree leaf may give a class exactly 0.</summary>
    public const float MinProbability = 1e-9f;

    private readonly List<IExpert> _experts;
    private readonly List<bool> _frozen;
    private readonly List<float> _variances;
    private int _topK;

    /// <summary>A mixture of <paramref name="experts"/> (each must match the options' task and widths) under a fresh gate.</summary>
    public MixtureOfExperts(MixtureOptions options, IEnumerable<IExpert> experts)
    {
        ArgumentNullException.ThrowIfNull(options);
        _experts = experts.ToList();
        if (_experts.Count == 0) throw new ArgumentException("A mixture needs at least one expert.", nameof(experts));
        options.Validate(_experts.Count);
        Options = options;
        for (int e = 0; e < _experts.Count; e++) CheckFits(_experts[e], e);
        _frozen = Enumerable.Repeat(false, _experts.Count).ToList();
        _variances = Enumerable.Repeat(1f, _experts.Count).ToList();
        Gate = new Gate(options.Inputs, _experts.Count, options.Gate);
        _topK = options.Gate.TopK;
    }

    /// <summary>The shape it was built with.</summary>
    public MixtureOptions Options { get; }
    /// <summary>Classification or regression.</summary>
    public TabularTask Task => Options.Task;
    /// <summary>Input width D.</summary>
    public int Inputs => Options.Inputs;
    /// <summary>Output width O: the class count, or 1 for regression.</summary>
    public int Outputs => Options.Outputs;
    /// <summary>Number of experts E.</summary>
    public int Count => _experts.Count;
    /// <summary>The experts, in gate order.</summary>
    public IReadOnlyList<IExpert> Experts => _experts;
    /// <summary>The gate that weighs the experts per row.</summary>
    public Gate Gate { get; private set; }

    /// <summary>[E] noise variance of each regression expert (in the standardised target's units).</summary>
    public IReadOnlyList<float> Variances => _variances;

    /// <summary>Experts per row: 0 for all (dense); k routes each row to its k highest gate scores, renormalised. Settable at inference.</summary>
    public int TopK
    {
        get => _topK;
        set
        {
            if (value < 0 || value > Count) throw new ArgumentOutOfRangeException(nameof(TopK), $"TopK must be 0 (dense) or in [1, {Count}], got {value}.");
            _topK = value;
        }
    }

    /// <summary>k actually used: 0 when it selects every expert anyway.</summary>
    internal int EffectiveTopK => _topK >= Count ? 0 : _topK;

    /// <summary>Whether expert <paramref name="e"/> is frozen (see <see cref="Freeze"/>).</summary>
    public bool IsFrozen(int e) => _frozen[e];

    /// <summary>A frozen expert is neither refitted nor stepped by training; only its gate row still learns.</summary>
    public void Freeze(int e, bool frozen = true) => _frozen[e] = frozen;

    /// <summary>Sets the noise variance of regression expert <paramref name="e"/> (standardised target units; positive and finite).</summary>
    public void SetVariance(int e, float variance)
    {
        if (!(variance > 0) || !float.IsFinite(variance)) throw new ArgumentOutOfRangeException(nameof(variance), $"Expert {e}: the variance must be positive and finite, got {variance}.");
        _variances[e] = variance;
    }

    // ---------------------------------------------------------------- inference

    /// <summary>Gate weights [N,E] for x [N,D] (top-k renormalised when <see cref="TopK"/> is set).</summary>
    public float[] GateWeights(ReadOnlySpan<float> x) => Gate.Probabilities(x, EffectiveTopK);

    /// <summary>
    /// Predicts x [N,D] → [N,O]. Each expert runs only on the rows whose gate selected it. An expert that throws,
    /// returns a non-finite value or overruns the policy's time budget is left out for those rows and the remaining
    /// gate weights are renormalised; the failures are counted in the result. If every selected expert fails on some
    /// row, <see cref="ExpertFailureException"/> names the rows and the reasons.
    /// </summary>
    public MixturePrediction Predict(ReadOnlySpan<float> x, FaultPolicy? policy = null)
    {
        var report = new FaultReport(Count);
        var (output, gates, failed) = PredictRows(x, policy ?? FaultPolicy.Default, report);
        if (failed.Count > 0)
        {
            var (row, reason) = failed[0];
            throw new ExpertFailureException(
                $"Row {row}: every selected expert failed ({reason}); {failed.Count} of {x.Length / Inputs} row(s) have no prediction.",
                failed.Select(f => f.Row).ToArray(), report);
        }
        return new MixturePrediction(output, gates, report);
    }

    /// <summary>The prediction without throwing: rows where every selected expert failed come back in the list, with zero output and gates.</summary>
    internal (float[] Output, float[] Gates, List<(int Row, string Reason)> Failed) PredictRows(ReadOnlySpan<float> x, FaultPolicy policy, FaultReport report)
    {
        policy.Validate();
        int n = CheckInputs(x), o = Outputs, e = Count, d = Inputs;
        var g = GateWeights(x);              // [N,E]
        var y = new float[n * o];            // [N,O]
        var kept = new double[n];            // [N] gate mass of the experts that answered
        var reasons = new string?[n * e];    // [N,E] why expert e was left out for row n
        var rows = new List<int>();
        for (int j = 0; j < e; j++)
        {
            rows.Clear();
            for (int r = 0; r < n; r++) if (g[r * e + j] > 0) rows.Add(r);
            if (rows.Count == 0) continue;
            var xs = new float[rows.Count * d]; // [R,D] the rows routed to expert j
            for (int i = 0; i < rows.Count; i++) x.Slice(rows[i] * d, d).CopyTo(xs.AsSpan(i * d, d));
            var failures = new string?[rows.Count];
            var out_ = FaultyCalls.Run(_experts[j], j, xs, rows.Count, policy, report, failures);
            for (int i = 0; i < rows.Count; i++)
            {
                int r = rows[i];
                if (failures[i] is not null)
                {
                    reasons[r * e + j] = failures[i];
                    g[r * e + j] = 0;
                    continue;
                }
                float w = g[r * e + j];
                kept[r] += w;
                TensorPrimitives.MultiplyAdd(out_.AsSpan(i * o, o), w, y.AsSpan(r * o, o), y.AsSpan(r * o, o));
            }
        }
        var failed = new List<(int, string)>();
        for (int r = 0; r < n; r++)
        {
            if (kept[r] > 0)
            {
                // Renormalise over the experts that answered: exact when none failed, since a row of g sums to 1.
                float inv = (float)(1 / kept[r]);
                TensorPrimitives.Multiply(y.AsSpan(r * o, o), inv, y.AsSpan(r * o, o));
                TensorPrimitives.Multiply(g.AsSpan(r * e, e), inv, g.AsSpan(r * e, e));
                continue;
            }
            var why = Enumerable.Range(0, e).Where(j => reasons[r * e + j] is not null)
                .Select(j => $"expert {j} ({_experts[j].Kind}) {reasons[r * e + j]}");
            failed.Add((r, string.Join("; ", why)));
        }
        return (y, g, failed);
    }

    // ---------------------------------------------------------------- training support

    /// <summary>Expert <paramref name="e"/>'s outputs [N,O] on every row; a non-finite output stops training with the expert and row named.</summary>
    public float[] ExpertOutputs(int e, ReadOnlySpan<float> x, string during = "training")
    {
        int n = CheckInputs(x), o = Outputs;
        var y = new float[n * o];
        _experts[e].Predict(x, y);
        for (int r = 0; r < n; r++)
            if (!TensorPrimitives.IsFiniteAll(y.AsSpan(r * o, o)))
                throw new NonFiniteException($"Expert {e} ({_experts[e].Kind}) produced a non-finite output ({y.AsSpan(r * o, o).ToArray().First(v => !float.IsFinite(v))}) for row {r} during {during}.");
        return y;
    }

    /// <summary>
    /// Writes log p_e(y_n | x_n) for every row into column <paramref name="e"/> of ℓ [N,E]: log of the probability of
    /// the row's class (floored at <see cref="MinProbability"/>), or the Gaussian log-density with variance σ²_e.
    /// </summary>
    public void LogLikelihoodColumn(int e, float[] outputs, TabularData data, Span<float> logLikelihood)
    {
        int n = data.Rows, o = Outputs, experts = logLikelihood.Length / Math.Max(1, n);
        if (Task == TabularTask.Classification)
        {
            for (int r = 0; r < n; r++) logLikelihood[r * experts + e] = MathF.Log(MathF.Max(outputs[r * o + data.Labels[r]], MinProbability));
            return;
        }
        double v = _variances[e], constant = -0.5 * Math.Log(2 * Math.PI * v);
        for (int r = 0; r < n; r++)
        {
            double diff = data.Targets[r] - outputs[r];
            logLikelihood[r * experts + e] = (float)(constant - diff * diff / (2 * v));
        }
    }

    /// <summary>ℓ [N,E]: every expert's log-likelihood of every row's target.</summary>
    public float[] LogLikelihoods(TabularData data)
    {
        CheckData(data);
        var l = new float[data.Rows * Count];
        for (int e = 0; e < Count; e++) LogLikelihoodColumn(e, ExpertOutputs(e, data.X.Span), data, l);
        return l;
    }

    /// <summary>
    /// The E-step: posterior responsibilities h [N,E], h_ne = g_ne·p_e(y_n|x_n) / Σ_k g_nk·p_k(y_n|x_n), and the
    /// log-likelihood Σ_n log Σ_e g_ne·p_e(y_n|x_n).
    /// </summary>
    public float[] Posterior(TabularData data, out double logLikelihood)
    {
        var l = LogLikelihoods(data);
        var lg = Gate.LogProbabilities(data.X.Span, EffectiveTopK); // log-probabilities, so softmax(lg) = g
        var g = new float[l.Length];
        var h = new float[l.Length];
        logLikelihood = MixtureOps.Posterior(lg, l, g, h, Count, null, out _);
        return h;
    }

    /// <summary>Throws unless <paramref name="data"/> matches the mixture's task, width and classes.</summary>
    public void CheckData(TabularData data)
    {
        if (data.Task != Task) throw new ArgumentException($"The mixture is for {Task}; the data is for {data.Task}.");
        if (data.Features != Inputs) throw new ArgumentException($"The mixture takes {Inputs} features; the data has {data.Features}.");
        if (data.Outputs != Outputs) throw new ArgumentException($"The mixture has {Outputs} outputs; the data needs {data.Outputs}.");
    }

    // ---------------------------------------------------------------- surgery

    /// <summary>
    /// Appends <paramref name="expert"/> with a new gate row; the gate's other rows and every existing expert are kept
    /// as they are. With <paramref name="freezeExisting"/> the existing experts are frozen, so training afterwards moves
    /// only the new expert and the gate. Returns the new expert's index.
    /// </summary>
    public int AddExpert(IExpert expert, bool freezeExisting = true)
    {
        CheckFits(expert, Count);
        if (freezeExisting) for (int e = 0; e < Count; e++) _frozen[e] = true;
        Gate = Gate.Resize(Enumerable.Range(0, Count).ToArray(), 1);
        _experts.Add(expert);
        _frozen.Add(false);
        _variances.Add(_variances.Average());
        return Count - 1;
    }

    /// <summary>Removes expert <paramref name="e"/> and its gate row; the gate over the others is the old one renormalised.</summary>
    public void RemoveExpert(int e)
    {
        if ((uint)e >= (uint)Count) throw new ArgumentOutOfRangeException(nameof(e), $"Expert {e} is not one of the {Count}.");
        if (Count == 1) throw new InvalidOperationException("Cannot remove the only expert of a mixture.");
        Gate = Gate.Resize(Enumerable.Range(0, Count).Where(j => j != e).ToArray(), 0);
        _experts.RemoveAt(e);
        _frozen.RemoveAt(e);
        _variances.RemoveAt(e);
        _topK = Math.Min(_topK, Count);
    }

    /// <summary>
    /// Removes every expert whose importance (mean gate weight over x [N,D]) is below <paramref name="minImportance"/>,
    /// keeping at least the most important one. Returns the removed experts' indices before removal, ascending.
    /// </summary>
    public int[] Prune(ReadOnlySpan<float> x, float minImportance)
    {
        var importance = Importance(x);
        int best = Array.IndexOf(importance, importance.Max());
        var removed = Enumerable.Range(0, Count).Where(e => e != best && importance[e] < minImportance).ToArray();
        for (int i = removed.Length - 1; i >= 0; i--) RemoveExpert(removed[i]);
        return removed;
    }

    /// <summary>[E] mean gate weight of each expert over x [N,D].</summary>
    public float[] Importance(ReadOnlySpan<float> x)
    {
        var g = GateWeights(x);
        int n = g.Length / Count;
        var imp = new float[Count];
        for (int r = 0; r < n; r++)
            for (int e = 0; e < Count; e++) imp[e] += g[r * Count + e] / n;
        return imp;
    }

    /// <summary>Puts <paramref name="expert"/> in slot <paramref name="e"/> (unfrozen), keeping the gate.</summary>
    public void ReplaceExpert(int e, IExpert expert)
    {
        if ((uint)e >= (uint)Count) throw new ArgumentOutOfRangeException(nameof(e), $"Expert {e} is not one of the {Count}.");
        CheckFits(expert, e);
        _experts[e] = expert;
        _frozen[e] = false;
    }

    /// <summary>
    /// Upcycling: a mixture of <paramref name="experts"/> copies of one trained model, each perturbed with relative noise
    /// <paramref name="noise"/> (see <see cref="IExpert.Perturb"/>) so that they can diverge, under a uniform gate.
    /// </summary>
    public static MixtureOfExperts Upcycle(IExpert trained, int experts, float noise, ulong seed, GateOptions? gate = null, int classes = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(experts);
        if (!(noise >= 0)) throw new ArgumentOutOfRangeException(nameof(noise), $"The noise scale must be non-negative, got {noise}.");
        var rng = new Rng(seed);
        var copies = new IExpert[experts];
        for (int e = 0; e < experts; e++)
        {
            copies[e] = trained.Clone();
            if (noise > 0) copies[e].Perturb(rng, noise);
        }
        var options = new MixtureOptions
        {
            Task = trained.Task, Inputs = trained.Inputs,
            Classes = trained.Task == TabularTask.Classification ? (classes > 0 ? classes : trained.Outputs) : 0,
            Gate = gate ?? new GateOptions(),
        };
        return new MixtureOfExperts(options, copies);
    }

    internal void RestoreState(Gate gate, IReadOnlyList<float> variances, IReadOnlyList<bool> frozen, int topK)
    {
        if (gate.Experts != Count || gate.Inputs != Inputs) throw new FormatException($"Saved gate is {gate.Inputs}→{gate.Experts}; the mixture needs {Inputs}→{Count}.");
        Gate = gate;
        for (int e = 0; e < Count; e++)
        {
            _variances[e] = variances[e];
            _frozen[e] = frozen[e];
        }
        TopK = topK;
    }

    private void CheckFits(IExpert expert, int index)
    {
        ArgumentNullException.ThrowIfNull(expert);
        if (expert.Task != Task) throw new ArgumentException($"Expert {index} ({expert.Kind}) is for {expert.Task}; the mixture is for {Task}.");
        if (expert.Inputs != Inputs) throw new ArgumentException($"Expert {index} ({expert.Kind}) takes {expert.Inputs} inputs; the mixture has {Inputs}.");
        if (expert.Outputs != Outputs) throw new ArgumentException($"Expert {index} ({expert.Kind}) has {expert.Outputs} outputs; the mixture needs {Outputs}.");
    }

    private int CheckInputs(ReadOnlySpan<float> x)
    {
        if (x.Length % Inputs != 0) throw new ArgumentException($"{x.Length} inputs are not whole rows of the mixture's {Inputs} features.");
        return x.Length / Inputs;
    }
}
