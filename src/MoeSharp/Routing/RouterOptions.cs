using System.Text.Json.Serialization;

namespace MoeSharp.Routing;

/// <summary>How a capacity-limited layer chooses which pairs to drop when an expert is full.</summary>
public enum DropPolicy
{
    /// <summary>Earlier tokens win (Switch, GShard).</summary>
    Position,

    /// <summary>Pairs with the higher gate weight win (Batch Prioritized Routing).</summary>
    Probability,
}

/// <summary>
/// Every setting of the routing half of an MoE layer: the router, its capacity limit and the weights of the balancing
/// terms, validated once by <see cref="Validate()"/>, which names the bad field under the record's own type name
/// (<c>MoeOptions.TopK: ...</c> for a <c>MoeOptions</c>). <c>MoeOptions</c> derives from it and adds the experts, so a
/// layer's options are the router's options. Dimensions: D model width, E experts, K experts per token.
/// </summary>
public record RouterOptions
{
    // The JsonPropertyOrder values keep MoeOptions' config.json in its reading order (shape, experts, router,
    // balancing, capacity, shared experts, diagnostics, init): serializers otherwise write derived fields first.
    // ---- Shape ----
    /// <summary>Model width D: the router reads x [T,D].</summary>
    [JsonPropertyOrder(-2)]
    public int Dim { get; init; }

    /// <summary>Number of routed experts E.</summary>
    [JsonPropertyOrder(-2)]
    public int Experts { get; init; } = 8;

    /// <summary>Experts per token K (for expert choice: the average, which sets each expert's capacity).</summary>
    [JsonPropertyOrder(-2)]
    public int TopK { get; init; } = 2;

    // ---- Router ----
    /// <summary>How tokens pick experts (or Soft MoE slot mixing).</summary>
    public RouterKind Router { get; init; } = RouterKind.SoftmaxTopK;

    /// <summary>Renormalise the K gate weights to sum to 1 (Mixtral; Qwen's norm_topk_prob; DeepSeek).</summary>
    public bool NormalizeTopK { get; init; } = true;

    /// <summary>Switch: the router sees x·U(1−ε, 1+ε) during training.</summary>
    public float JitterEps { get; init; }

    /// <summary>
    /// Softmax top-k and sigmoid routers: experts form this many groups (DeepSeek n_group); a token may use only the
    /// best <see cref="TopGroups"/>, a group scoring its best probability (softmax, DeepSeek-V2) or the sum of its
    /// two best biased scores (sigmoid, DeepSeek-V3).
    /// </summary>
    public int Groups { get; init; } = 1;

    /// <summary>Softmax top-k and sigmoid routers: groups a token may choose experts from (DeepSeek topk_group).</summary>
    public int TopGroups { get; init; } = 1;

    /// <summary>Softmax top-k and sigmoid routers: a factor on the gate weights, after any renormalisation (DeepSeek's routed_scaling_factor).</summary>
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
    /// <summary>0 for dropless (the default); otherwise capacity = max(MinCapacity, ⌈factor·T·K/E⌉). Expert choice: its C.</summary>
    public float CapacityFactor { get; init; }

    /// <summary>Lower bound on each expert's capacity when a capacity factor is set.</summary>
    public int MinCapacity { get; init; }
    /// <summary>Which pairs an over-full expert drops: the latest tokens or the lowest gate weights.</summary>
    public DropPolicy DropPolicy { get; init; } = DropPolicy.Position;

    /// <summary>A bias [E] on the gate logits (GPT-OSS's router.bias); softmax top-k and top-k-then-softmax routers only.</summary>
    public bool GateBias { get; init; }

    // ---- Init ----
    /// <summary>Standard deviation of the normal initialisation of the gate weights (of every weight, in a <c>MoeOptions</c>).</summary>
    [JsonPropertyOrder(2)]
    public float InitStd { get; init; } = 0.02f;

    /// <summary>Seeds the router's own randomness (jitter, noise, the hash).</summary>
    [JsonPropertyOrder(2)]
    public ulong Seed { get; init; }

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid field, as <c>TypeName.Field: ...</c>.</summary>
    public virtual void Validate()
    {
        string owner = GetType().Name;
        void Require(bool ok, string field, string message)
        {
            if (!ok) throw new ArgumentException($"{owner}.{field}: {message}", field);
        }
        Require(Dim > 0, nameof(Dim), $"must be positive, got {Dim}.");
        Require(Experts > 0, nameof(Experts), $"must be positive, got {Experts}.");
        Require(Enum.IsDefined(Router), nameof(Router), $"unknown router kind {(int)Router}.");
        Require(TopK > 0 && TopK <= Experts, nameof(TopK), $"must be in [1, Experts = {Experts}], got {TopK}.");
        Require(Router is not (RouterKind.Switch or RouterKind.Hash) || TopK == 1, nameof(TopK), $"the {Router} router sends each token to one expert; TopK must be 1, got {TopK}.");
        Require(Router != RouterKind.Dense || TopK == Experts, nameof(TopK), $"the Dense router uses every expert; TopK must equal Experts ({Experts}), got {TopK}.");
        Require(JitterEps is >= 0 and < 1, nameof(JitterEps), $"must be in [0, 1), got {JitterEps}.");
        Require(Groups > 0 && Experts % Groups == 0, nameof(Groups), $"must divide Experts ({Experts}), got {Groups}.");
        Require(TopGroups > 0 && TopGroups <= Groups, nameof(TopGroups), $"must be in [1, Groups = {Groups}], got {TopGroups}.");
        Require(TopK <= TopGroups * (Experts / Groups), nameof(TopK), $"{TopK} experts cannot be picked from {TopGroups} groups of {Experts / Groups}.");
        Require(Groups == 1 || Router is RouterKind.SoftmaxTopK or RouterKind.SigmoidBias, nameof(Groups), $"groups limit the SoftmaxTopK and SigmoidBias routers only, not {Router}; got {Groups}.");
        Require(RoutedScaling > 0, nameof(RoutedScaling), $"must be positive, got {RoutedScaling}.");
        Require(RoutedScaling == 1 || Router is RouterKind.SoftmaxTopK or RouterKind.SigmoidBias, nameof(RoutedScaling), $"scales the SoftmaxTopK and SigmoidBias routers' weights only, not {Router}'s; got {RoutedScaling}.");
        Require(BiasUpdateRate >= 0, nameof(BiasUpdateRate), $"must be non-negative, got {BiasUpdateRate}.");
        Require(BiasUpdateRate == 0 || Router == RouterKind.SigmoidBias, nameof(BiasUpdateRate), $"bias balancing needs the SigmoidBias router, not {Router}.");
        Require(SinkhornIterations > 0, nameof(SinkhornIterations), $"must be positive, got {SinkhornIterations}.");
        Require(SlotsPerExpert > 0, nameof(SlotsPerExpert), $"must be positive, got {SlotsPerExpert}.");
        Require(CapacityFactor >= 0 && float.IsFinite(CapacityFactor), nameof(CapacityFactor), $"must be 0 (dropless) or positive, got {CapacityFactor}.");
        Require(MinCapacity >= 0, nameof(MinCapacity), $"must be non-negative, got {MinCapacity}.");
        Require(Enum.IsDefined(DropPolicy), nameof(DropPolicy), $"unknown drop policy {(int)DropPolicy}.");
        Require(InitStd > 0, nameof(InitStd), $"must be positive, got {InitStd}.");
        Require(Weight(LoadBalanceCoef), nameof(LoadBalanceCoef), $"must be a non-negative number, got {LoadBalanceCoef}.");
        Require(Weight(ZLossCoef), nameof(ZLossCoef), $"must be a non-negative number, got {ZLossCoef}.");
        Require(Weight(ImportanceCoef), nameof(ImportanceCoef), $"must be a non-negative number, got {ImportanceCoef}.");
        Require(Weight(LoadCoef), nameof(LoadCoef), $"must be a non-negative number, got {LoadCoef}.");
        Require(Weight(SequenceBalanceCoef), nameof(SequenceBalanceCoef), $"must be a non-negative number, got {SequenceBalanceCoef}.");
        Require(Enum.IsDefined(LoadBalanceNormalization), nameof(LoadBalanceNormalization), $"unknown normalisation {(int)LoadBalanceNormalization}.");
        Require(!GateBias || Router is RouterKind.SoftmaxTopK or RouterKind.TopKSoftmax, nameof(GateBias), $"a gate bias needs the SoftmaxTopK or TopKSoftmax router, not {Router}.");
    }

    private static bool Weight(float value) => value >= 0 && float.IsFinite(value);
}
