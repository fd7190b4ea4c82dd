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
/// statistics (<see cref="MoeResult"/>). With <see cref="RouterKind.Soft"/> the router and dispatch are replaced by
/// <see cref="SoftMoe"/>. Parameter names follow Mixtral/Qwen: gate.weight, experts.w1/w2/w3 (stacked),
/// shared_expert, shared_expert_gate. Dimensions: T tokens, D width, E experts, K experts per token, P pairs.
/// </summary>
public sealed class MoeLayer : Module
{
    private static readonly RoutingContext s_noContext = new();
    private MoeWorkspace[] _workspaces = []; // the sort and capacity buffers, reused once their tape has reset

    /// <summary>Validates <paramref name="options"/> and registers the router, the stacked experts and any shared expert under <paramref name="name"/>.</summary>
    public MoeLayer(MoeOptions options, ParameterArena arena, string name) : base(arena, name)
    {
        options.Validate();
        Options = options;
        int e = options.Experts;
        float outStd = options.InitStd;
        if (options.Router == RouterKind.Soft)
            Soft = new SoftMoe(arena, name + ".gate", e, options.SlotsPerExpert, options.Dim, options.InitStd);
        else
            Router = LinearRouter.Create(arena, name + ".gate", options);
        Bank = new ExpertBank(arena, name + ".experts", e, options.Dim, options.ExpertHidden, options.Activation, options.InitStd, outStd,
            options.ExpertBias, options.SwiGluClamp);
        if (options.SharedExperts > 0)
        {
            int width = options.SharedExperts * (options.SharedHidden > 0 ? options.SharedHidden : options.ExpertHidden);
            var kind = options.Activation == ExpertActivation.SwiGlu ? MlpKind.SwiGlu : MlpKind.Gelu;
            Shared = new Mlp(arena, name + ".shared_expert", options.Dim, width, kind, options.InitStd, outStd);
            if (options.SharedGate) SharedGate = new Linear(arena, name + ".shared_expert_gate", options.Dim, 1, initStd: options.InitStd);
        }
    }

    /// <summary>The validated settings the layer was built with.</summary>
    public MoeOptions Options { get; }

    /// <summary>The token router; null for Soft MoE.</summary>
    public IRouter? Router { get; }

    /// <summary>Soft MoE's slot mixing; null for a token router.</summary>
    public SoftMoe? Soft { get; }

    /// <summary>The routed experts, stacked as W1/W3 [E,H,D] and W2 [E,D,H].</summary>
    public ExpertBank Bank { get; }
    /// <summary>The always-on shared expert (all shared experts fused into one MLP); null when there is none.</summary>
    public Mlp? Shared { get; }
    /// <summary>σ(x·w) per token scaling the shared output (Qwen2-MoE); null when off.</summary>
    public Linear? SharedGate { get; }

    /// <summary>Runs the layer on x [T,D].</summary>
    public MoeResult Forward(Tape tape, Tensor x, RoutingContext? context = null)
    {
        context ??= s_noContext;
        Shapes.LastDim("MoeLayer", x, Options.Dim, $"input of {Name}");
        if (context.Mask is { } m && m.Length != x.RowCount)
            throw new ArgumentException($"MoeLayer {Name}: the mask has {m.Length} entries for {x.RowCount} tokens.");
        Tensor y;
        Dictionary<string, Tensor> aux;
        RoutingStats stats;
        RouterOutput? routing = null;
        if (Soft is not null)
        {
            if (Bank.Runner is not null)
                throw new InvalidOperationException($"MoeLayer {Name}: an expert runner serves token-routed layers; Soft MoE mixes slots over every expert and runs them here, so clear Bank.Runner.");
            (y, aux, stats) = Soft.Forward(tape, x, Bank, context.Mask, Name);
        }
        else
            (y, aux, stats, routing) = SparseForward(tape, x, context);
        if (Shared is not null)
        {
            var s = Shared.Forward(tape, x);
            if (SharedGate is not null) s = tape.MultiplyRows(s, tape.Sigmoid(SharedGate.Forward(tape, x)));
            y = tape.Add(y, s);
        }
        return new MoeResult(y, aux, Balance.Weighted(tape, aux, Options), stats, routing);
    }

    /// <summary>Auxiliary-loss-free balancing after the optimizer step (<see cref="SigmoidBiasRouter.UpdateBias"/>); only the sigmoid router has a bias.</summary>
    public void UpdateBias(RoutingStats stats) => (Router as SigmoidBiasRouter)?.UpdateBias(stats);

    private (Tensor, Dictionary<string, Tensor>, RoutingStats, RouterOutput) SparseForward(Tape tape, Tensor x, RoutingContext context)
    {
        var r = Router!.Route(tape, x, context);
        var ws = MoeWorkspace.Rent(ref _workspaces, tape, x.RowCount, Options.Experts, r.PairExpert.Length);
        var dispatch = r.PairExpert; // [P] expert of each pair after capacity, −1 when dropped
        if (r.TokenChoice && Options.CapacityFactor > 0)
        {
            dispatch = ws.Kept;
            Capacity.Apply(r, Options, dispatch, ws.Order, ws.Used);
        }
        var assignment = ws.Assignment;
        assignment.Plan(r.TokenOffsets, dispatch);
        int degraded = 0;
        var y = Bank.Runner is { } runner ? tape.RunnerExpertFfnForward(x, assignment, r.Weights, Bank, runner, out degraded)
            : Bank.IsStored ? tape.StoredExpertFfnForward(x, assignment, r.Weights, Bank) : tape.ExpertFfn(x, assignment, r.Weights, Bank);
        var counts = new int[Options.Experts]; // [E] kept by the statistics
        Balance.Counts(r, context.Mask, counts);
        var aux = Balance.Terms(tape, r, dispatch, counts, context, Options.LoadBalanceNormalization);
        return (y, aux, Stats(r, counts, assignment.Dropped, degraded, context.Mask), r);
    }

    private RoutingStats Stats(RouterOutput r, int[] counts, int dropped, int degraded, bool[]? mask)
    {
        int e = Options.Experts, tokens = r.TokenOffsets.Length - 1, live = 0;
        Span<double> importance = e <= 1024 ? stackalloc double[e] : new double[e]; // [E] summed probabilities
        importance.Clear();
        double entropy = 0;
        var p = r.Probabilities.Span;
        bool pairsAcross = r.PairExpert.Length > tokens;
        var co = pairsAcross ? new int[e * e] : []; // [E,E]
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
        var mean = new float[e]; // [E]
        for (int j = 0; j < e; j++) mean[j] = (float)(importance[j] / Math.Max(1, live));
        return new RoutingStats
        {
            Layer = Name,
            Tokens = live,
            TokensPerExpert = counts,
            Importance = mean,
            Entropy = (float)(entropy / Math.Max(1, live)),
            Dropped = dropped,
            Degraded = degraded,
            LoadCv = RoutingStats.Cv(counts),
            CoActivation = co,
        };
    }
}
