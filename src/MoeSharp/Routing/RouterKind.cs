namespace MoeSharp.Routing;

/// <summary>The router families. Each picks experts per token (or tokens per expert) and gate weights.</summary>
public enum RouterKind
{
    /// <summary>
    /// p = softmax(logits); top-k of p, optionally within the best groups; weights p (renormalised over the k if
    /// NormalizeTopK, times RoutedScaling). Mixtral, Qwen-MoE, DeepSeek-V2.
    /// </summary>
    SoftmaxTopK,

    /// <summary>Top-k of the logits, then softmax over those k logits. GPT-OSS.</summary>
    TopKSoftmax,

    /// <summary>s = σ(logits); experts picked by s + bias within the best groups; weights from s alone. DeepSeek-V3.</summary>
    SigmoidBias,

    /// <summary>Top-1 of softmax, weight = the raw probability; multiplicative input jitter in training. Switch Transformer.</summary>
    Switch,

    /// <summary>Top-k of logits + N(0,1)·softplus(x·W_noise), softmax over the k. Shazeer et al. 2017.</summary>
    NoisyTopK,

    /// <summary>Each expert takes its top-C tokens by softmax score. Zhou et al. 2022.</summary>
    ExpertChoice,

    /// <summary>Slots are convex combinations of all tokens; outputs are mixed back per token. Puigcerver et al. 2023.</summary>
    Soft,

    /// <summary>A fixed hash of the token id picks the expert. Roller et al. 2021.</summary>
    Hash,

    /// <summary>Top-k of a Sinkhorn-balanced assignment plan; weights from the softmax. BASE layers / S-BASE.</summary>
    Sinkhorn,

    /// <summary>Every expert, softmax weights: the classic dense mixture.</summary>
    Dense,
}
