using MoeSharp.Autograd;
using MoeSharp.Tensors;

namespace MoeSharp.Routing;

/// <summary>
/// Differentiable ops between per-token scores [T,E] and per-pair gate values [P] (pairs in token-major order,
/// token t owning pairs [offsets[t], offsets[t+1])). The balancing terms are in <see cref="Balance"/>.
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
        var y = tape.Output(tape.Tracks(w), w.Shape);
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
}
