using MoeSharp.Classic.Data;
using MoeSharp.Tensors;

namespace MoeSharp.Classic.Models;

/// <summary>
/// A two-level hierarchical mixture of experts (Jordan and Jacobs 1994): a top gate g_i(x) over G groups, each
/// group a <see cref="MixtureOfExperts"/> with its own gate g_{j|i}(x) over its experts, so that
/// p(y|x) = Σ_i g_i(x) Σ_j g_{j|i}(x)·p_ij(y|x) and the prediction is Σ_i g_i·Σ_j g_{j|i}·f_ij(x). Experts are
/// numbered across groups in order (group 0's first, …) in fault reports.
/// </summary>
public sealed class HierarchicalMixture
{
    /// <summary>A two-level mixture over <paramref name="groups"/> (which must agree on task and widths), with a top gate built from <paramref name="topGate"/>.</summary>
    public HierarchicalMixture(IReadOnlyList<MixtureOfExperts> groups, GateOptions? topGate = null)
    {
        if (groups.Count == 0) throw new ArgumentException("A hierarchical mixture needs at least one group.", nameof(groups));
        var first = groups[0];
        for (int i = 1; i < groups.Count; i++)
            if (groups[i].Task != first.Task || groups[i].Inputs != first.Inputs || groups[i].Outputs != first.Outputs)
                throw new ArgumentException($"Group {i} is a {groups[i].Task} mixture of {groups[i].Inputs}→{groups[i].Outputs}; group 0 is {first.Task} {first.Inputs}→{first.Outputs}.", nameof(groups));
        Groups = groups.ToArray();
        Top = new Gate(first.Inputs, groups.Count, topGate);
    }

    /// <summary>The lower-level mixtures, one per branch of the top gate.</summary>
    public IReadOnlyList<MixtureOfExperts> Groups { get; }

    /// <summary>The gate over groups.</summary>
    public Gate Top { get; }

    /// <summary>Whether the model classifies or regresses (the groups').</summary>
    public TabularTask Task => Groups[0].Task;
    /// <summary>Input width D.</summary>
    public int Inputs => Groups[0].Inputs;
    /// <summary>Output width O: the class count, or 1 for regression.</summary>
    public int Outputs => Groups[0].Outputs;

    /// <summary>Experts over all groups.</summary>
    public int ExpertCount => Groups.Sum(g => g.Count);

    /// <summary>Top-gate weights [N,G].</summary>
    public float[] GroupWeights(ReadOnlySpan<float> x) => Top.Probabilities(x, Top.Options.TopK >= Groups.Count ? 0 : Top.Options.TopK);

    /// <summary>
    /// Predicts x [N,D] → [N,O]. A group whose selected experts all fail on a row is left out of that row and the
    /// top gate renormalised over the rest; a row left with no group fails the call with <see cref="ExpertFailureException"/>.
    /// The result's gates are the effective weights of every expert [N, total experts].
    /// </summary>
    public MixturePrediction Predict(ReadOnlySpan<float> x, FaultPolicy? policy = null)
    {
        policy ??= FaultPolicy.Default;
        int n = x.Length / Inputs, o = Outputs, groups = Groups.Count, total = ExpertCount;
        var top = GroupWeights(x);         // [N,G]
        var y = new float[n * o];          // [N,O]
        var gates = new float[n * total];  // [N, total experts]
        var kept = new double[n];
        var reasons = new List<string>[n];
        var report = new FaultReport(total);
        for (int i = 0, offset = 0; i < groups; offset += Groups[i].Count, i++)
        {
            var groupReport = new FaultReport(Groups[i].Count);
            var (out_, g, failed) = Groups[i].PredictRows(x, policy, groupReport);
            report.AddFrom(groupReport, offset);
            var bad = new HashSet<int>();
            foreach (var (row, reason) in failed)
            {
                bad.Add(row);
                (reasons[row] ??= []).Add($"group {i}: {reason}");
            }
            int m = Groups[i].Count;
            for (int r = 0; r < n; r++)
            {
                float w = top[r * groups + i];
                if (bad.Contains(r) || w == 0) continue;
                kept[r] += w;
                TensorPrimitives.MultiplyAdd(out_.AsSpan(r * o, o), w, y.AsSpan(r * o, o), y.AsSpan(r * o, o));
                for (int j = 0; j < m; j++) gates[r * total + offset + j] = w * g[r * m + j];
            }
        }
        var rowsFailed = new List<int>();
        for (int r = 0; r < n; r++)
        {
            if (kept[r] == 0) { rowsFailed.Add(r); continue; }
            float inv = (float)(1 / kept[r]);
            TensorPrimitives.Multiply(y.AsSpan(r * o, o), inv, y.AsSpan(r * o, o));
            TensorPrimitives.Multiply(gates.AsSpan(r * total, total), inv, gates.AsSpan(r * total, total));
        }
        if (rowsFailed.Count > 0)
            throw new ExpertFailureException(
                $"Row {rowsFailed[0]}: every selected expert of every group failed ({string.Join("; ", reasons[rowsFailed[0]] ?? [])}); {rowsFailed.Count} of {n} row(s) have no prediction.",
                rowsFailed.ToArray(), report);
        return new MixturePrediction(y, gates, report);
    }
}
