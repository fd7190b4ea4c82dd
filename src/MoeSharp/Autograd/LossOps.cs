using MoeSharp.Tensors;

namespace MoeSharp.Autograd;

/// <summary>
/// Per-row likelihood and error ops for tabular models. N rows, C classes, O outputs. Each returns one value per
/// row, so a caller can weight rows (sample weights, EM responsibilities) with <see cref="WeightedSum"/>.
/// </summary>
public sealed partial class Tape
{
    /// <summary>ℓ[n] = log softmax(logits[n,:])[labels[n]]: the log-probability of each row's class. logits [N,C] → [N].</summary>
    public Tensor ClassLogLikelihood(Tensor logits, int[] labels)
    {
        int c = logits.Dim(-1), n = logits.RowCount;
        if (labels.Length != n) throw new ArgumentException($"ClassLogLikelihood: {labels.Length} labels for {n} rows of {Shapes.Format(logits.Shape)}.");
        var y = Output(Tracks(logits), n);
        var lse = Allocate(n); // [N]
        var z = logits.Span;
        for (int r = 0; r < n; r++)
        {
            if ((uint)labels[r] >= (uint)c) throw new ArgumentOutOfRangeException(nameof(labels), $"Label {labels[r]} of row {r} is outside [0, {c}).");
            var row = z.Slice(r * c, c);
            lse[r] = Kernels.Softmax.LogSumExp(row);
            y[r] = row[labels[r]] - lse[r];
        }
        if (y.RequiresGrad) Record(new ClassLogLikelihoodNode(y, logits, labels, lse));
        return y;
    }

    /// <summary>e[n] = Σ_o (pred[n,o] − target[n,o])²: each row's squared error. pred [N,O], target [N·O] → [N].</summary>
    public Tensor SquaredError(Tensor pred, float[] target)
    {
        if (target.Length != pred.Length) throw new ArgumentException($"SquaredError: {target.Length} targets for {Shapes.Format(pred.Shape)}.");
        int o = pred.Dim(-1), n = pred.RowCount;
        var y = Output(Tracks(pred), n);
        var p = pred.Span;
        for (int r = 0; r < n; r++)
        {
            double s = 0;
            for (int j = r * o; j < (r + 1) * o; j++) s += (double)(p[j] - target[j]) * (p[j] - target[j]);
            y[r] = (float)s;
        }
        if (y.RequiresGrad) Record(new SquaredErrorNode(y, pred, target));
        return y;
    }

    /// <summary>
    /// ℓ[n] = log N(target[n,:]; pred[n,:], variance·I) = −Σ_o (t − p)²/(2·variance) − (O/2)·log(2π·variance).
    /// pred [N,O], target [N·O] → [N]. The variance is a constant here (EM re-estimates it in closed form).
    /// </summary>
    public Tensor GaussianLogLikelihood(Tensor pred, float[] target, float variance)
    {
        if (!(variance > 0)) throw new ArgumentOutOfRangeException(nameof(variance), $"GaussianLogLikelihood: the variance must be positive, got {variance}.");
        if (target.Length != pred.Length) throw new ArgumentException($"GaussianLogLikelihood: {target.Length} targets for {Shapes.Format(pred.Shape)}.");
        int o = pred.Dim(-1), n = pred.RowCount;
        var y = Output(Tracks(pred), n);
        var p = pred.Span;
        double constant = -0.5 * o * Math.Log(2 * Math.PI * variance);
        for (int r = 0; r < n; r++)
        {
            double s = 0;
            for (int j = r * o; j < (r + 1) * o; j++) s += (double)(p[j] - target[j]) * (p[j] - target[j]);
            y[r] = (float)(constant - s / (2 * variance));
        }
        if (y.RequiresGrad) Record(new GaussianNode(y, pred, target, variance));
        return y;
    }

    /// <summary>
    /// Cross-entropy against soft targets: (1/Σw) Σ_n w[n] Σ_c −targets[n,c]·log softmax(logits[n,:])[c]. logits [N,C],
    /// targets [N·C] (rows need not sum to 1), optional row weights [N] (null: all 1) → scalar. Fitting a gate to EM
    /// responsibilities is this with the responsibilities as targets.
    /// </summary>
    public Tensor SoftCrossEntropy(Tensor logits, float[] targets, float[]? rowWeights = null)
    {
        int c = logits.Dim(-1), n = logits.RowCount;
        if (targets.Length != logits.Length) throw new ArgumentException($"SoftCrossEntropy: {targets.Length} targets for {Shapes.Format(logits.Shape)}.");
        if (rowWeights is not null && rowWeights.Length != n) throw new ArgumentException($"SoftCrossEntropy: {rowWeights.Length} row weights for {n} rows.");
        var y = Output(Tracks(logits), 1);
        var logp = Allocate(logits.Length); // [N,C]
        Kernels.Softmax.LogRows(logits.Span, logp.Span, c);
        double total = 0, weight = 0;
        for (int r = 0; r < n; r++)
        {
            double w = rowWeights?[r] ?? 1, s = 0;
            for (int j = r * c; j < (r + 1) * c; j++)
                if (targets[j] != 0) s -= targets[j] * (double)logp[j];
            total += w * s;
            weight += w;
        }
        float scale = weight > 0 ? (float)(1 / weight) : 0;
        y[0] = (float)(total * scale);
        if (y.RequiresGrad) Record(new SoftCrossEntropyNode(y, logits, targets, rowWeights, logp, scale));
        return y;
    }

    /// <summary>
    /// Concatenates along the last dimension: parts [N, Wᵢ] (a rank-1 part [N] counts as [N,1]) → [N, ΣWᵢ].
    /// </summary>
    public Tensor Concat(IReadOnlyList<Tensor> parts)
    {
        if (parts.Count == 0) throw new ArgumentException("Concat: needs at least one part.");
        int n = parts[0].Rank == 1 ? parts[0].Length : parts[0].RowCount;
        var widths = new int[parts.Count];
        bool tracked = false;
        for (int i = 0; i < parts.Count; i++)
        {
            int rows = parts[i].Rank == 1 ? parts[i].Length : parts[i].RowCount;
            if (rows != n) throw new ArgumentException($"Concat: part {i} {Shapes.Format(parts[i].Shape)} has {rows} rows; part 0 has {n}.");
            widths[i] = n == 0 ? 0 : parts[i].Length / n;
            tracked |= Tracks(parts[i]);
        }
        int total = widths.Sum();
        var y = Output(tracked, n, total);
        for (int r = 0; r < n; r++)
        {
            int offset = r * total;
            for (int i = 0; i < parts.Count; i++)
            {
                parts[i].Span.Slice(r * widths[i], widths[i]).CopyTo(y.Span.Slice(offset, widths[i]));
                offset += widths[i];
            }
        }
        if (y.RequiresGrad) Record(new ConcatNode(y, parts.ToArray(), widths));
        return y;
    }

    private sealed class ClassLogLikelihoodNode(Tensor y, Tensor logits, int[] labels, Tensor lse) : Node(y)
    {
        public override string Op => "ClassLogLikelihood";

        internal override void Backward(Tape tape)
        {
            // dℓ/dz_j = δ(j = label) − softmax(z)_j
            int c = logits.Dim(-1);
            var dz = tape.GradOf(logits);
            var z = logits.Span;
            var dy = Output.Grad!.Span;
            for (int r = 0; r < labels.Length; r++)
            {
                for (int j = 0; j < c; j++) dz[r * c + j] -= dy[r] * MathF.Exp(z[r * c + j] - lse[r]);
                dz[r * c + labels[r]] += dy[r];
            }
        }
    }

    private sealed class SquaredErrorNode(Tensor y, Tensor pred, float[] target) : Node(y)
    {
        public override string Op => "SquaredError";

        internal override void Backward(Tape tape)
        {
            int o = pred.Dim(-1);
            var dp = tape.GradOf(pred);
            var p = pred.Span;
            var dy = Output.Grad!.Span;
            for (int j = 0; j < p.Length; j++) dp[j] += 2 * dy[j / o] * (p[j] - target[j]);
        }
    }

    private sealed class GaussianNode(Tensor y, Tensor pred, float[] target, float variance) : Node(y)
    {
        public override string Op => "GaussianLogLikelihood";

        internal override void Backward(Tape tape)
        {
            int o = pred.Dim(-1);
            var dp = tape.GradOf(pred);
            var p = pred.Span;
            var dy = Output.Grad!.Span;
            for (int j = 0; j < p.Length; j++) dp[j] += dy[j / o] * (target[j] - p[j]) / variance;
        }
    }

    private sealed class SoftCrossEntropyNode(Tensor y, Tensor logits, float[] targets, float[]? rowWeights, Tensor logp, float scale) : Node(y)
    {
        public override string Op => "SoftCrossEntropy";

        internal override void Backward(Tape tape)
        {
            // d/dz_j of −Σ_c t_c·log p_c is (Σ_c t_c)·p_j − t_j.
            int c = logits.Dim(-1);
            var dz = tape.GradOf(logits);
            var lp = logp.Span;
            float g = Output.Grad!.Span[0] * scale;
            for (int r = 0; r < logits.RowCount; r++)
            {
                float w = g * (rowWeights?[r] ?? 1), mass = 0;
                for (int j = r * c; j < (r + 1) * c; j++) mass += targets[j];
                for (int j = r * c; j < (r + 1) * c; j++) dz[j] += w * (mass * MathF.Exp(lp[j]) - targets[j]);
            }
        }
    }

    private sealed class ConcatNode(Tensor y, Tensor[] parts, int[] widths) : Node(y)
    {
        public override string Op => "Concat";

        internal override void Backward(Tape tape)
        {
            int total = Output.Dim(-1), n = Output.RowCount;
            var dy = Output.Grad!.Span;
            int offset = 0;
            for (int i = 0; i < parts.Length; offset += widths[i], i++)
            {
                if (!parts[i].RequiresGrad) continue;
                var dp = tape.GradOf(parts[i]);
                for (int r = 0; r < n; r++)
                    TensorPrimitives.Add(dp.Slice(r * widths[i], widths[i]), dy.Slice(r * total + offset, widths[i]), dp.Slice(r * widths[i], widths[i]));
            }
        }
    }
}
