using MoeSharp.Layers;
using MoeSharp.Routing;

namespace MoeSharp.Models;

/// <summary>
/// Named model recipes at the char-LM scale (d_model 128, 4 layers, 4 heads, context 64). Every MoE preset keeps
/// the dense preset's active FFN width of 512 per token, so presets compare at equal active compute.
/// </summary>
public static class Presets
{
    /// <summary>The preset names <see cref="Get"/> accepts, as <c>moe train --preset</c> lists them.</summary>
    public static IReadOnlyList<string> Names { get; } = ["dense", "mixtral", "qwen-moe", "deepseek", "switch"];

    /// <summary>The preset <paramref name="name"/> for a vocabulary of <paramref name="vocab"/> tokens.</summary>
    public static ModelConfig Get(string name, int vocab)
    {
        var dense = new ModelConfig { Preset = name, Vocab = vocab, DModel = 128, Layers = 4, Heads = 4, DFF = 512, Context = 64 };
        return name switch
        {
            "dense" => dense,
            // Softmax top-2 of 8, renormalised; Switch balancing loss plus router z-loss.
            "mixtral" => dense with
            {
                Moe = new MoeOptions { Experts = 8, TopK = 2, ExpertHidden = 256, Router = RouterKind.SoftmaxTopK, LoadBalanceCoef = 0.01f, ZLossCoef = 0.001f },
            },
            // Fine-grained: 16 experts of 64, top-4 (not renormalised, as Qwen's default), plus a sigmoid-gated shared expert of 256.
            "qwen-moe" => dense with
            {
                Moe = new MoeOptions
                {
                    Experts = 16, TopK = 4, ExpertHidden = 64, Router = RouterKind.SoftmaxTopK, NormalizeTopK = false,
                    SharedExperts = 1, SharedHidden = 256, SharedGate = true, LoadBalanceCoef = 0.01f, ZLossCoef = 0.001f,
                },
            },
            // Sigmoid router with a selection-only bias trained without an auxiliary loss (γ = 0.001), group-limited
            // routing (4 groups, best 2), fine-grained experts and one shared expert; a tiny sequence-wise loss.
            "deepseek" => dense with
            {
                Moe = new MoeOptions
                {
                    Experts = 16, TopK = 4, ExpertHidden = 64, Router = RouterKind.SigmoidBias, Groups = 4, TopGroups = 2,
                    BiasUpdateRate = 0.001f, SharedExperts = 1, SharedHidden = 256, LoadBalanceCoef = 0, ZLossCoef = 0,
                    SequenceBalanceCoef = 0.0001f,
                },
            },
            // Top-1 of 8 experts of 512 with capacity factor 1.25, input jitter and the Switch balancing loss.
            "switch" => dense with
            {
                Moe = new MoeOptions
                {
                    Experts = 8, TopK = 1, ExpertHidden = 512, Router = RouterKind.Switch, CapacityFactor = 1.25f,
                    JitterEps = 0.01f, LoadBalanceCoef = 0.01f, ZLossCoef = 0.001f,
                },
            },
            _ => throw new ArgumentException($"Unknown preset '{name}'; expected one of {string.Join(", ", Names)}.", nameof(name)),
        };
    }
}
