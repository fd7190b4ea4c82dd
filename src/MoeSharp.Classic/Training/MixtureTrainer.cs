using System.Diagnostics;
using MoeSharp.Autograd;
using MoeSharp.Classic.Data;
using MoeSharp.Classic.Experts;
using MoeSharp.Classic.Models;
using MoeSharp.Nn;
using MoeSharp.Routing;
using MoeSharp.Tensors;

namespace MoeSharp.Classic.Training;

/// <summary>The training phases of a classic mixture, each callable on its own or in a pipeline.</summary>
public enum MixturePhase
{
    /// <summary>Each expert alone on its own part of the data (a partition column or k-means clusters).</summary>
    Experts,

    /// <summary>The gate alone, experts frozen, learning to send each row to the experts that explain it best.</summary>
    Gate,

    /// <summary>Gate and experts together: back-propagation for differentiable experts, weighted refits for the rest.</summary>
    Joint,

    /// <summary>Expectation–maximisation (Jordan and Jacobs 1994).</summary>
    Em,
}

/// <summary>Which rows each expert fits in the experts phase when no partition is given.</summary>
public enum ExpertStart
{
    /// <summary>k-means clusters of the inputs, one per expert: experts start local.</summary>
    KMeans,

    /// <summary>Every row: experts start global, and the gate then picks, per region, the kind that does best there.</summary>
    AllRows,
}

/// <summary>What regression training minimises.</summary>
public enum RegressionObjective
{
    /// <summary>−log Σ_e g_e·N(y; f_e, σ²_e): experts compete for rows and specialise (Jacobs et al. 1991).</summary>
    GaussianMixture,

    /// <summary>(y − Σ_e g_e·f_e)²: experts cooperate on the combined output.</summary>
    CombinedSquaredError,
}

/// <summary>Settings of a <see cref="MixtureTrainer"/>, validated by <see cref="Validate"/>, which names the bad field.</summary>
public sealed record MixtureTrainOptions
{
    /// <summary>The phases <see cref="MixtureTrainer.Fit"/> runs, in order.</summary>
    public IReadOnlyList<MixturePhase> Phases { get; init; } = [MixturePhase.Experts, MixturePhase.Gate, MixturePhase.Joint];

    /// <summary>The experts phase's rows when <see cref="MixtureTrainer.Fit"/> gets no partition.</summary>
    public ExpertStart ExpertStart { get; init; } = ExpertStart.KMeans;

    /// <summary>Epochs of the gate-only phase.</summary>
    public int GateEpochs { get; init; } = 50;

    /// <summary>Epochs of joint training.</summary>
    public int JointEpochs { get; init; } = 50;

    /// <summary>Joint training refits the non-differentiable experts on their responsibilities every this many epochs (and after the last).</summary>
    public int RefitEvery { get; init; } = 5;

    /// <summary>E-step/M-step rounds of EM.</summary>
    public int EmIterations { get; init; } = 20;

    /// <summary>Full-batch AdamW steps that fit the gate to the responsibilities in each M-step.</summary>
    public int GateStepsPerMStep { get; init; } = 100;

    /// <summary>Rows per AdamW step in the gradient phases.</summary>
    public int BatchSize { get; init; } = 64;
    /// <summary>AdamW learning rate of the gradient phases.</summary>
    public float LearningRate { get; init; } = 1e-2f;

    /// <summary>AdamW's decoupled decay on the weight matrices of the gate and the differentiable experts.</summary>
    public float WeightDecay { get; init; } = 1e-4f;

    /// <summary>
    /// Adds EntropyCoef·mean_n H(g_n) to the loss: positive sharpens the gate (each row to fewer experts), negative
    /// softens it.
    /// </summary>
    public float EntropyCoef { get; init; }

    /// <summary>
    /// Adds BalanceCoef·CV²(Σ_n g_n), the importance loss of the MoE layer (Shazeer et al. 2017), so that no
    /// expert takes everything.
    /// </summary>
    public float BalanceCoef { get; init; }

    /// <summary>What a regression mixture minimises (see <see cref="RegressionObjective"/>).</summary>
    public RegressionObjective Objective { get; init; } = RegressionObjective.GaussianMixture;

    /// <summary>
    /// Share of the rows (0 to 0.5) held out from the experts and given to the gate alone. Experts then never fit
    /// the gate's rows, so the gate learns which expert does best on inputs it has not memorised — the remedy when
    /// some experts (deep trees, wide MLPs) fit their own rows far better than new ones. 0: every row serves both.
    /// </summary>
    public float GateHoldout { get; init; }

    /// <summary>Lower bound on a regression expert's noise variance, so an expert that fits few rows exactly does not collapse to a spike.</summary>
    public float MinVariance { get; init; } = 1e-3f;

    /// <summary>Seeds k-means and the batch order.</summary>
    public ulong Seed { get; init; } = 1;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first field out of range.</summary>
    public void Validate()
    {
        static void Require(bool ok, string field, string message)
        {
            if (!ok) throw new ArgumentException($"MixtureTrainOptions.{field}: {message}", field);
        }
        Require(Phases is { Count: > 0 }, nameof(Phases), "must name at least one phase.");
        foreach (var p in Phases) Require(Enum.IsDefined(p), nameof(Phases), $"unknown phase {(int)p}.");
        Require(GateEpochs >= 0, nameof(GateEpochs), $"must be non-negative, got {GateEpochs}.");
        Require(JointEpochs >= 0, nameof(JointEpochs), $"must be non-negative, got {JointEpochs}.");
        Require(RefitEvery > 0, nameof(RefitEvery), $"must be positive, got {RefitEvery}.");
        Require(EmIterations >= 0, nameof(EmIterations), $"must be non-negative, got {EmIterations}.");
        Require(GateStepsPerMStep >= 0, nameof(GateStepsPerMStep), $"must be non-negative, got {GateStepsPerMStep}.");
        Require(BatchSize > 0, nameof(BatchSize), $"must be positive, got {BatchSize}.");
        Require(LearningRate > 0 && float.IsFinite(LearningRate), nameof(LearningRate), $"must be a positive number, got {LearningRate}.");
        Require(WeightDecay >= 0 && float.IsFinite(WeightDecay), nameof(WeightDecay), $"must be a non-negative number, got {WeightDecay}.");
        Require(float.IsFinite(EntropyCoef), nameof(EntropyCoef), $"must be a number, got {EntropyCoef}.");
        Require(BalanceCoef >= 0 && float.IsFinite(BalanceCoef), nameof(BalanceCoef), $"must be a non-negative number, got {BalanceCoef}.");
        Require(Enum.IsDefined(Objective), nameof(Objective), $"unknown objective {(int)Objective}.");
        Require(Enum.IsDefined(ExpertStart), nameof(ExpertStart), $"unknown start {(int)ExpertStart}.");
        Require(MinVariance > 0 && float.IsFinite(MinVariance), nameof(MinVariance), $"must be a positive number, got {MinVariance}.");
        Require(GateHoldout is >= 0 and <= 0.5f, nameof(GateHoldout), $"must be in [0, 0.5], got {GateHoldout}.");
    }
}

/// <summary>One phase's outcome: its loss after each epoch or EM iteration (mean per row), and its time.</summary>
public sealed record PhaseReport(MixturePhase Phase, IReadOnlyList<double> Loss, double Seconds)
{
    /// <summary>The last recorded loss of the phase; NaN if none was recorded.</summary>
    public double FinalLoss => Loss.Count == 0 ? double.NaN : Loss[^1];
}

/// <summary>
/// Trains a <see cref="MixtureOfExperts"/> in the phases of <see cref="MixturePhase"/>. Losses are per row: the
/// mixture's negative log-likelihood −log Σ_e g_e·p_e(y|x) (for classification the cross-entropy of the combined
/// probabilities), or for <see cref="RegressionObjective.CombinedSquaredError"/> the squared error of the combined
/// output. Frozen experts are never refitted or stepped. Every phase checks that experts stay finite and names the
/// expert and row when one does not. With <see cref="MixtureTrainOptions.GateHoldout"/> the rows split, the same way
/// in every phase, into expert rows (which the experts fit) and gate rows (which the gate learns from).
/// </summary>
public sealed class MixtureTrainer
{
    private readonly Tape _tape = new();
    private readonly Rng _rng;

    /// <summary>A trainer for <paramref name="model"/> with <paramref name="options"/> (validated first).</summary>
    public MixtureTrainer(MixtureOfExperts model, MixtureTrainOptions? options = null)
    {
        Model = model;
        Options = options ?? new MixtureTrainOptions();
        Options.Validate();
        _rng = new Rng(Options.Seed);
    }

    /// <summary>The mixture being trained.</summary>
    public MixtureOfExperts Model { get; }
    /// <summary>The training settings.</summary>
    public MixtureTrainOptions Options { get; }

    /// <summary>
    /// Runs <see cref="MixtureTrainOptions.Phases"/> in order; the experts phase uses <paramref name="partition"/> or,
    /// when null, <see cref="MixtureTrainOptions.ExpertStart"/>.
    /// </summary>
    public IReadOnlyList<PhaseReport> Fit(TabularData data, int[]? partition = null)
    {
        Check(data);
        var reports = new List<PhaseReport>();
        foreach (var phase in Options.Phases)
            reports.Add(phase switch
            {
                MixturePhase.Experts => TrainExperts(data, partition ?? (Options.ExpertStart == ExpertStart.KMeans ? Partition.KMeans(data.X, Model.Count, Options.Seed) : null)),
                MixturePhase.Gate => TrainGate(data),
                MixturePhase.Joint => TrainJoint(data),
                _ => RunEm(data),
            });
        return reports;
    }

    /// <summary>
    /// Phase 1: each unfrozen expert e fits the rows with partition[n] = e (weight 1, the rest 0), or with a null
    /// partition every row.
    /// </summary>
    public PhaseReport TrainExperts(TabularData data, int[]? partition)
    {
        Check(data);
        if (partition is null)
        {
            var start = Stopwatch.StartNew();
            var every = ExpertRows(data.Rows) ?? Enumerable.Repeat(1f, data.Rows).ToArray();
            for (int e = 0; e < Model.Count; e++)
                if (!Model.IsFrozen(e)) RefitExpert(data, e, every);
            return new PhaseReport(MixturePhase.Experts, [Nll(data)], start.Elapsed.TotalSeconds);
        }
        if (partition.Length != data.Rows) throw new ArgumentException($"The partition has {partition.Length} entries for {data.Rows} rows.", nameof(partition));
        var sizes = new int[Model.Count];
        for (int r = 0; r < partition.Length; r++)
        {
            if ((uint)partition[r] >= (uint)Model.Count)
                throw new ArgumentException($"Row {r} is in part {partition[r]}; there are {Model.Count} experts (parts 0..{Model.Count - 1}).", nameof(partition));
            sizes[partition[r]]++;
        }
        var clock = Stopwatch.StartNew();
        for (int e = 0; e < Model.Count; e++)
        {
            if (Model.IsFrozen(e)) continue;
            if (sizes[e] == 0) throw new ArgumentException($"Part {e} of the partition has no rows, so expert {e} has nothing to fit.", nameof(partition));
            RefitExpert(data, e, Mask(Partition.Indicator(partition, e), ExpertRows(data.Rows)));
        }
        return new PhaseReport(MixturePhase.Experts, [Nll(data)], clock.Elapsed.TotalSeconds);
    }

    /// <summary>Phase 2: the gate alone (on the gate rows), by mini-batch AdamW on the mixture loss with every expert's outputs held fixed.</summary>
    public PhaseReport TrainGate(TabularData data)
    {
        var gateRows = GateRows(data.Rows);
        return Epochs(gateRows is null ? data : data.Subset(Rows(gateRows)), MixturePhase.Gate, Options.GateEpochs, trainExperts: false);
    }

    /// <summary>
    /// Phase 3: joint training. The gate and the unfrozen differentiable experts take AdamW steps on the mixture loss
    /// together; every <see cref="MixtureTrainOptions.RefitEvery"/> epochs the unfrozen non-differentiable experts are
    /// refitted with the posterior responsibilities as row weights (and regression variances re-estimated).
    /// </summary>
    public PhaseReport TrainJoint(TabularData data) => Epochs(data, MixturePhase.Joint, Options.JointEpochs, trainExperts: true);

    /// <summary>Phase 4: EM, <see cref="MixtureTrainOptions.EmIterations"/> rounds of <see cref="EStep"/> then <see cref="MStep"/>. The loss is −log-likelihood per row before each M-step and after the last.</summary>
    public PhaseReport RunEm(TabularData data)
    {
        Check(data);
        var clock = Stopwatch.StartNew();
        var loss = new List<double>();
        for (int it = 0; it < Options.EmIterations; it++)
        {
            var h = EStep(data, out double logLik);
            loss.Add(-logLik / data.Rows);
            MStep(data, h);
        }
        loss.Add(Nll(data));
        return new PhaseReport(MixturePhase.Em, loss, clock.Elapsed.TotalSeconds);
    }

    /// <summary>The E-step: posterior responsibilities h [N,E] and the log-likelihood (see <see cref="MixtureOfExperts.Posterior"/>).</summary>
    public float[] EStep(TabularData data, out double logLikelihood) => Model.Posterior(data, out logLikelihood);

    /// <summary>
    /// The M-step for responsibilities h [N,E] (with a holdout, experts see only their rows and the gate only its own):
    /// each unfrozen expert e refits with row weights h[:,e]; a regression
    /// expert's variance becomes Σ_n h_ne·(y_n − f_e(x_n))² / Σ_n h_ne (at least MinVariance); the gate takes
    /// <see cref="MixtureTrainOptions.GateStepsPerMStep"/> full-batch steps on the cross-entropy −Σ_n Σ_e h_ne·log g_ne.
    /// </summary>
    public void MStep(TabularData data, float[] h)
    {
        Check(data);
        int e = Model.Count;
        if (h.Length != data.Rows * e) throw new ArgumentException($"Responsibilities have {h.Length} entries; {data.Rows} rows × {e} experts need {data.Rows * e}.", nameof(h));
        var expertRows = ExpertRows(data.Rows);
        for (int j = 0; j < e; j++)
        {
            if (Model.IsFrozen(j)) continue;
            RefitExpert(data, j, Mask(Column(h, j, e), expertRows));
        }
        FitGate(Model.Gate, data.X, h, GateRows(data.Rows), Options.GateStepsPerMStep);
    }

    /// <summary>The mixture's loss per row on <paramref name="data"/> (see the class summary).</summary>
    public double Nll(TabularData data)
    {
        if (data.Task == TabularTask.Regression && Options.Objective == RegressionObjective.CombinedSquaredError)
        {
            var y = Model.Predict(data.X.Span).Output;
            double s = 0;
            for (int r = 0; r < data.Rows; r++) s += (y[r] - data.Targets[r]) * (double)(y[r] - data.Targets[r]);
            return s / data.Rows;
        }
        Model.Posterior(data, out double logLik);
        return -logLik / data.Rows;
    }

    /// <summary>
    /// Fits <paramref name="gate"/> to soft targets [N,E] (responsibilities) by full-batch AdamW on the weighted
    /// cross-entropy (row weights null: all 1), plus the entropy and balance terms.
    /// </summary>
    internal void FitGate(Gate gate, Tensor x, float[] targets, float[]? rowWeights, int steps)
    {
        if (steps == 0) return;
        var optimizer = new AdamW(gate.Arena, weightDecay: Options.WeightDecay);
        for (int s = 0; s < steps; s++)
        {
            gate.Arena.ZeroGrad();
            var a = gate.MaskedLogits(_tape, x, TopKOf(gate));
            var loss = Regularise(a, _tape.SoftCrossEntropy(a, targets, rowWeights));
            if (!float.IsFinite(loss[0]))
            {
                _tape.Reset();
                throw new NonFiniteException($"The gate's loss became {loss[0]} in M-step gate step {s + 1}.");
            }
            _tape.Backward(loss);
            _tape.Reset();
            optimizer.Step(Options.LearningRate);
        }
    }

    private int TopKOf(Gate gate) => gate == Model.Gate ? Model.EffectiveTopK : (gate.Options.TopK >= gate.Experts ? 0 : gate.Options.TopK);

    private Tensor Regularise(Tensor logits, Tensor loss)
    {
        if (Options.EntropyCoef != 0) loss = _tape.Add(loss, _tape.Scale(_tape.GateEntropy(logits), Options.EntropyCoef));
        if (Options.BalanceCoef != 0) loss = _tape.Add(loss, _tape.Scale(_tape.CvSquared(_tape.ColumnSums(_tape.Softmax(logits))), Options.BalanceCoef));
        return loss;
    }

    private PhaseReport Epochs(TabularData data, MixturePhase phase, int epochs, bool trainExperts)
    {
        Check(data);
        var clock = Stopwatch.StartNew();
        int e = Model.Count, n = data.Rows, d = data.Features, o = Model.Outputs;
        bool combined = data.Task == TabularTask.Regression && Options.Objective == RegressionObjective.CombinedSquaredError;
        var stepped = new bool[e]; // experts that take gradient steps
        var optimizers = new List<AdamW> { new(Model.Gate.Arena, weightDecay: Options.WeightDecay) };
        for (int j = 0; j < e; j++)
            if (trainExperts && !Model.IsFrozen(j) && Model.Experts[j] is IDifferentiableExpert de)
            {
                stepped[j] = true;
                optimizers.Add(new AdamW(de.Arena, weightDecay: Options.WeightDecay));
            }
        bool refits = trainExperts && Enumerable.Range(0, e).Any(j => !stepped[j] && !Model.IsFrozen(j));
        // With a holdout, joint steps send the loss of expert rows to the experts only and of gate rows to the gate only.
        var expertMask = trainExperts ? ExpertRows(n) : null; // [N]
        var gateMask = trainExperts ? GateRows(n) : null;     // [N]
        var cached = new float[e][]; // [E][N,O] outputs of the experts that take no steps
        void Refresh()
        {
            for (int j = 0; j < e; j++)
                if (!stepped[j]) cached[j] = Model.ExpertOutputs(j, data.X.Span, phase.ToString().ToLowerInvariant() + " training");
        }
        Refresh();

        int b = Math.Min(Options.BatchSize, n);
        var order = Enumerable.Range(0, n).ToArray();
        var xb = new Tensor(b, d);     // [B,D]
        var labels = new int[b];       // [B]
        var targets = new float[b];    // [B]
        var invB = Enumerable.Repeat(1f / b, b).ToArray();
        var wExperts = new float[b]; // [B] 1 for the batch's expert rows
        var wGate = new float[b];    // [B] 1 for the batch's gate rows
        var loss = new List<double>();
        for (int epoch = 0; epoch < epochs; epoch++)
        {
            _rng.Shuffle(order.AsSpan());
            double sum = 0;
            int batches = 0;
            for (int start = 0; start + b <= n; start += b)
            {
                for (int i = 0; i < b; i++)
                {
                    int r = order[start + i];
                    data.X.Span.Slice(r * d, d).CopyTo(xb.Span.Slice(i * d, d));
                    if (data.IsClassification) labels[i] = data.Labels[r];
                    else targets[i] = data.Targets[r];
                    wExperts[i] = expertMask?[r] ?? 1;
                    wGate[i] = gateMask?[r] ?? 1;
                }
                Model.Gate.Arena.ZeroGrad();
                var a = Model.Gate.MaskedLogits(_tape, xb, Model.EffectiveTopK); // [B,E]
                var parts = new Tensor[e];
                for (int j = 0; j < e; j++)
                {
                    if (stepped[j])
                    {
                        var expert = (IDifferentiableExpert)Model.Experts[j];
                        expert.Arena.ZeroGrad();
                        var z = expert.Forward(_tape, xb); // [B,O]
                        CheckFinite(z, j, order, start, phase);
                        parts[j] = combined ? z
                            : data.IsClassification ? _tape.ClassLogLikelihood(z, labels)
                            : _tape.GaussianLogLikelihood(z, targets, Model.Variances[j]);
                        continue;
                    }
                    parts[j] = Constant(cached[j], j, order, start, b, o, combined, data);
                }
                var l = _tape.Concat(parts); // [B,E] log-likelihoods, or [B,E] outputs (O = 1)
                Tensor objective;
                if (expertMask is null)
                    objective = combined
                        ? _tape.WeightedSum(_tape.SquaredError(_tape.MixRows(_tape.Softmax(a), l), targets), invB)
                        : _tape.MixtureNll(a, l);
                else if (combined)
                {
                    var g = _tape.Softmax(a);
                    objective = _tape.Add(
                        _tape.WeightedSum(_tape.SquaredError(_tape.MixRows(g, Detach(l)), targets), Normalised(wGate)),
                        _tape.WeightedSum(_tape.SquaredError(_tape.MixRows(Detach(g), l), targets), Normalised(wExperts)));
                }
                else objective = _tape.Add(_tape.MixtureNll(a, Detach(l), wGate), _tape.MixtureNll(Detach(a), l, wExperts));
                var total = Regularise(a, objective);
                if (!float.IsFinite(total[0]))
                {
                    _tape.Reset();
                    throw new NonFiniteException($"{phase} training: the loss became {total[0]} in epoch {epoch + 1}.");
                }
                sum += objective[0];
                batches++;
                _tape.Backward(total);
                _tape.Reset();
                foreach (var opt in optimizers) opt.Step(Options.LearningRate);
            }
            loss.Add(sum / Math.Max(1, batches));
            bool last = epoch == epochs - 1;
            if (trainExperts && ((epoch + 1) % Options.RefitEvery == 0 || last) && (refits || (data.Task == TabularTask.Regression && !combined)))
            {
                var h = Model.Posterior(data, out _);
                for (int j = 0; j < e; j++)
                {
                    if (Model.IsFrozen(j)) continue;
                    var w = Mask(Column(h, j, e), expertMask);
                    if (!stepped[j]) RefitExpert(data, j, w);
                    else if (data.Task == TabularTask.Regression) UpdateVariance(data, j, w);
                }
                Refresh();
            }
        }
        return new PhaseReport(phase, loss, clock.Elapsed.TotalSeconds);
    }

    /// <summary>A batch's constant column for an expert that takes no step: its log-likelihoods [B], or its outputs [B,1] for the combined error.</summary>
    private Tensor Constant(float[] outputs, int e, int[] order, int start, int b, int o, bool combined, TabularData data)
    {
        var t = _tape.Allocate(b); // [B]
        var s = t.Span;
        for (int i = 0; i < b; i++)
        {
            int r = order[start + i];
            if (combined) { s[i] = outputs[r]; continue; }
            if (data.IsClassification) s[i] = MathF.Log(MathF.Max(outputs[r * o + data.Labels[r]], MixtureOfExperts.MinProbability));
            else
            {
                double v = Model.Variances[e], diff = data.Targets[r] - outputs[r];
                s[i] = (float)(-0.5 * Math.Log(2 * Math.PI * v) - diff * diff / (2 * v));
            }
        }
        return t;
    }

    private void CheckFinite(Tensor z, int e, int[] order, int start, MixturePhase phase)
    {
        var s = z.Span;
        int o = z.Dim(-1);
        for (int i = 0; i < s.Length; i++)
            if (!float.IsFinite(s[i]))
            {
                _tape.Reset();
                throw new NonFiniteException($"Expert {e} ({Model.Experts[e].Kind}) produced a non-finite output ({s[i]}) for row {order[start + i / o]} during {phase.ToString().ToLowerInvariant()} training.");
            }
    }

    /// <summary>A copy outside autograd: gradients stop there.</summary>
    private Tensor Detach(Tensor t)
    {
        var copy = _tape.Allocate(t.Shape.ToArray());
        t.Span.CopyTo(copy.Span);
        return copy;
    }

    private static float[] Normalised(float[] w)
    {
        float sum = w.Sum();
        return w.Select(v => sum > 0 ? v / sum : 0).ToArray();
    }

    /// <summary>[N] 1 for the rows experts fit, 0 for the gate's holdout; null without a holdout.</summary>
    private float[]? ExpertRows(int n) => HoldoutSplit(n) is { } gate ? gate.Select(v => 1 - v).ToArray() : null;

    /// <summary>[N] 1 for the gate's held-out rows; null without a holdout.</summary>
    private float[]? GateRows(int n) => HoldoutSplit(n);

    /// <summary>The same random ⌈GateHoldout·N⌉ rows every call, drawn from the seed.</summary>
    private float[]? HoldoutSplit(int n)
    {
        if (Options.GateHoldout == 0) return null;
        var order = Enumerable.Range(0, n).ToArray();
        var rng = new Rng(Options.Seed ^ 0x401D0UL);
        rng.Shuffle(order.AsSpan());
        var gate = new float[n];
        int count = Math.Clamp((int)Math.Ceiling(Options.GateHoldout * n), 1, n - 1);
        for (int i = 0; i < count; i++) gate[order[i]] = 1;
        return gate;
    }

    private static float[] Mask(float[] w, float[]? mask) => mask is null ? w : w.Select((v, i) => v * mask[i]).ToArray();

    private static int[] Rows(float[] mask) => Enumerable.Range(0, mask.Length).Where(r => mask[r] > 0).ToArray();

    /// <summary>Refits expert <paramref name="e"/> with row weights [N] and, for regression, re-estimates its variance with them.</summary>
    internal void RefitExpert(TabularData data, int e, float[] w)
    {
        try
        {
            Model.Experts[e].Fit(data, w);
        }
        catch (NonFiniteException ex)
        {
            throw new NonFiniteException($"Expert {e} ({Model.Experts[e].Kind}): {ex.Message}");
        }
        if (data.Task == TabularTask.Regression) UpdateVariance(data, e, w);
    }

    /// <summary>σ²_e = Σ w·(y − f_e)² / Σ w, floored at MinVariance.</summary>
    private void UpdateVariance(TabularData data, int e, float[] w)
    {
        var f = Model.ExpertOutputs(e, data.X.Span);
        double num = 0, den = 0;
        for (int r = 0; r < data.Rows; r++)
        {
            double diff = data.Targets[r] - f[r];
            num += w[r] * diff * diff;
            den += w[r];
        }
        if (den > 0) Model.SetVariance(e, (float)Math.Max(Options.MinVariance, num / den));
    }

    private void Check(TabularData data)
    {
        Model.CheckData(data);
        if (data.Rows < Model.Count)
            throw new ArgumentException($"{data.Rows} rows cannot train {Model.Count} experts: use at most {data.Rows} experts, or more data.");
    }

    internal static float[] Column(float[] m, int j, int cols)
    {
        var c = new float[m.Length / cols];
        for (int r = 0; r < c.Length; r++) c[r] = m[r * cols + j];
        return c;
    }

}
