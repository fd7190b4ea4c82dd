using System.Diagnostics;
using MoeSharp.Autograd;
using MoeSharp.Classic.Data;
using MoeSharp.Classic.Models;

namespace MoeSharp.Classic.Training;

/// <summary>
/// EM for a two-level <see cref="HierarchicalMixture"/> (Jordan and Jacobs 1994). With group log-likelihoods
/// L_i = log Σ_j g_{j|i}·p_ij, the E-step computes the top posteriors h_i ∝ g_i·exp(L_i), the within-group posteriors
/// h_{j|i} ∝ g_{j|i}·p_ij, and the joint h_ij = h_i·h_{j|i}. The M-step refits expert ij with row weights h_ij, fits
/// group i's gate to h_{j|i} with row weights h_i, and the top gate to h_i. Options (epochs aside) are those of
/// <see cref="MixtureTrainer"/>.
/// </summary>
public sealed class HierarchicalTrainer
{
    private readonly MixtureTrainer[] _groups;

    /// <summary>A trainer for <paramref name="model"/> with <paramref name="options"/> (validated first), shared by every level.</summary>
    public HierarchicalTrainer(HierarchicalMixture model, MixtureTrainOptions? options = null)
    {
        Model = model;
        Options = options ?? new MixtureTrainOptions();
        Options.Validate();
        _groups = model.Groups.Select(g => new MixtureTrainer(g, Options)).ToArray();
    }

    /// <summary>The two-level mixture being trained.</summary>
    public HierarchicalMixture Model { get; }
    /// <summary>The training settings.</summary>
    public MixtureTrainOptions Options { get; }

    /// <summary>
    /// A starting point for EM: k-means splits the rows into the G groups, and each group's rows again into its
    /// experts; every expert fits its cluster, every group gate its sub-clusters and the top gate the groups.
    /// </summary>
    public PhaseReport Initialize(TabularData data)
    {
        Check(data);
        var clock = Stopwatch.StartNew();
        int n = data.Rows, groups = Model.Groups.Count;
        var top = Partition.KMeans(data.X, groups, Options.Seed);
        var topTargets = OneHot(top, groups);
        for (int i = 0; i < groups; i++)
        {
            var group = Model.Groups[i];
            var rows = Enumerable.Range(0, n).Where(r => top[r] == i).ToArray();
            if (rows.Length < group.Count)
                throw new ArgumentException($"k-means put {rows.Length} rows in group {i}, fewer than its {group.Count} experts; use fewer groups or experts.");
            var sub = Partition.KMeans(data.Subset(rows).X, group.Count, Options.Seed + (ulong)i + 1);
            var inner = new int[n];
            for (int k = 0; k < rows.Length; k++) inner[rows[k]] = sub[k];
            var inGroup = Partition.Indicator(top, i);
            for (int j = 0; j < group.Count; j++)
            {
                if (group.IsFrozen(j)) continue;
                var w = new float[n];
                for (int k = 0; k < rows.Length; k++) w[rows[k]] = sub[k] == j ? 1 : 0;
                _groups[i].RefitExpert(data, j, w);
            }
            _groups[i].FitGate(group.Gate, data.X, OneHot(inner, group.Count), inGroup, Options.GateStepsPerMStep);
        }
        _groups[0].FitGate(Model.Top, data.X, topTargets, null, Options.GateStepsPerMStep);
        return new PhaseReport(MixturePhase.Experts, [-LogLikelihood(data) / n], clock.Elapsed.TotalSeconds);
    }

    /// <summary><see cref="MixtureTrainOptions.EmIterations"/> rounds of EM; the loss is −log-likelihood per row before each M-step and after the last.</summary>
    public PhaseReport RunEm(TabularData data)
    {
        Check(data);
        var clock = Stopwatch.StartNew();
        var loss = new List<double>();
        for (int it = 0; it < Options.EmIterations; it++)
        {
            var (top, within, logLik) = EStep(data);
            loss.Add(-logLik / data.Rows);
            MStep(data, top, within);
        }
        loss.Add(-LogLikelihood(data) / data.Rows);
        return new PhaseReport(MixturePhase.Em, loss, clock.Elapsed.TotalSeconds);
    }

    /// <summary>Σ_n log p(y_n | x_n) under the hierarchy.</summary>
    public double LogLikelihood(TabularData data) => EStep(data).LogLikelihood;

    /// <summary>Top posteriors h_i [N,G], within-group posteriors h_{j|i} per group [N,M_i], and the log-likelihood.</summary>
    public (float[] Top, float[][] Within, double LogLikelihood) EStep(TabularData data)
    {
        int n = data.Rows, groups = Model.Groups.Count;
        var groupLogLik = new float[n * groups]; // [N,G] L_i
        var within = new float[groups][];
        for (int i = 0; i < groups; i++)
        {
            var group = Model.Groups[i];
            var l = group.LogLikelihoods(data);                                     // [N,M]
            var lg = group.Gate.LogProbabilities(data.X.Span, group.EffectiveTopK); // [N,M]
            var g = new float[l.Length];
            within[i] = new float[l.Length];
            for (int r = 0; r < n; r++)
            {
                // Per row so that each L_i lands in its own column.
                groupLogLik[r * groups + i] = (float)MixtureOps.Posterior(lg.AsSpan(r * group.Count, group.Count), l.AsSpan(r * group.Count, group.Count),
                    g.AsSpan(r * group.Count, group.Count), within[i].AsSpan(r * group.Count, group.Count), group.Count, null, out _);
            }
        }
        var topLog = Model.Top.LogProbabilities(data.X.Span, Model.Top.Options.TopK >= groups ? 0 : Model.Top.Options.TopK);
        var gTop = new float[n * groups];
        var hTop = new float[n * groups];
        double logLik = MixtureOps.Posterior(topLog, groupLogLik, gTop, hTop, groups, null, out _);
        return (hTop, within, logLik);
    }

    /// <summary>The M-step for the posteriors of <see cref="EStep"/>.</summary>
    public void MStep(TabularData data, float[] top, float[][] within)
    {
        int n = data.Rows, groups = Model.Groups.Count;
        for (int i = 0; i < groups; i++)
        {
            var group = Model.Groups[i];
            var hi = MixtureTrainer.Column(top, i, groups);
            for (int j = 0; j < group.Count; j++)
            {
                if (group.IsFrozen(j)) continue;
                var w = new float[n];
                for (int r = 0; r < n; r++) w[r] = hi[r] * within[i][r * group.Count + j];
                _groups[i].RefitExpert(data, j, w);
            }
            _groups[i].FitGate(group.Gate, data.X, within[i], hi, Options.GateStepsPerMStep);
        }
        _groups[0].FitGate(Model.Top, data.X, top, null, Options.GateStepsPerMStep);
    }

    private void Check(TabularData data)
    {
        foreach (var g in Model.Groups) g.CheckData(data);
        if (data.Rows < Model.ExpertCount)
            throw new ArgumentException($"{data.Rows} rows cannot train {Model.ExpertCount} experts: use at most {data.Rows} experts, or more data.");
    }

    private static float[] OneHot(int[] labels, int classes)
    {
        var t = new float[labels.Length * classes];
        for (int r = 0; r < labels.Length; r++) t[r * classes + labels[r]] = 1;
        return t;
    }
}
