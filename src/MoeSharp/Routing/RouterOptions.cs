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
/// Every setting a router and its capacity limit read, validated once by <see cref="Validate()"/>, which names the
/// bad field. <c>MoeLayer</c> builds one from its own options, so users of the layer never need this record.
/// Dimensions: D model width, E experts, K experts per token.
/// </summary>
public sealed record RouterOptions
{
    // ---- Shape ----
    /// <summary>Model width D: the router reads x [T,D].</summary>
    public int Dim { get; init; }

    /// <summary>Number of routed experts E.</summary>
    public int Experts { get; init; } = 8;

    /// <summary>Experts per token K (for expert choice: the average, which sets each expert's capacity).</summary>
    public int TopK { get; init; } = 2;

    // ---- Router ----
    /// <summary>The routing algorithm.</summary>
    public RouterKind Kind { get; init; } = RouterKind.SoftmaxTopK;

    /// <summary>Renormalise the K gate weights to sum to 1 (Mixtral; Qwen's norm_topk_prob; DeepSeek).</summary>
    public bool NormalizeTopK { get; init; } = true;

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
    /// <summary>Standard deviation of the normal initialisation of the gate weights.</summary>
    public float InitStd { get; init; } = 0.02f;

    /// <summary>Seeds the router's own randomness (jitter, noise, the hash).</summary>
    public ulong Seed { get; init; }

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid field.</summary>
    public void Validate() => Validate(nameof(RouterOptions), nameof(Kind));

    /// <summary>
    /// Validates under another record's names: <c>MoeOptions</c> carries these fields under the same names, except
    /// the router kind, which it calls <paramref name="kindField"/>.
    /// </summary>
    internal void Validate(string owner, string kindField)
    {
        void Require(bool ok, string field, string message)
        {
            if (!ok) throw new ArgumentException($"{owner}.{field}: {message}", field);
        }
        Require(Dim > 0, nameof(Dim), $"must be positive, got {Dim}.");
        Require(Experts > 0, nameof(Experts), $"must be positive, got {Experts}.");
        Require(Enum.IsDefined(Kind), kindField, $"unknown router kind {(int)Kind}.");
        Require(TopK > 0 && TopK <= Experts, nameof(TopK), $"must be in [1, Experts = {Experts}], got {TopK}.");
        Require(Kind is not (RouterKind.Switch or RouterKind.Hash) || TopK == 1, nameof(TopK), $"the {Kind} router sends each token to one expert; TopK must be 1, got {TopK}.");
        Require(Kind != RouterKind.Dense || TopK == Experts, nameof(TopK), $"the Dense router uses every expert; TopK must equal Experts ({Experts}), got {TopK}.");
        Require(JitterEps is >= 0 and < 1, nameof(JitterEps), $"must be in [0, 1), got {JitterEps}.");
        Require(Groups > 0 && Experts % Groups == 0, nameof(Groups), $"must divide Experts ({Experts}), got {Groups}.");
        Require(TopGroups > 0 && TopGroups <= Groups, nameof(TopGroups), $"must be in [1, Groups = {Groups}], got {TopGroups}.");
        Require(TopK <= TopGroups * (Experts / Groups), nameof(TopK), $"{TopK} experts cannot be picked from {TopGroups} groups of {Experts / Groups}.");
        Require(RoutedScaling > 0, nameof(RoutedScaling), $"must be positive, got {RoutedScaling}.");
        Require(BiasUpdateRate >= 0, nameof(BiasUpdateRate), $"must be non-negative, got {BiasUpdateRate}.");
        Require(BiasUpdateRate == 0 || Kind == RouterKind.SigmoidBias, nameof(BiasUpdateRate), $"bias balancing needs the SigmoidBias router, not {Kind}.");
        Require(SinkhornIterations > 0, nameof(SinkhornIterations), $"must be positive, got {SinkhornIterations}.");
        Require(SlotsPerExpert > 0, nameof(SlotsPerExpert), $"must be positive, got {SlotsPerExpert}.");
        Require(CapacityFactor >= 0 && float.IsFinite(CapacityFactor), nameof(CapacityFactor), $"must be 0 (dropless) or positive, got {CapacityFactor}.");
        Require(MinCapacity >= 0, nameof(MinCapacity), $"must be non-negative, got {MinCapacity}.");
        Require(Enum.IsDefined(DropPolicy), nameof(DropPolicy), $"unknown drop policy {(int)DropPolicy}.");
        Require(InitStd > 0, nameof(InitStd), $"must be positive, got {InitStd}.");
        Require(!GateBias || Kind is RouterKind.SoftmaxTopK or RouterKind.TopKSoftmax, nameof(GateBias), $"a gate bias needs the SoftmaxTopK or TopKSoftmax router, not {Kind}.");
    }
}
