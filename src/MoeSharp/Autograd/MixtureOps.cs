using MoeSharp.Tensors;

namespace MoeSharp.Autograd;

/// <summary>
/// Differentiable ops of the classic mixture: N rows, E experts, O outputs per expert. The mixture likelihood is
/// written so that its gradients are the posterior responsibilities of Jordan and Jacobs, computed once in the
/// forward and reused by the backward.
/// </summary>
public static class MixtureOps
{
    /// <summary>Logit given to experts outside a row's top-k: exp of it underflows to exactly 0, with no ∞ arithmetic.</summary>
    public const float Masked = -1e30f;

    /// <summary>
    /// Negative log-likelihood of the mixture,
    /// L = −(1/Σw) Σ_n w_n · log Σ_e softmax(a_n)_e · exp(ℓ_ne),
    /// from gate logits a [N,E] and each expert's log-likelihood of the row's target ℓ [N,E], with optional row
    /// weights w [N]. With the posterior h_ne = g_ne·exp(ℓ_ne) / Σ_k g_nk·exp(ℓ_nk):
    /// ∂L/∂ℓ_ne = −w_n·h_ne/Σw and ∂L/∂a_ne = −w_n·(h_ne − g_ne)/Σw.
    /// </summary>
    public static Tensor MixtureNll(this Tape tape, Tensor gateLogits, Tensor logLikelihood, float[]? rowWeights = null)
    {
        Shapes.Same("MixtureNll", gateLogits, logLikelihood);
        int e = gateLogits.Dim(-1), n = gateLogits.RowCount;
        if (rowWeights is not null && rowWeights.Length != n) throw new ArgumentException($"MixtureNll: {rowWeights.Length} row weights for {n} rows.");
        var y = tape.Output(tape.Tracks(gateLogits, logLikelihood), 1);
        var g = tape.Allocate(n, e); // [N,E] gate probabilities
        var h = tape.Allocate(n, e); // [N,E] posterior responsibilities
        double total = Posterior(gateLogits.Span, logLikelihood.Span, g.Span, h.Span, e, rowWeights, out double weight);
        float scale = weight > 0 ? (float)(1 / weight) : 0;
        y[0] = (float)(-total * scale);
        if (y.RequiresGrad) tape.Record(new MixtureNllNode(y, gateLogits, logLikelihood, g, h, rowWeights, scale));
        return y;
    }

    /// <summary>
    /// Gate probabilities g = softmax(a) and posteriors h ∝ g·exp(ℓ), per row, in log space; returns Σ_n w_n·log p(y_n)
    /// (the weighted log-likelihood) and the total weight.
    /// </summary>
    public static double Posterior(ReadOnlySpan<float> gateLogits, ReadOnlySpan<float> logLikelihood, Span<float> g, Span<float> h, int experts,
        float[]? rowWeights, out double weight)
    {
        int n = gateLogits.Length / experts;
        double total = 0;
        weight = 0;
        for (int r = 0; r < n; r++)
        {
            var a = gateLogits.Slice(r * experts, experts);
            var l = logLikelihood.Slice(r * experts, experts);
            var gr = g.Slice(r * experts, experts);
            var hr = h.Slice(r * experts, experts);
            Kernels.Softmax.Rows(a, gr, experts);
            float lseA = Kernels.Softmax.LogSumExp(a);
            // log g_e + ℓ_e, then a stable softmax over e gives h and its log-sum-exp gives log p(y).
            for (int j = 0; j < experts; j++) hr[j] = a[j] - lseA + l[j];
            float logP = Kernels.Softmax.LogSumExp(hr);
            Kernels.Softmax.Rows(hr, hr, experts);
            double w = rowWeights?[r] ?? 1;
            total += w * logP;
            weight += w;
        }
        return total;
    }

    /// <summary>y[n,:] = Σ_e g[n,e]·s[n,e,:]: gate-weighted sum of stacked expert outputs. g [N,E], s [N,E·O] → [N,O].</summary>
    public static Tensor MixRows(this Tape tape, Tensor gates, Tensor stacked)
    {
        int e = gates.Dim(-1), n = gates.RowCount;
        if (stacked.RowCount != n || stacked.Dim(-1) % e != 0)
            throw new ArgumentException($"MixRows: outputs {Shapes.Format(stacked.Shape)} are not {n} rows of {e} experts' outputs (gates {Shapes.Format(gates.Shape)}).");
        int o = stacked.Dim(-1) / e;
        var y = tape.Output(tape.Tracks(gates, stacked), n, o);
        var ys = y.Span;
        ys.Clear();
        for (int r = 0; r < n; r++)
            for (int j = 0; j < e; j++)
                TensorPrimitives.MultiplyAdd(stacked.Span.Slice((r * e + j) * o, o), gates[r * e + j], ys.Slice(r * o, o), ys.Slice(r * o, o));
        if (y.RequiresGrad) tape.Record(new MixRowsNode(y, gates, stacked, e, o));
        return y;
    }

    /// <summary>Keeps each row's k largest logits and sets the rest to <see cref="Masked"/>: a softmax after it is the top-k gate, renormalised.</summary>
    public static Tensor TopKMask(this Tape tape, Tensor logits, int k)
    {
        int e = logits.Dim(-1), n = logits.RowCount;
        if (k < 1 || k > e) throw new ArgumentOutOfRangeException(nameof(k), $"TopKMask: k must be in [1, {e}], got {k}.");
        var y = tape.Output(tape.Tracks(logits), logits.Shape);
        var keep = SelectTopK(logits.Span, e, k);
        for (int i = 0; i < keep.Length; i++) y[i] = keep[i] ? logits[i] : Masked;
        if (y.RequiresGrad) tape.Record(new TopKMaskNode(y, logits, keep));
        return y;
    }

    /// <summary>[N·E] true where an entry is among its row's k largest (ties to the lower index).</summary>
    public static bool[] SelectTopK(ReadOnlySpan<float> logits, int experts, int k)
    {
        int n = logits.Length / experts;
        var keep = new bool[logits.Length];
        var values = new float[n * k];
        var indices = new int[n * k];
        Kernels.TopK.Rows(logits, experts, k, values, indices);
        for (int r = 0; r < n; r++)
            for (int j = 0; j < k; j++) keep[r * experts + indices[r * k + j]] = true;
        return keep;
    }

    /// <summary>Mean over rows of the gate's entropy −Σ_e g·log g, g = softmax(a); a [N,E] → scalar (nats).</summary>
    public static Tensor GateEntropy(this Tape tape, Tensor gateLogits)
    {
        int e = gateLogits.Dim(-1), n = gateLogits.RowCount;
        var y = tape.Output(tape.Tracks(gateLogits), 1);
        var logg = tape.Allocate(n, e); // [N,E]
        Kernels.Softmax.LogRows(gateLogits.Span, logg.Span, e);
        double total = 0;
        for (int i = 0; i < logg.Length; i++)
        {
            float p = MathF.Exp(logg[i]);
            if (p > 0) total -= p * logg[i];
        }
        y[0] = n == 0 ? 0 : (float)(total / n);
        if (y.RequiresGrad) tape.Record(new GateEntropyNode(y, gateLogits, logg));
        return y;
    }

    private sealed class MixtureNllNode(Tensor y, Tensor a, Tensor l, Tensor g, Tensor h, float[]? rowWeights, float scale) : Node(y)
    {
        public override string Op => "MixtureNll";

        internal override void Backward(Tape tape)
        {
            int e = a.Dim(-1);
            float dy = Output.Grad!.Span[0] * scale;
            var gs = g.Span;
            var hs = h.Span;
            var da = a.RequiresGrad ? tape.GradOf(a) : default;
            var dl = l.RequiresGrad ? tape.GradOf(l) : default;
            for (int i = 0; i < hs.Length; i++)
            {
                float w = dy * (rowWeights?[i / e] ?? 1);
                if (a.RequiresGrad) da[i] -= w * (hs[i] - gs[i]);
                if (l.RequiresGrad) dl[i] -= w * hs[i];
            }
        }
    }

    private sealed class MixRowsNode(Tensor y, Tensor gates, Tensor stacked, int e, int o) : Node(y)
    {
        public override string Op => "MixRows";

        internal override void Backward(Tape tape)
        {
            var dy = Output.Grad!.Span;
            var dg = gates.RequiresGrad ? tape.GradOf(gates) : default;
            var ds = stacked.RequiresGrad ? tape.GradOf(stacked) : default;
            for (int r = 0; r < gates.RowCount; r++)
                for (int j = 0; j < e; j++)
                {
                    var dyr = dy.Slice(r * o, o);
                    if (gates.RequiresGrad) dg[r * e + j] += TensorPrimitives.Dot(dyr, stacked.Span.Slice((r * e + j) * o, o));
                    if (stacked.RequiresGrad)
                    {
                        var dsr = ds.Slice((r * e + j) * o, o);
                        TensorPrimitives.MultiplyAdd(dyr, gates[r * e + j], dsr, dsr);
                    }
                }
        }
    }

    private sealed class TopKMaskNode(Tensor y, Tensor logits, bool[] keep) : Node(y)
    {
        public override string Op => "TopKMask";

        internal override void Backward(Tape tape)
        {
            var dx = tape.GradOf(logits);
            var dy = Output.Grad!.Span;
            for (int i = 0; i < keep.Length; i++)
                if (keep[i]) dx[i] += dy[i];
        }
    }

    private sealed class GateEntropyNode(Tensor y, Tensor a, Tensor logg) : Node(y)
    {
        public override string Op => "GateEntropy";

        internal override void Backward(Tape tape)
        {
            // H = −Σ g·log g with g = softmax(a): ∂H/∂a_j = −g_j·(log g_j + H_row).
            int e = a.Dim(-1), n = a.RowCount;
            var da = tape.GradOf(a);
            var lg = logg.Span;
            float dy = Output.Grad!.Span[0] / Math.Max(1, n);
            for (int r = 0; r < n; r++)
            {
                float hRow = 0;
                for (int j = r * e; j < (r + 1) * e; j++)
                {
                    float p = MathF.Exp(lg[j]);
                    if (p > 0) hRow -= p * lg[j];
                }
                for (int j = r * e; j < (r + 1) * e; j++)
                {
                    float p = MathF.Exp(lg[j]);
                    if (p > 0) da[j] -= dy * p * (lg[j] + hRow);
                }
            }
        }
    }
}
