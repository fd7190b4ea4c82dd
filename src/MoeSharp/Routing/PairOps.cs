using MoeSharp.Autograd;
using MoeSharp.Dispatch;
using MoeSharp.Tensors;

namespace MoeSharp.Routing;

/// <summary>
/// Differentiable ops between per-token scores [T,E] and per-pair gate values [P] (pairs in token-major order,
/// token t owning pairs [offsets[t], offsets[t+1])), plus the router z-loss and the CV² used by balancing.
/// </summary>
public static class PairOps
{
    /// <summary>w[p] = scores[token(p), expert(p)]: each pair's score, gradients scattered back.</summary>
    public static Tensor GatherPairs(this Tape tape, Tensor scores, int[] tokenOffsets, int[] pairExpert)
    {
        int e = scores.Dim(-1);
        var y = tape.Output(tape.IsRecording && scores.RequiresGrad, pairExpert.Length);
        var s = scores.Span;
        for (int t = 0; t < tokenOffsets.Length - 1; t++)
            for (int p = tokenOffsets[t]; p < tokenOffsets[t + 1]; p++) y[p] = s[t * e + pairExpert[p]];
        if (y.RequiresGrad) tape.Record(new GatherPairsNode(y, scores, tokenOffsets, pairExpert));
        return y;
    }

    /// <summary>
    /// w[p] / Σ_{q of the same token} w[q]: renormalises each token's gate values to sum to 1. The output keeps w's
    /// shape, so rows of a [T,E] score matrix normalise with offsets 0, E, 2E, ….
    /// </summary>
    public static Tensor NormalizePerToken(this Tape tape, Tensor w, int[] tokenOffsets)
    {
        var y = tape.Output(tape.Tracks(w), w.Shape.ToArray());
        var sums = tape.Allocate(tokenOffsets.Length - 1); // [T]
        var ws = w.Span;
        for (int t = 0; t < sums.Length; t++)
        {
            float s = 0;
            for (int p = tokenOffsets[t]; p < tokenOffsets[t + 1]; p++) s += ws[p];
            sums[t] = s;
            for (int p = tokenOffsets[t]; p < tokenOffsets[t + 1]; p++) y[p] = ws[p] / s;
        }
        if (y.RequiresGrad) tape.Record(new NormalizeNode(y, w, sums, tokenOffsets));
        return y;
    }

    /// <summary>Softmax over each token's pairs: the GPT-OSS "top-k, then softmax over the k logits" gate.</summary>
    public static Tensor SoftmaxPerToken(this Tape tape, Tensor logits, int[] tokenOffsets)
    {
        var y = tape.Output(tape.Tracks(logits), logits.Length);
        var ls = logits.Span;
        var ys = y.Span;
        for (int t = 0; t < tokenOffsets.Length - 1; t++)
        {
            int p0 = tokenOffsets[t], n = tokenOffsets[t + 1] - p0;
            if (n > 0) Kernels.Softmax.Rows(ls.Slice(p0, n), ys.Slice(p0, n), n);
        }
        if (y.RequiresGrad) tape.Record(new SoftmaxPerTokenNode(y, logits, tokenOffsets));
        return y;
    }

    /// <summary>
    /// ST-MoE router z-loss: mean over unmasked tokens of (logsumexp of the token's logits)². Rows with
    /// mask[t] = false are ignored; a null mask counts every row.
    /// </summary>
    public static Tensor ZLoss(this Tape tape, Tensor logits, bool[]? mask = null)
    {
        int e = logits.Dim(-1), rows = logits.RowCount;
        var y = tape.Output(tape.Tracks(logits), 1);
        var lse = tape.Allocate(rows); // [T]
        double total = 0;
        int counted = 0;
        for (int t = 0; t < rows; t++)
        {
            lse[t] = Kernels.Softmax.LogSumExp(logits.Span.Slice(t * e, e));
            if (mask is not null && !mask[t]) continue;
            total += (double)lse[t] * lse[t];
            counted++;
        }
        y[0] = counted == 0 ? 0 : (float)(total / counted);
        if (y.RequiresGrad) tape.Record(new ZLossNode(y, logits, lse, mask, counted));
        return y;
    }

    /// <summary>Coefficient of variation squared, Var(v)/Mean(v)² (population variance), of a vector v [E].</summary>
    public static Tensor CvSquared(this Tape tape, Tensor v)
    {
        var y = tape.Output(tape.Tracks(v), 1);
        var (mean, var) = Moments(v.Span);
        y[0] = mean == 0 ? 0 : (float)(var / (mean * mean));
        if (y.RequiresGrad) tape.Record(new CvSquaredNode(y, v));
        return y;
    }

    /// <summary>s[e] = Σ over pairs routed to e (dropped pairs and masked tokens excluded) of w[p].</summary>
    public static Tensor ExpertSums(this Tape tape, Tensor w, Assignment a, bool[]? mask = null)
    {
        var y = tape.Output(tape.Tracks(w), a.Experts);
        y.Span.Clear();
        var counted = Counted(a, mask);
        for (int p = 0; p < a.Pairs; p++)
            if (counted[p]) y[a.PairExpert[p]] += w[p];
        if (y.RequiresGrad) tape.Record(new ExpertSumsNode(y, w, a, counted));
        return y;
    }

    private static bool[] Counted(Assignment a, bool[]? mask)
    {
        var counted = new bool[a.Pairs];
        for (int t = 0; t < a.Tokens; t++)
            for (int p = a.TokenOffsets[t]; p < a.TokenOffsets[t + 1]; p++)
                counted[p] = a.PairExpert[p] >= 0 && (mask is null || mask[t]);
        return counted;
    }

    /// <summary>s[e] = Σ_t x[t,e] over unmasked rows of x [T,E].</summary>
    public static Tensor ColumnSums(this Tape tape, Tensor x, bool[]? mask = null)
    {
        int e = x.Dim(-1);
        var y = tape.Output(tape.Tracks(x), e);
        y.Span.Clear();
        for (int t = 0; t < x.RowCount; t++)
            if (mask is null || mask[t]) TensorPrimitives.Add(y.Span, x.Span.Slice(t * e, e), y.Span);
        if (y.RequiresGrad) tape.Record(new ColumnSumsNode(y, x, mask));
        return y;
    }

    private static (double Mean, double Var) Moments(ReadOnlySpan<float> v)
    {
        double mean = 0, var = 0;
        foreach (float x in v) mean += x;
        mean /= Math.Max(1, v.Length);
        foreach (float x in v) var += (x - mean) * (x - mean);
        return (mean, var / Math.Max(1, v.Length));
    }

    private sealed class GatherPairsNode(Tensor y, Tensor scores, int[] offsets, int[] experts) : Node(y)
    {
        public override string Op => "GatherPairs";

        internal override void Backward(Tape tape)
        {
            int e = scores.Dim(-1);
            var ds = tape.GradOf(scores);
            var dy = Output.Grad!.Span;
            for (int t = 0; t < offsets.Length - 1; t++)
                for (int p = offsets[t]; p < offsets[t + 1]; p++) ds[t * e + experts[p]] += dy[p];
        }
    }

    private sealed class NormalizeNode(Tensor y, Tensor w, Tensor sums, int[] offsets) : Node(y)
    {
        public override string Op => "NormalizePerToken";

        internal override void Backward(Tape tape)
        {
            // y = w/S: dw_p = (dy_p − Σ_q dy_q·y_q)/S
            var dw = tape.GradOf(w);
            var dy = Output.Grad!.Span;
            var ys = Output.Span;
            for (int t = 0; t < sums.Length; t++)
            {
                float dot = 0;
                for (int p = offsets[t]; p < offsets[t + 1]; p++) dot += dy[p] * ys[p];
                for (int p = offsets[t]; p < offsets[t + 1]; p++) dw[p] += (dy[p] - dot) / sums[t];
            }
        }
    }

    private sealed class SoftmaxPerTokenNode(Tensor y, Tensor logits, int[] offsets) : Node(y)
    {
        public override string Op => "SoftmaxPerToken";

        internal override void Backward(Tape tape)
        {
            var dl = tape.GradOf(logits);
            var dy = Output.Grad!.Span;
            var ys = Output.Span;
            for (int t = 0; t < offsets.Length - 1; t++)
            {
                float dot = 0;
                for (int p = offsets[t]; p < offsets[t + 1]; p++) dot += dy[p] * ys[p];
                for (int p = offsets[t]; p < offsets[t + 1]; p++) dl[p] += ys[p] * (dy[p] - dot);
            }
        }
    }

    private sealed class ZLossNode(Tensor y, Tensor logits, Tensor lse, bool[]? mask, int counted) : Node(y)
    {
        public override string Op => "ZLoss";

        internal override void Backward(Tape tape)
        {
            // d/dl (lse²) = 2·lse·softmax(l)
            int e = logits.Dim(-1);
            var dl = tape.GradOf(logits);
            float g = Output.Grad!.Span[0] / Math.Max(1, counted);
            for (int t = 0; t < logits.RowCount; t++)
            {
                if (mask is not null && !mask[t]) continue;
                float c = 2 * g * lse[t];
                for (int j = 0; j < e; j++) dl[t * e + j] += c * MathF.Exp(logits[t * e + j] - lse[t]);
            }
        }
    }

    private sealed class CvSquaredNode(Tensor y, Tensor v) : Node(y)
    {
        public override string Op => "CvSquared";

        internal override void Backward(Tape tape)
        {
            // c = Var/μ² with Var = (1/n)Σ(v−μ)²: dc/dv_i = 2(v_i − μ)/(nμ²) − 2·Var/(nμ³)
            var (mean, var) = Moments(v.Span);
            if (mean == 0) return;
            int n = v.Length;
            float g = Output.Grad!.Span[0];
            var dv = tape.GradOf(v);
            for (int i = 0; i < n; i++)
                dv[i] += g * (float)(2 * (v[i] - mean) / (n * mean * mean) - 2 * var / (n * mean * mean * mean));
        }
    }

    private sealed class ExpertSumsNode(Tensor y, Tensor w, Assignment a, bool[] counted) : Node(y)
    {
        public override string Op => "ExpertSums";

        internal override void Backward(Tape tape)
        {
            var dw = tape.GradOf(w);
            var dy = Output.Grad!.Span;
            for (int p = 0; p < a.Pairs; p++)
                if (counted[p]) dw[p] += dy[a.PairExpert[p]];
        }
    }

    private sealed class ColumnSumsNode(Tensor y, Tensor x, bool[]? mask) : Node(y)
    {
        public override string Op => "ColumnSums";

        internal override void Backward(Tape tape)
        {
            int e = x.Dim(-1);
            var dx = tape.GradOf(x);
            for (int t = 0; t < x.RowCount; t++)
                if (mask is null || mask[t]) TensorPrimitives.Add(dx.Slice(t * e, e), Output.Grad!.Span, dx.Slice(t * e, e));
        }
    }
}
