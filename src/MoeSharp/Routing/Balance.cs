using MoeSharp.Autograd;
using MoeSharp.Tensors;

namespace MoeSharp.Routing;

/// <summary>How the Switch/GShard load-balancing loss normalises the token fraction f.</summary>
public enum LoadBalanceNormalization
{
    /// <summary>f_e = count_e / (T·K): the loss is 1 at perfect balance for any K (Switch for K = 1).</summary>
    PerAssignment,

    /// <summary>f_e = count_e / T: the loss is K at perfect balance (Hugging Face Mixtral's load_balancing_loss_func).</summary>
    PerToken,
}

/// <summary>
/// Every balancing term of a routed layer, unweighted, each documented where it is formed, and the ops they are
/// made of. Padding tokens (mask false) are left out of every term.
/// <list type="bullet">
/// <item><c>load_balance</c> (Switch/GShard): E·Σ_e f_e·P_e, f_e = share of this layer's assignments routed to e
/// (per assignment: 1 at perfect balance; per token: K), P_e = mean router probability of e. Gradient flows through P.</item>
/// <item><c>z_loss</c> (ST-MoE): mean over tokens of logsumexp(logits)².</item>
/// <item><c>importance</c> (Shazeer 2017): CV² of Σ_t gate weights per expert.</item>
/// <item><c>load</c>: CV² of Σ_t router probability per expert (a smooth load estimate).</item>
/// <item><c>sequence_balance</c> (DeepSeek-V3): mean over sequences of Σ_e f_{s,e}·P_{s,e}, with
/// f_{s,e} = E/(K·L)·count within sequence s of length L, P_{s,e} = mean probability in s; 1 at perfect balance.</item>
/// </list>
/// Bias balancing, the auxiliary-loss-free one, is <see cref="SigmoidBiasRouter.UpdateBias"/>.
/// </summary>
public static class Balance
{
    /// <summary>The term names, in the order <see cref="Weighted"/> sums them.</summary>
    public const string LoadBalance = "load_balance", ZLossName = "z_loss", Importance = "importance", Load = "load", SequenceBalance = "sequence_balance";

    /// <summary>counts [E] = assignments per expert among unmasked tokens, as the router chose them (before capacity).</summary>
    public static void Counts(RouterOutput r, bool[]? mask, Span<int> counts)
    {
        counts.Clear();
        for (int t = 0; t < r.TokenOffsets.Length - 1; t++)
            if (mask is null || mask[t])
                for (int p = r.TokenOffsets[t]; p < r.TokenOffsets[t + 1]; p++) counts[r.PairExpert[p]]++;
    }

    /// <summary>
    /// Every term of a routed layer. <paramref name="dispatch"/> [P] is the expert of each pair after capacity (−1
    /// when dropped), <paramref name="counts"/> [E] what <see cref="Counts"/> gives.
    /// </summary>
    public static Dictionary<string, Tensor> Terms(Tape tape, RouterOutput r, int[] dispatch, ReadOnlySpan<int> counts,
        RoutingContext context, LoadBalanceNormalization normalization)
    {
        int e = r.Probabilities.Dim(-1), tokens = r.TokenOffsets.Length - 1;
        var mask = context.Mask;
        int live = Live(mask, tokens);
        long assignments = 0;
        foreach (int c in counts) assignments += c;

        var lb = tape.AllocateZeroed(tokens, e); // [T,E] ∂L/∂P for the load-balancing loss
        var lbs = lb.Span;
        if (live > 0 && assignments > 0)
        {
            double norm = normalization == LoadBalanceNormalization.PerAssignment ? assignments : live;
            for (int t = 0; t < tokens; t++)
                if (mask is null || mask[t])
                    for (int j = 0; j < e; j++) lbs[t * e + j] = (float)(e * (counts[j] / norm) / live);
        }
        return new Dictionary<string, Tensor>(5)
        {
            [LoadBalance] = tape.WeightedSum(r.Probabilities, lb.Storage),
            [ZLossName] = tape.ZLoss(r.Logits, mask),
            [Importance] = tape.CvSquared(tape.ExpertSums(r.Weights, e, r.TokenOffsets, dispatch, mask)),
            [Load] = tape.CvSquared(tape.ColumnSums(r.Probabilities, mask)),
            [SequenceBalance] = tape.WeightedSum(r.Probabilities, SequenceWeights(tape, r, context, tokens, e).Storage),
        };
    }

    /// <summary>Σ coef·term over the terms present with a non-zero weight; null when there is none.</summary>
    public static Tensor? Weighted(Tape tape, IReadOnlyDictionary<string, Tensor> terms, RouterOptions o)
    {
        Tensor? total = null;
        Add(tape, terms, LoadBalance, o.LoadBalanceCoef, ref total);
        Add(tape, terms, ZLossName, o.ZLossCoef, ref total);
        Add(tape, terms, Importance, o.ImportanceCoef, ref total);
        Add(tape, terms, Load, o.LoadCoef, ref total);
        Add(tape, terms, SequenceBalance, o.SequenceBalanceCoef, ref total);
        return total;
    }

    private static void Add(Tape tape, IReadOnlyDictionary<string, Tensor> terms, string name, float coef, ref Tensor? total)
    {
        if (coef == 0 || !terms.TryGetValue(name, out var term)) return;
        var scaled = tape.Scale(term, coef);
        total = total is null ? scaled : tape.Add(total, scaled);
    }

    /// <summary>Unmasked tokens among <paramref name="tokens"/>.</summary>
    public static int Live(bool[]? mask, int tokens)
    {
        if (mask is null) return tokens;
        int live = 0;
        foreach (bool m in mask) if (m) live++;
        return live;
    }

    /// <summary>[T,E] the constant c of sequence_balance = Σ c ⊙ P.</summary>
    private static Tensor SequenceWeights(Tape tape, RouterOutput r, RoutingContext context, int tokens, int e)
    {
        int sequences = Math.Max(1, context.Sequences);
        if (tokens % sequences != 0)
            throw new ArgumentException($"RoutingContext.Sequences: {tokens} tokens do not split into {sequences} equal sequences.");
        int len = tokens / sequences;
        var c = tape.AllocateZeroed(tokens, e); // [T,E]
        var cs = c.Span;
        Span<int> count = e <= 1024 ? stackalloc int[e] : new int[e]; // [E]
        for (int s = 0; s < sequences; s++)
        {
            count.Clear();
            int live = 0, pairs = 0;
            for (int t = s * len; t < (s + 1) * len; t++)
            {
                if (context.Mask is { } m && !m[t]) continue;
                live++;
                for (int p = r.TokenOffsets[t]; p < r.TokenOffsets[t + 1]; p++) { count[r.PairExpert[p]]++; pairs++; }
            }
            if (live == 0 || pairs == 0) continue;
            double k = (double)pairs / live;
            for (int t = s * len; t < (s + 1) * len; t++)
            {
                if (context.Mask is { } m && !m[t]) continue;
                for (int j = 0; j < e; j++) cs[t * e + j] = (float)(e / (k * live) * count[j] / live / sequences);
            }
        }
        return c;
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

    /// <summary>
    /// s [E]: s[e] = Σ of w[p] over the pairs p with dispatch[p] = e (dropped pairs, −1, and masked tokens excluded);
    /// w [P] and dispatch [P] are token-major, token t owning pairs [tokenOffsets[t], tokenOffsets[t+1]).
    /// </summary>
    public static Tensor ExpertSums(this Tape tape, Tensor w, int experts, int[] tokenOffsets, int[] dispatch, bool[]? mask = null)
    {
        var y = tape.Output(tape.Tracks(w), experts);
        y.Span.Clear();
        var ws = w.Span;
        var ys = y.Span;
        for (int t = 0; t < tokenOffsets.Length - 1; t++)
            if (mask is null || mask[t])
                for (int p = tokenOffsets[t]; p < tokenOffsets[t + 1]; p++)
                    if (dispatch[p] >= 0) ys[dispatch[p]] += ws[p];
        if (y.RequiresGrad) tape.Record(new ExpertSumsNode(y, w, tokenOffsets, dispatch, mask));
        return y;
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

    private sealed class ExpertSumsNode(Tensor y, Tensor w, int[] offsets, int[] dispatch, bool[]? mask) : Node(y)
    {
        public override string Op => "ExpertSums";

        internal override void Backward(Tape tape)
        {
            var dw = tape.GradOf(w);
            var dy = Output.Grad!.Span;
            for (int t = 0; t < offsets.Length - 1; t++)
                if (mask is null || mask[t])
                    for (int p = offsets[t]; p < offsets[t + 1]; p++)
                        if (dispatch[p] >= 0) dw[p] += dy[dispatch[p]];
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
