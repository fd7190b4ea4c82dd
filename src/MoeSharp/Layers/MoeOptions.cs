using System.Text.Json.Serialization;
using MoeSharp.Experts;
using MoeSharp.Routing;

namespace MoeSharp.Layers;

/// <summary>
/// Every setting of a <see cref="MoeLayer"/>: the router, capacity and balancing settings it inherits from
/// <see cref="RouterOptions"/>, and the experts'. One flat record for users and for config.json, validated once by
/// <see cref="Validate"/>, which names the bad field (<c>MoeOptions.TopK: ...</c>). Dimensions: D model width,
/// E experts, K experts per token, H expert width.
/// </summary>
public sealed record MoeOptions : RouterOptions
{
    // ---- Experts ----
    /// <summary>Width H of each routed expert.</summary>
    [JsonPropertyOrder(-1)]
    public int ExpertHidden { get; init; }

    /// <summary>Expert nonlinearity: SwiGLU (W1, W3, W2) or GELU (W1, W2).</summary>
    [JsonPropertyOrder(-1)]
    public ExpertActivation Activation { get; init; } = ExpertActivation.SwiGlu;

    /// <summary>Per-expert biases after each projection (GPT-OSS).</summary>
    public bool ExpertBias { get; init; }

    /// <summary>GPT-OSS's clamped SwiGLU (SwiGLU only); null for the plain activation.</summary>
    public SwiGluClamp? SwiGluClamp { get; init; }

    // ---- Shared experts ----
    /// <summary>Always-on experts run on every token (Qwen-MoE, DeepSeek), fused into one MLP of width SharedExperts·SharedHidden.</summary>
    [JsonPropertyOrder(1)]
    public int SharedExperts { get; init; }

    /// <summary>Width of one shared expert; 0 means <see cref="ExpertHidden"/>.</summary>
    [JsonPropertyOrder(1)]
    public int SharedHidden { get; init; }

    /// <summary>Scale the shared output by σ(x·w) per token (Qwen2-MoE's shared_expert_gate).</summary>
    [JsonPropertyOrder(1)]
    public bool SharedGate { get; init; }

    // ---- Diagnostics ----
    /// <summary>An expert that receives no token for this many consecutive steps is flagged dead.</summary>
    [JsonPropertyOrder(1)]
    public int DeadExpertSteps { get; init; } = 100;

    /// <summary>A layer where one expert takes more than this share of the assignments is flagged collapsed.</summary>
    [JsonPropertyOrder(1)]
    public float CollapseThreshold { get; init; } = 0.9f;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid field.</summary>
    public override void Validate()
    {
        static void Require(bool ok, string field, string message)
        {
            if (!ok) throw new ArgumentException($"MoeOptions.{field}: {message}", field);
        }
        base.Validate();
        Require(ExpertHidden > 0, nameof(ExpertHidden), $"must be positive, got {ExpertHidden}.");
        Require(Enum.IsDefined(Activation), nameof(Activation), $"unknown activation {(int)Activation}.");
        Require(SwiGluClamp is null || Activation == ExpertActivation.SwiGlu && SwiGluClamp.Value.Alpha > 0 && SwiGluClamp.Value.Limit > 0,
            nameof(SwiGluClamp), $"needs the SwiGLU activation and a positive alpha and limit, got {Activation}, {SwiGluClamp}.");
        Require(SharedExperts >= 0, nameof(SharedExperts), $"must be non-negative, got {SharedExperts}.");
        Require(SharedHidden >= 0, nameof(SharedHidden), $"must be non-negative, got {SharedHidden}.");
        Require(!SharedGate || SharedExperts > 0, nameof(SharedGate), "needs at least one shared expert.");
        Require(DeadExpertSteps > 0, nameof(DeadExpertSteps), $"must be positive, got {DeadExpertSteps}.");
        Require(CollapseThreshold is > 0 and <= 1, nameof(CollapseThreshold), $"must be in (0, 1], got {CollapseThreshold}.");
    }
}
