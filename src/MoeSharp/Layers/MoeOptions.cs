using MoeSharp.Experts;
using MoeSharp.Routing;

namespace MoeSharp.Layers;

/// <summary>
/// Every setting of a <see cref="MoeLayer"/>, validated once by <see cref="Validate"/>, which names the bad field.
/// One flat record for users and for config.json; the router's share maps to <see cref="RouterOptions"/>
/// (<see cref="ToRouterOptions"/>) and the balancing weights to <see cref="BalanceOptions"/>
/// (<see cref="ToBalanceOptions"/>), under the same field names. Dimensions: D model width, E experts, K experts
/// per token, H expert width.
/// </summary>
public sealed record MoeOptions
{
    // ---- Shape ----
    /// <summary>Model width D.</summary>
    public int Dim { get; init; }

    /// <summary>Number of routed experts E.</summary>
    public int Experts { get; init; } = 8;

    /// <summary>Experts per token K (for expert choice: the average, which sets each expert's capacity).</summary>
    public int TopK { get; init; } = 2;

    /// <summary>Width H of each routed expert.</summary>
    public int ExpertHidden { get; init; }

    /// <summary>Expert nonlinearity: SwiGLU (W1, W3, W2) or GELU (W1, W2).</summary>
    public ExpertActivation Activation { get; init; } = ExpertActivation.SwiGlu;

    /// <summary>Per-expert biases after each projection (GPT-OSS).</summary>
    public bool ExpertBias { get; init; }

    /// <summary>GPT-OSS's clamped SwiGLU (SwiGLU only); null for the plain activation.</summary>
    public SwiGluClamp? SwiGluClamp { get; init; }

    // ---- Router ----
    /// <summary>How tokens pick experts (or Soft MoE slot mixing).</summary>
    public RouterKind Router { get; init; } = RouterKind.SoftmaxTopK;

    /// <summary>Renormalise the K gate weights to sum to 1 (Mixtral; Qwen's norm_topk_prob; DeepSeek).</summary>
    public bool NormalizeTopK { get; init; } = true;

    /// <summary>A bias [E] on the gate logits (GPT-OSS's router.bias).</summary>
    public bool GateBias { get; init; }

    /// <summary>Switch: the router sees x·U(1−ε, 1+ε) during training.</summary>
    public float JitterEps { get; init; }

    /// <summary>Sigmoid router: experts form this many groups; a token may use only the best <see cref="TopGroups"/>.</summary>
    public int Groups { get; init; } = 1;

    /// <summary>Sigmoid router: groups a token may choose experts from (DeepSeek topk_group).</summary>
    public int TopGroups { get; init; } = 1;

    /// <summary>Sigmoid router: a factor on the gate weights (DeepSeek's routed_scaling_factor).</summary>
    public float RoutedScaling { get; init; } = 1f;

    /// <summary>Auxiliary-loss-free balancing: γ in b ← b + γ·sign(mean(load) − load), after each optimizer step (sigmoid router).</summary>
    public float BiasUpdateRate { get; init; }

    /// <summary>Sinkhorn router: balancing iterations.</summary>
    public int SinkhornIterations { get; init; } = 8;

    /// <summary>Soft MoE: slots per expert.</summary>
    public int SlotsPerExpert { get; init; } = 1;

    // ---- Balancing (each term is returned separately; these weight their sum) ----
    /// <summary>Weight of the Switch/Mixtral load-balancing loss.</summary>
    public float LoadBalanceCoef { get; init; } = 0.01f;
    /// <summary>Whether expert counts in the load-balancing loss are divided by the assignments or by the tokens.</summary>
    public LoadBalanceNormalization LoadBalanceNormalization { get; init; } = LoadBalanceNormalization.PerAssignment;
    /// <summary>Weight of the ST-MoE router z-loss.</summary>
    public float ZLossCoef { get; init; } = 0.001f;
    /// <summary>Weight of the importance loss, CV² of the summed gate weights per expert.</summary>
    public float ImportanceCoef { get; init; }
    /// <summary>Weight of the load loss, CV² of the summed router probabilities per expert.</summary>
    public float LoadCoef { get; init; }
    /// <summary>Weight of DeepSeek-V3's per-sequence balance loss.</summary>
    public float SequenceBalanceCoef { get; init; }

    // ---- Capacity ----
    /// <summary>0 for dropless (the default); otherwise capacity = max(MinCapacity, ⌈factor·T·K/E⌉).</summary>
    public float CapacityFactor { get; init; }

    /// <summary>Lower bound on each expert's capacity when a capacity factor is set.</summary>
    public int MinCapacity { get; init; }
    /// <summary>Which pairs an over-full expert drops: the latest tokens or the lowest gate weights.</summary>
    public DropPolicy DropPolicy { get; init; } = DropPolicy.Position;

    // ---- Shared experts ----
    /// <summary>Always-on experts run on every token (Qwen-MoE, DeepSeek), fused into one MLP of width SharedExperts·SharedHidden.</summary>
    public int SharedExperts { get; init; }

    /// <summary>Width of one shared expert; 0 means <see cref="ExpertHidden"/>.</summary>
    public int SharedHidden { get; init; }

    /// <summary>Scale the shared output by σ(x·w) per token (Qwen2-MoE's shared_expert_gate).</summary>
    public bool SharedGate { get; init; }

    // ---- Diagnostics and init ----
    /// <summary>An expert that receives no token for this many consecutive steps is flagged dead.</summary>
    public int DeadExpertSteps { get; init; } = 100;

    /// <summary>A layer where one expert takes more than this share of the assignments is flagged collapsed.</summary>
    public float CollapseThreshold { get; init; } = 0.9f;

    /// <summary>Standard deviation of the normal initialisation of every weight in the layer.</summary>
    public float InitStd { get; init; } = 0.02f;

    /// <summary>Seeds the layer's own randomness (jitter, router noise).</summary>
    public ulong Seed { get; init; }

    /// <summary>The router's settings, field for field (<see cref="Router"/> is <see cref="RouterOptions.Kind"/>).</summary>
    public RouterOptions ToRouterOptions() => new()
    {
        Dim = Dim, Experts = Experts, TopK = TopK, Kind = Router, NormalizeTopK = NormalizeTopK, JitterEps = JitterEps,
        Groups = Groups, TopGroups = TopGroups, RoutedScaling = RoutedScaling, BiasUpdateRate = BiasUpdateRate,
        SinkhornIterations = SinkhornIterations, SlotsPerExpert = SlotsPerExpert, CapacityFactor = CapacityFactor,
        MinCapacity = MinCapacity, DropPolicy = DropPolicy, InitStd = InitStd, Seed = Seed, GateBias = GateBias,
    };

    /// <summary>The weights of the balancing terms, field for field.</summary>
    public BalanceOptions ToBalanceOptions() => new()
    {
        LoadBalanceCoef = LoadBalanceCoef, LoadBalanceNormalization = LoadBalanceNormalization, ZLossCoef = ZLossCoef,
        ImportanceCoef = ImportanceCoef, LoadCoef = LoadCoef, SequenceBalanceCoef = SequenceBalanceCoef,
    };

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid field.</summary>
    public void Validate()
    {
        static void Require(bool ok, string field, string message)
        {
            if (!ok) throw new ArgumentException($"MoeOptions.{field}: {message}", field);
        }
        Require(Dim > 0, nameof(Dim), $"must be positive, got {Dim}.");
        Require(Experts > 0, nameof(Experts), $"must be positive, got {Experts}.");
        Require(ExpertHidden > 0, nameof(ExpertHidden), $"must be positive, got {ExpertHidden}.");
        Require(Enum.IsDefined(Activation), nameof(Activation), $"unknown activation {(int)Activation}.");
        Require(SwiGluClamp is null || Activation == ExpertActivation.SwiGlu && SwiGluClamp.Value.Alpha > 0 && SwiGluClamp.Value.Limit > 0,
            nameof(SwiGluClamp), $"needs the SwiGLU activation and a positive alpha and limit, got {Activation}, {SwiGluClamp}.");
        ToRouterOptions().Validate(nameof(MoeOptions), nameof(Router));
        ToBalanceOptions().Validate(nameof(MoeOptions));
        Require(SharedExperts >= 0, nameof(SharedExperts), $"must be non-negative, got {SharedExperts}.");
        Require(SharedHidden >= 0, nameof(SharedHidden), $"must be non-negative, got {SharedHidden}.");
        Require(!SharedGate || SharedExperts > 0, nameof(SharedGate), "needs at least one shared expert.");
        Require(DeadExpertSteps > 0, nameof(DeadExpertSteps), $"must be positive, got {DeadExpertSteps}.");
        Require(CollapseThreshold is > 0 and <= 1, nameof(CollapseThreshold), $"must be in (0, 1], got {CollapseThreshold}.");
    }
}
