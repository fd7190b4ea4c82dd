using MoeSharp.Autograd;
using MoeSharp.Dispatch;
using MoeSharp.Experts;
using MoeSharp.Nn;
using MoeSharp.Routing;
using MoeSharp.Tensors;

namespace MoeSharp.Layers;

/// <summary>
/// A sparse mixture-of-experts FFN layer: x [T,D] → router → (capacity) → counting-sort dispatch → grouped expert
/// GEMMs → gate-weighted combine (+ shared experts). Returns the output with every balancing term and the routing
/// statistics (<see cref="MoeResult"/>). Parameter names follow Mixtral/Qwen: gate.weight, experts.w1/w2/w3
/// (stacked), shared_expert, shared_expert_gate.
/// </summary>
public sealed class MoeLayer : Module
{
    public MoeLayer(MoeOptions options, ParameterArena arena, string name) : base(arena, name)
    {
        options.Validate();
        Options = options;
        int e = options.Experts;
        float outStd = options.InitStd;
        if (options.Router == RouterKind.Soft)
            SlotGate = Param("gate.weight", [e * options.SlotsPerExpert, options.Dim], Init.Normal(options.InitStd));
        else
            Router = LinearRouter.Create(arena, name + ".gate", options);
        Bank = new ExpertBank(arena, name + ".experts", e, options.Dim, options.ExpertHidden, options.Activation, options.InitStd, outStd);
        if (options.SharedExperts > 0)
        {
            int width = options.SharedExperts * (options.SharedHidden > 0 ? options.SharedHidden : options.ExpertHidden);
            var kind = options.Activation == ExpertActivation.SwiGlu ? MlpKind.SwiGlu : MlpKind.Gelu;
            Shared = new Mlp(arena, name + ".shared_expert", options.Dim, width, kind, options.InitStd, outStd);
            if (options.SharedGate) SharedGate = new Linear(arena, name + ".shared_expert_gate", options.Dim, 1, initStd: options.InitStd);
        }
    }

    public MoeOptions Options { get; }

    /// <summary>The token router; null for Soft MoE.</summary>
    public IRouter? Router { get; }

    /// <summary>Soft MoE's slot logits Φ [E·S, D].</summary>
    public Parameter? SlotGate { get; }

    public ExpertBank Bank { get; }
    public Mlp? Shared { get; }
    public Linear? SharedGate { get; }

    /// <summary>Runs the layer on x [T,D].</summary>
    public MoeResult Forward(Tape tape, Tensor x, RoutingContext? context = null)
    {
        context ??= new RoutingContext();
        Shapes.LastDim("MoeLayer", x, Options.Dim, $"input of {Name}");
        if (context.Mask is { } m && m.Length != x.RowCount)
            throw new ArgumentException($"MoeLayer {Name}: the mask has {m.Length} entries for {x.RowCount} tokens.");
        var (y, aux, stats, routing) = Router is null ? SoftForward(tape, x, context) : SparseForward(tape, x, context);
        if (Shared is not null)
        {
            var s = Shared.Forward(tape, x);
            if (SharedGate is not null) s = tape.MultiplyRows(s, tape.Sigmoid(SharedGate.Forward(tape, x)));
            y = tape.Add(y, s);
        }
        return new MoeResult(y, aux, Weighted(tape, aux), stats, routing);
    }

    /// <summary>
    /// Auxiliary-loss-free balancing, called after the optimizer step with that step's statistics:
    /// b_e ← b_e + γ·sign(mean(load) − load_e). Only the sigmoid router has a selection bias.
    /// </summary>
    public void UpdateBias(RoutingStats stats)
    {
        if (Router is not SigmoidBiasRouter r || Options.BiasUpdateRate == 0) return;
        double mean = stats.TokensPerExpert.Average();
        var b = r.Bias.Value.Span;
        for (int e = 0; e < b.Length; e++) b[e] += Options.BiasUpdateRate * Math.Sign(mean - stats.TokensPerExpert[e]);
    }

    private (Tensor, Dictionary<string, Tensor>, RoutingStats, RouterOutput?) SparseForward(Tape tape, Tensor x, RoutingContext context)
    {
        var r = Router!.Route(tape, x, context);
        var dispatch = r.TokenChoice && Options.CapacityFactor > 0 ? ApplyCapacity(r, x.RowCount) : r.PairExpert;
        var assignment = new Assignment(Options.Experts, r.TokenOffsets, dispatch);
        var y = tape.ExpertFfn(x, assignment, r.Weights, Bank);
        var counts = Counts(r, context.Mask);
        var aux = BalanceTerms(tape, r, assignment, counts, context);
        return (y, aux, Stats(r, counts, assignment.Dropped, context.Mask), r);
    }

    /// <summary>
    /// Soft MoE: dispatch weights are a softmax over tokens per slot, combine weights a softmax over slots per
    /// token; slot inputs Dᵀ·x go through their expert, outputs come back as C·ỹ. Padding tokens (mask false) get no
    /// dispatch weight, so they never reach a slot, and are left out of the statistics and the z-loss; their own
    /// outputs are still computed, from the slots the real tokens filled.
    /// </summary>
    private (Tensor, Dictionary<string, Tensor>, RoutingStats, RouterOutput?) SoftForward(Tape tape, Tensor x, RoutingContext context)
    {
        int slots = Options.Experts * Options.SlotsPerExpert, tokens = x.RowCount;
        var mask = context.Mask;
        if (mask is not null && mask.Length != tokens) throw new ArgumentException($"MoeLayer {Name}: the mask has {mask.Length} entries for {tokens} tokens.");
        if (mask is not null && !mask.Contains(true)) throw new ArgumentException($"MoeLayer {Name}: every token is masked; Soft MoE needs at least one real token to fill its slots.");
        var logits = tape.Linear(x, SlotGate!.Value);                    // [T, E·S]
        var dispatchLogits = logits;
        if (mask is not null)
        {
            // exp(−1e9 − max) is exactly 0 in fp32: a padding token's dispatch weight and its gradient vanish.
            var padding = tape.AllocateZeroed(tokens, slots); // [T, E·S]
            for (int t = 0; t < tokens; t++)
                if (!mask[t]) padding.Span.Slice(t * slots, slots).Fill(-1e9f);
            dispatchLogits = tape.Add(logits, padding);
        }
        var dispatch = tape.Transpose(tape.Softmax(tape.Transpose(dispatchLogits))); // [T, E·S], columns sum to 1
        var combine = tape.Softmax(logits);                              // [T, E·S], rows sum to 1
        var slotInputs = tape.MatMul(dispatch, x, transA: true);         // [E·S, D]
        var slotExpert = Enumerable.Range(0, slots).Select(s => s / Options.SlotsPerExpert).ToArray();
        var ones = tape.Allocate(slots);
        ones.Span.Fill(1f);
        var slotOutputs = tape.ExpertFfn(slotInputs, new Assignment(Options.Experts, 1, slotExpert), ones, Bank); // [E·S, D]
        var y = tape.MatMul(combine, slotOutputs);                       // [T, D]
        // Statistics: each token counts for the expert that owns its largest combine weight.
        var counts = new int[Options.Experts];
        var importance = new float[Options.Experts];
        int real = mask?.Count(m => m) ?? tokens;
        for (int t = 0; t < tokens; t++)
        {
            if (mask is not null && !mask[t]) continue;
            var row = combine.Span.Slice(t * slots, slots);
            counts[slotExpert[TensorPrimitives.IndexOfMax(row)]]++;
            for (int s = 0; s < slots; s++) importance[slotExpert[s]] += row[s] / real;
        }
        var aux = new Dictionary<string, Tensor> { ["z_loss"] = tape.ZLoss(logits, mask) };
        return (y, aux, new RoutingStats
        {
            Layer = Name, Tokens = real, TokensPerExpert = counts, Importance = importance, LoadCv = RoutingStats.Cv(counts),
        }, null);
    }

    /// <summary>
    /// Marks pairs beyond each expert's capacity ⌈factor·T·K/E⌉ (at least MinCapacity) as dropped (−1): by token
    /// position, or keeping the highest gate weights.
    /// </summary>
    private int[] ApplyCapacity(RouterOutput r, int tokens)
    {
        int e = Options.Experts;
        int capacity = Math.Max(Options.MinCapacity, (int)Math.Ceiling(Options.CapacityFactor * r.PairExpert.Length / e));
        var kept = (int[])r.PairExpert.Clone();
        var used = new int[e];
        if (Options.DropPolicy == DropPolicy.Position)
        {
            for (int p = 0; p < kept.Length; p++)
                if (used[kept[p]]++ >= capacity) kept[p] = -1;
            return kept;
        }
        var order = Enumerable.Range(0, kept.Length).ToArray();
        var w = r.Weights.Span.ToArray();
        // Highest weight first; equal weights keep token order.
        Array.Sort(order, (a, b) => w[a] != w[b] ? w[b].CompareTo(w[a]) : a.CompareTo(b));
        foreach (int p in order)
            if (used[kept[p]]++ >= capacity) kept[p] = -1;
        return kept;
    }

    /// <summary>[E] assignments per expert among unmasked tokens, as the router chose them (before capacity).</summary>
    private int[] Counts(RouterOutput r, bool[]? mask)
    {
        var counts = new int[Options.Experts];
        for (int t = 0; t < r.TokenOffsets.Length - 1; t++)
            if (mask is null || mask[t])
                for (int p = r.TokenOffsets[t]; p < r.TokenOffsets[t + 1]; p++) counts[r.PairExpert[p]]++;
        return counts;
    }

    /// <summary>
    /// Every balancing term, unweighted, each documented where it is formed:
    /// <list type="bullet">
    /// <item><c>load_balance</c> (Switch/GShard): E·Σ_e f_e·P_e, f_e = share of this layer's assignments routed to e
    /// (per assignment: 1 at perfect balance; per token: K), P_e = mean router probability of e. Gradient flows through P.</item>
    /// <item><c>z_loss</c> (ST-MoE): mean over tokens of logsumexp(logits)².</item>
    /// <item><c>importance</c> (Shazeer 2017): CV² of Σ_t gate weights per expert.</item>
    /// <item><c>load</c>: CV² of Σ_t router probability per expert (a smooth load estimate).</item>
    /// <item><c>sequence_balance</c> (DeepSeek-V3): mean over sequences of Σ_e f_{s,e}·P_{s,e}, with
    /// f_{s,e} = E/(K·L)·count within sequence s of length L, P_{s,e} = mean probability in s; 1 at perfect balance.</item>
    /// </list>
    /// Padding tokens (mask false) are left out of every term.
    /// </summary>
    private Dictionary<string, Tensor> BalanceTerms(Tape tape, RouterOutput r, Assignment a, int[] counts, RoutingContext context)
    {
        int e = Options.Experts, tokens = r.TokenOffsets.Length - 1;
        var mask = context.Mask;
        int live = mask is null ? tokens : mask.Count(m => m);
        long assignments = counts.Sum(c => (long)c);
        var terms = new Dictionary<string, Tensor>();

        var c = new float[tokens * e]; // [T,E] ∂L/∂P for the load-balancing loss
        if (live > 0 && assignments > 0)
        {
            double norm = Options.LoadBalanceNormalization == LoadBalanceNormalization.PerAssignment ? assignments : live;
            for (int t = 0; t < tokens; t++)
                if (mask is null || mask[t])
                    for (int j = 0; j < e; j++) c[t * e + j] = (float)(e * (counts[j] / norm) / live);
        }
        terms["load_balance"] = tape.WeightedSum(r.Probabilities, c);
        terms["z_loss"] = tape.ZLoss(r.Logits, mask);
        terms["importance"] = tape.CvSquared(tape.ExpertSums(r.Weights, a, mask));
        terms["load"] = tape.CvSquared(tape.ColumnSums(r.Probabilities, mask));
        terms["sequence_balance"] = tape.WeightedSum(r.Probabilities, SequenceWeights(r, context, tokens, e));
        return terms;
    }

    private float[] SequenceWeights(RouterOutput r, RoutingContext context, int tokens, int e)
    {
        int sequences = Math.Max(1, context.Sequences);
        if (tokens % sequences != 0)
            throw new ArgumentException($"MoeLayer {Name}: {tokens} tokens do not split into {sequences} equal sequences.");
        int len = tokens / sequences;
        var c = new float[tokens * e]; // [T,E]
        var count = new int[e];
        for (int s = 0; s < sequences; s++)
        {
            Array.Clear(count);
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
                for (int j = 0; j < e; j++) c[t * e + j] = (float)(e / (k * live) * count[j] / live / sequences);
            }
        }
        return c;
    }

    private Tensor? Weighted(Tape tape, IReadOnlyDictionary<string, Tensor> aux)
    {
        Tensor? total = null;
        foreach (var (name, coef) in new[] { ("load_balance", Options.LoadBalanceCoef), ("z_loss", Options.ZLossCoef),
                     ("importance", Options.ImportanceCoef), ("load", Options.LoadCoef), ("sequence_balance", Options.SequenceBalanceCoef) })
        {
            if (coef == 0 || !aux.TryGetValue(name, out var term)) continue;
            var scaled = tape.Scale(term, coef);
            total = total is null ? scaled : tape.Add(total, scaled);
        }
        return total;
    }

    private RoutingStats Stats(RouterOutput r, int[] counts, int dropped, bool[]? mask)
    {
        int e = Options.Experts, tokens = r.TokenOffsets.Length - 1, live = 0;
        var importance = new double[e];
        double entropy = 0;
        var p = r.Probabilities.Span;
        bool pairsAcross = r.PairExpert.Length > tokens;
        var co = pairsAcross ? new int[e * e] : [];
        for (int t = 0; t < tokens; t++)
        {
            if (mask is not null && !mask[t]) continue;
            live++;
            for (int j = 0; j < e; j++)
            {
                float pj = p[t * e + j];
                importance[j] += pj;
                if (pj > 0) entropy -= pj * Math.Log(pj);
            }
            if (!pairsAcross) continue;
            for (int a = r.TokenOffsets[t]; a < r.TokenOffsets[t + 1]; a++)
                for (int b = r.TokenOffsets[t]; b < r.TokenOffsets[t + 1]; b++)
                    co[r.PairExpert[a] * e + r.PairExpert[b]]++;
        }
        return new RoutingStats
        {
            Layer = Name,
            Tokens = live,
            TokensPerExpert = counts,
            Importance = importance.Select(v => (float)(v / Math.Max(1, live))).ToArray(),
            Entropy = (float)(entropy / Math.Max(1, live)),
            Dropped = dropped,
            LoadCv = RoutingStats.Cv(counts),
            CoActivation = co,
        };
    }
}
