using MoeSharp.Autograd;
using MoeSharp.Kernels;
using MoeSharp.Nn;
using MoeSharp.Tensors;

namespace MoeSharp.Routing;

/// <summary>What a router needs besides x: padding, token ids, training mode, and a generator for noise.</summary>
public sealed record RoutingContext
{
    /// <summary>[T] false for padding tokens, which balancing ignores; null means every token counts.</summary>
    public bool[]? Mask { get; init; }

    /// <summary>[T] token ids, required by hash routing.</summary>
    public int[]? TokenIds { get; init; }

    /// <summary>Sequences the T tokens form (equal lengths), for the per-sequence balance loss.</summary>
    public int Sequences { get; init; } = 1;

    /// <summary>Training enables jitter and router noise.</summary>
    public bool Training { get; init; }

    /// <summary>The training step; noise is drawn from (layer seed, step), so a resumed run draws the same noise.</summary>
    public long Step { get; init; }
}

/// <summary>
/// A router's decision. Logits [T,E] are always fp32. Probabilities [T,E] are the normalised scores the balance
/// losses use. Pairs are token-major (token t owns pairs [TokenOffsets[t], TokenOffsets[t+1])) with expert
/// PairExpert[p] and gate weight Weights[p]; Weights carries the router's gradient.
/// </summary>
public sealed record RouterOutput(Tensor Logits, Tensor Probabilities, int[] TokenOffsets, int[] PairExpert, Tensor Weights)
{
    /// <summary>True when the router decides per token, so capacity limits apply afterwards.</summary>
    public bool TokenChoice { get; init; } = true;
}

/// <summary>Scores experts for each token and picks the pairs that will be computed.</summary>
public interface IRouter
{
    /// <summary>Routes x [T,D]: scores, probabilities, the chosen pairs and their gate weights, whose buffers live until the tape's Reset.</summary>
    RouterOutput Route(Tape tape, Tensor x, RoutingContext context);
}

/// <summary>The routers that score with a linear gate W [E,D] (Mixtral's block_sparse_moe.gate.weight).</summary>
public abstract class LinearRouter : Module, IRouter
{
    /// <summary>Registers the gate W [E,D] as <c>{name}.weight</c>.</summary>
    protected LinearRouter(ParameterArena arena, string name, RouterOptions options) : base(arena, name)
    {
        Options = options;
        Weight = Param("weight", [options.Experts, options.Dim], Init.Normal(options.InitStd));
        if (options.GateBias) GateBias = Param("bias", [options.Experts], Init.Zeros);
    }

    /// <summary>The gate bias [E] (<see cref="RouterOptions.GateBias"/>); null without one.</summary>
    public Parameter? GateBias { get; }

    /// <summary>logits [T,E] = x·Wᵀ (+ the gate bias).</summary>
    protected Tensor GateLogits(Tape tape, Tensor x) => tape.Linear(x, Weight.Value, GateBias?.Value);

    /// <summary>The validated router settings.</summary>
    public RouterOptions Options { get; }

    /// <summary>The gate W [E,D]: logits = x·Wᵀ.</summary>
    public Parameter Weight { get; }

    /// <summary>The generator for this call's noise, a function of the layer's seed and the step only.</summary>
    protected Rng Noise(RoutingContext context) => new(Options.Seed * 0x9E3779B97F4A7C15UL ^ (ulong)context.Step);

    /// <inheritdoc />
    public abstract RouterOutput Route(Tape tape, Tensor x, RoutingContext context);

    /// <summary>Token-major offsets [T+1] for exactly k pairs per token, owned by the tape until its Reset.</summary>
    internal static int[] Uniform(Tape tape, int tokens, int k)
    {
        var offsets = tape.RentInts(tokens + 1);
        for (int t = 0; t <= tokens; t++) offsets[t] = t * k;
        return offsets;
    }

    /// <summary>Top-k column indices [T·K] per row of <paramref name="scores"/> [T,E], ties to the lower index; owned by the tape until its Reset.</summary>
    protected static int[] Select(Tape tape, ReadOnlySpan<float> scores, int experts, int k)
    {
        int tokens = scores.Length / experts;
        var values = tape.Allocate(tokens * k); // [T·K] the selected scores, unused
        var indices = tape.RentInts(tokens * k);
        TopK.Rows(scores, experts, k, values.Span, indices);
        return indices;
    }

    /// <summary>
    /// Group-limited routing (DeepSeek): sets to −∞ every score of <paramref name="row"/> [E] outside the
    /// <paramref name="top"/> best of its <paramref name="groupScore"/>.Length equal groups. A group scores its best
    /// value (DeepSeek-V2's group_limited_greedy) or, with <paramref name="sumOfTwo"/>, the sum of its two best
    /// (DeepSeek-V3's noaux_tc). <paramref name="kept"/> and <paramref name="scratch"/> are [top] workspaces.
    /// </summary>
    internal static void KeepBestGroups(Span<float> row, int top, bool sumOfTwo, Span<float> groupScore, Span<int> kept, Span<float> scratch)
    {
        int groups = groupScore.Length, size = row.Length / groups;
        for (int g = 0; g < groups; g++)
        {
            float best = float.NegativeInfinity, second = float.NegativeInfinity;
            foreach (float v in row.Slice(g * size, size))
            {
                if (v > best) (best, second) = (v, best);
                else if (v > second) second = v;
            }
            groupScore[g] = sumOfTwo && size > 1 ? best + second : best;
        }
        TopK.Rows(groupScore, groups, top, scratch, kept);
        for (int g = 0; g < groups; g++)
            if (kept.IndexOf(g) < 0) row.Slice(g * size, size).Fill(float.NegativeInfinity);
    }

    /// <summary>Creates the router an options object names.</summary>
    public static IRouter Create(ParameterArena arena, string name, RouterOptions o) => o.Router switch
    {
        RouterKind.SoftmaxTopK or RouterKind.Dense => new SoftmaxTopKRouter(arena, name, o),
        RouterKind.TopKSoftmax => new TopKSoftmaxRouter(arena, name, o),
        RouterKind.SigmoidBias => new SigmoidBiasRouter(arena, name, o),
        RouterKind.Switch => new SwitchRouter(arena, name, o),
        RouterKind.NoisyTopK => new NoisyTopKRouter(arena, name, o),
        RouterKind.ExpertChoice => new ExpertChoiceRouter(arena, name, o),
        RouterKind.Sinkhorn => new SinkhornRouter(arena, name, o),
        RouterKind.Hash => new HashRouter(o),
        _ => throw new ArgumentException($"{o.GetType().Name}.Router: {o.Router} has no token router (Soft MoE mixes slots, see SoftMoe).", nameof(o)),
    };
}

/// <summary>
/// p = softmax(x·Wᵀ); the top-k of p; weights p, renormalised over the k when NormalizeTopK, times RoutedScaling.
/// With Groups &gt; 1 the k come from the TopGroups groups whose best p is highest (DeepSeek-V2's
/// group_limited_greedy). With K = E: the dense mixture.
/// </summary>
public sealed class SoftmaxTopKRouter(ParameterArena arena, string name, RouterOptions o) : LinearRouter(arena, name, o)
{
    /// <inheritdoc />
    public override RouterOutput Route(Tape tape, Tensor x, RoutingContext context)
    {
        var logits = GateLogits(tape, x);
        var p = tape.Softmax(logits);
        int k = Options.TopK, e = Options.Experts, tokens = x.RowCount;
        int[] experts;
        if (Options.Groups > 1)
        {
            // Softmax keeps each token's order, so the groups' best logits rank them as their best probabilities do.
            var choice = tape.Allocate(tokens, e).Span; // [T,E] logits, −∞ outside the kept groups
            logits.Span.CopyTo(choice);
            int groups = Options.Groups, top = Options.TopGroups;
            Span<float> groupScore = groups <= 1024 ? stackalloc float[groups] : new float[groups]; // [groups]
            Span<int> kept = top <= 1024 ? stackalloc int[top] : new int[top];                      // [TopGroups]
            Span<float> scratch = top <= 1024 ? stackalloc float[top] : new float[top];             // [TopGroups] their scores, unused
            for (int t = 0; t < tokens; t++) KeepBestGroups(choice.Slice(t * e, e), top, sumOfTwo: false, groupScore, kept, scratch);
            experts = Select(tape, choice, e, k);
        }
        else
        {
            experts = Select(tape, logits.Span, e, k);
        }
        var offsets = Uniform(tape, tokens, k);
        var w = tape.GatherPairs(p, offsets, experts);
        if (Options.NormalizeTopK && k > 1 && k < e) w = tape.NormalizePerToken(w, offsets);
        if (Options.RoutedScaling != 1f) w = tape.Scale(w, Options.RoutedScaling);
        return new RouterOutput(logits, p, offsets, experts, w);
    }
}

/// <summary>Top-k of the logits, then softmax over those k logits (GPT-OSS).</summary>
public sealed class TopKSoftmaxRouter(ParameterArena arena, string name, RouterOptions o) : LinearRouter(arena, name, o)
{
    /// <inheritdoc />
    public override RouterOutput Route(Tape tape, Tensor x, RoutingContext context)
    {
        var logits = GateLogits(tape, x);
        var experts = Select(tape, logits.Span, Options.Experts, Options.TopK);
        var offsets = Uniform(tape, x.RowCount, Options.TopK);
        var w = tape.SoftmaxPerToken(tape.GatherPairs(logits, offsets, experts), offsets);
        return new RouterOutput(logits, tape.Softmax(logits), offsets, experts, w);
    }
}

/// <summary>
/// DeepSeek-V3: s = σ(x·Wᵀ). Selection uses s + b, where the bias b is trained only by
/// <see cref="UpdateBias"/>, and is limited to the best TopGroups groups (a group scores the sum of its
/// two best biased scores, <see cref="LinearRouter.KeepBestGroups"/>). Weights come from s alone, renormalised and
/// scaled by RoutedScaling.
/// </summary>
public sealed class SigmoidBiasRouter : LinearRouter
{
    /// <summary>Registers the gate and the selection bias <c>{name}.e_score_correction_bias</c> [E].</summary>
    public SigmoidBiasRouter(ParameterArena arena, string name, RouterOptions o) : base(arena, name, o)
    {
        Bias = Param("e_score_correction_bias", [o.Experts], Init.Zeros, trainable: false);
    }

    /// <summary>[E] selection-only bias; not trainable by gradient.</summary>
    public Parameter Bias { get; }

    /// <summary>
    /// Auxiliary-loss-free balancing, called after the optimizer step with that step's statistics:
    /// b_e ← b_e + γ·sign(mean(load) − load_e), γ = <see cref="RouterOptions.BiasUpdateRate"/>.
    /// </summary>
    public void UpdateBias(RoutingStats stats)
    {
        if (Options.BiasUpdateRate == 0) return;
        var load = stats.TokensPerExpert;
        double mean = 0;
        foreach (int c in load) mean += c;
        mean /= load.Length;
        var b = Bias.Value.Span;
        for (int e = 0; e < b.Length; e++) b[e] += Options.BiasUpdateRate * Math.Sign(mean - load[e]);
    }

    /// <inheritdoc />
    public override RouterOutput Route(Tape tape, Tensor x, RoutingContext context)
    {
        int e = Options.Experts, tokens = x.RowCount, k = Options.TopK;
        var logits = tape.Linear(x, Weight.Value);
        var s = tape.Sigmoid(logits);
        var choice = tape.Allocate(tokens, e).Span; // [T,E] biased scores, −∞ outside the kept groups
        var bias = Bias.Value.Span;
        int groups = Options.Groups, top = Options.TopGroups;
        Span<float> groupScore = groups <= 1024 ? stackalloc float[groups] : new float[groups]; // [groups]
        Span<int> keptGroups = top <= 1024 ? stackalloc int[top] : new int[top];                // [TopGroups]
        Span<float> scratch = top <= 1024 ? stackalloc float[top] : new float[top];             // [TopGroups] their scores, unused
        for (int t = 0; t < tokens; t++)
        {
            var row = choice.Slice(t * e, e);
            for (int j = 0; j < e; j++) row[j] = s[t * e + j] + bias[j];
            if (groups > 1) KeepBestGroups(row, top, sumOfTwo: true, groupScore, keptGroups, scratch);
        }
        var experts = Select(tape, choice, e, k);
        var offsets = Uniform(tape, tokens, k);
        var w = tape.GatherPairs(s, offsets, experts);
        if (Options.NormalizeTopK && k > 1) w = tape.NormalizePerToken(w, offsets);
        if (Options.RoutedScaling != 1f) w = tape.Scale(w, Options.RoutedScaling);
        // Balance losses see the scores normalised per token, as DeepSeek-V3's sequence-wise loss does.
        var probabilities = tape.NormalizePerToken(s, Uniform(tape, tokens, e));
        return new RouterOutput(logits, probabilities, offsets, experts, w);
    }
}

/// <summary>Switch Transformer: top-1 of softmax, weight = that probability; the router sees x·U(1−ε, 1+ε) in training.</summary>
public sealed class SwitchRouter(ParameterArena arena, string name, RouterOptions o) : LinearRouter(arena, name, o)
{
    /// <inheritdoc />
    public override RouterOutput Route(Tape tape, Tensor x, RoutingContext context)
    {
        var input = x;
        if (context.Training && Options.JitterEps > 0)
        {
            var noise = tape.Allocate(x.Shape);
            var span = noise.Span;
            var rng = Noise(context);
            for (int i = 0; i < span.Length; i++) span[i] = 1 - Options.JitterEps + 2 * Options.JitterEps * rng.NextFloat();
            input = tape.Multiply(x, noise);
        }
        var logits = tape.Linear(input, Weight.Value);
        var p = tape.Softmax(logits);
        var experts = Select(tape, logits.Span, Options.Experts, 1);
        var offsets = Uniform(tape, x.RowCount, 1);
        return new RouterOutput(logits, p, offsets, experts, tape.GatherPairs(p, offsets, experts));
    }
}

/// <summary>
/// Shazeer et al. 2017: H = x·Wᵀ + ε·softplus(x·W_noiseᵀ), ε ~ N(0,1) in training (H = x·Wᵀ at inference);
/// the top-k of H, softmax over those k.
/// </summary>
public sealed class NoisyTopKRouter : LinearRouter
{
    /// <summary>Registers the gate and the noise gate <c>{name}.noise_weight</c> [E,D].</summary>
    public NoisyTopKRouter(ParameterArena arena, string name, RouterOptions o) : base(arena, name, o)
    {
        NoiseWeight = Param("noise_weight", [o.Experts, o.Dim], Init.Zeros);
    }

    /// <summary>[E,D] learned noise scale; zero at start, as in the paper.</summary>
    public Parameter NoiseWeight { get; }

    /// <inheritdoc />
    public override RouterOutput Route(Tape tape, Tensor x, RoutingContext context)
    {
        var logits = tape.Linear(x, Weight.Value);
        var h = logits;
        if (context.Training)
        {
            var scale = tape.Softplus(tape.Linear(x, NoiseWeight.Value));
            var eps = tape.Allocate(scale.Shape);
            Noise(context).FillNormal(eps.Span, 0, 1);
            h = tape.Add(logits, tape.Multiply(scale, eps));
        }
        var experts = Select(tape, h.Span, Options.Experts, Options.TopK);
        var offsets = Uniform(tape, x.RowCount, Options.TopK);
        var w = tape.SoftmaxPerToken(tape.GatherPairs(h, offsets, experts), offsets);
        return new RouterOutput(logits, tape.Softmax(logits), offsets, experts, w);
    }
}

/// <summary>
/// Expert choice: p = softmax(x·Wᵀ) per token; each expert takes the C tokens with the highest p[:,e]
/// (C = ⌈CapacityFactor·T·K/E⌉, factor 1 when unset; ties to the lower token). A token may get 0..E experts.
/// </summary>
public sealed class ExpertChoiceRouter(ParameterArena arena, string name, RouterOptions o) : LinearRouter(arena, name, o)
{
    /// <inheritdoc />
    public override RouterOutput Route(Tape tape, Tensor x, RoutingContext context)
    {
        int tokens = x.RowCount, e = Options.Experts;
        var logits = tape.Linear(x, Weight.Value);
        var p = tape.Softmax(logits);
        float factor = Options.CapacityFactor > 0 ? Options.CapacityFactor : 1f;
        int c = Math.Min(tokens, Math.Max(Options.MinCapacity, (int)Math.Ceiling(factor * tokens * Options.TopK / e)));
        var chosen = new bool[tokens * e]; // [T,E]
        var column = new float[tokens];
        var values = new float[c];
        var picks = new int[c];
        for (int j = 0; j < e; j++)
        {
            for (int t = 0; t < tokens; t++) column[t] = p[t * e + j];
            TopK.Rows(column, tokens, c, values, picks);
            foreach (int t in picks) chosen[t * e + j] = true;
        }
        var offsets = tape.RentInts(tokens + 1); // [T+1]
        offsets[0] = 0;
        var pairs = tape.RentInts(c * e); // [P] every expert takes exactly C tokens
        int n = 0;
        for (int t = 0; t < tokens; t++)
        {
            for (int j = 0; j < e; j++) if (chosen[t * e + j]) pairs[n++] = j;
            offsets[t + 1] = n;
        }
        return new RouterOutput(logits, p, offsets, pairs, tape.GatherPairs(p, offsets, pairs)) { TokenChoice = false };
    }
}

/// <summary>
/// Balanced assignment: a few Sinkhorn iterations turn exp(logits) into a plan whose rows sum to 1 and columns to
/// T/E; each token takes its top-k experts under the plan. Weights are softmax(logits) at those experts, so the
/// router still learns (S-BASE style). The plan itself carries no gradient.
/// </summary>
public sealed class SinkhornRouter(ParameterArena arena, string name, RouterOptions o) : LinearRouter(arena, name, o)
{
    /// <inheritdoc />
    public override RouterOutput Route(Tape tape, Tensor x, RoutingContext context)
    {
        int tokens = x.RowCount, e = Options.Experts, k = Options.TopK;
        var logits = tape.Linear(x, Weight.Value);
        var p = tape.Softmax(logits);
        var plan = Plan(logits.Span, tokens, e, Options.SinkhornIterations);
        var experts = Select(tape, plan, e, k);
        var offsets = Uniform(tape, tokens, k);
        var w = tape.GatherPairs(p, offsets, experts);
        if (Options.NormalizeTopK && k > 1) w = tape.NormalizePerToken(w, offsets);
        return new RouterOutput(logits, p, offsets, experts, w);
    }

    /// <summary>Alternating row and column scaling of exp(logits − row max), in double.</summary>
    internal static float[] Plan(ReadOnlySpan<float> logits, int tokens, int experts, int iterations)
    {
        var m = new double[tokens * experts]; // [T,E]
        for (int t = 0; t < tokens; t++)
        {
            float max = TensorPrimitives.Max(logits.Slice(t * experts, experts));
            for (int j = 0; j < experts; j++) m[t * experts + j] = Math.Exp(logits[t * experts + j] - max);
        }
        var col = new double[experts];
        for (int it = 0; it < iterations; it++)
        {
            Array.Clear(col);
            for (int t = 0; t < tokens; t++)
                for (int j = 0; j < experts; j++) col[j] += m[t * experts + j];
            for (int t = 0; t < tokens; t++)
                for (int j = 0; j < experts; j++) m[t * experts + j] *= (double)tokens / experts / col[j];
            for (int t = 0; t < tokens; t++)
            {
                double row = 0;
                for (int j = 0; j < experts; j++) row += m[t * experts + j];
                for (int j = 0; j < experts; j++) m[t * experts + j] /= row;
            }
        }
        var plan = new float[m.Length]; // [T,E]
        for (int i = 0; i < m.Length; i++) plan[i] = (float)m[i];
        return plan;
    }
}

/// <summary>Hash layers: expert = mix(token id) mod E, weight 1; no parameters, no gradient.</summary>
public sealed class HashRouter(RouterOptions options) : IRouter
{
    /// <inheritdoc />
    public RouterOutput Route(Tape tape, Tensor x, RoutingContext context)
    {
        int tokens = x.RowCount, e = options.Experts;
        var ids = context.TokenIds ?? throw new ArgumentException("Hash routing needs the token ids (RoutingContext.TokenIds).");
        if (ids.Length != tokens) throw new ArgumentException($"Hash routing got {ids.Length} token ids for {tokens} tokens.");
        var experts = tape.RentInts(tokens); // [T] one pair per token
        for (int t = 0; t < tokens; t++) experts[t] = (int)(Mix((ulong)ids[t] ^ options.Seed) % (ulong)e);
        var logits = tape.AllocateZeroed(tokens, e); // [T,E] no scores: all zero
        var p = tape.Allocate(tokens, e);             // [T,E] uniform
        p.Span.Fill(1f / e);
        var w = tape.Allocate(tokens);
        w.Span.Fill(1f);
        return new RouterOutput(logits, p, LinearRouter.Uniform(tape, tokens, 1), experts, w);
    }

    /// <summary>SplitMix64's finaliser: consecutive ids land on unrelated experts.</summary>
    private static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
