using MoeSharp.Nn;

namespace MoeSharp.Experts;

/// <summary>The activation inside each FFN expert.</summary>
public enum ExpertActivation
{
    /// <summary>w2(silu(w1·x) ⊙ w3·x), as Mixtral, Qwen-MoE and DeepSeek.</summary>
    SwiGlu,

    /// <summary>w2(gelu(w1·x)), as Switch and GShard.</summary>
    Gelu,
}

/// <summary>
/// GPT-OSS's clamped SwiGLU, act = (clamp(u, −Limit, Limit) + 1) · g·σ(Alpha·g) with g = min(w1·x, Limit) and
/// u = w3·x: the clamps keep the activation bounded for MXFP4 weights, and the +1 lets the up branch pass the gate
/// through unscaled at u = 0. GPT-OSS uses Alpha 1.702 and Limit 7.
/// </summary>
/// <param name="Alpha">The sharpness α of the sigmoid gate.</param>
/// <param name="Limit">The clamp: the gate is capped at +Limit, the up branch kept in [−Limit, Limit].</param>
public readonly record struct SwiGluClamp(float Alpha, float Limit)
{
    /// <summary>GPT-OSS's constants (α = 1.702, limit 7).</summary>
    public static SwiGluClamp GptOss => new(1.702f, 7f);
}

/// <summary>
/// E feed-forward experts stored stacked, one tensor per projection, in the per-expert PyTorch layout so the rows
/// of expert e are exactly Mixtral's <c>experts.{e}.w1.weight</c> etc.: W1 and W3 [E,H,D], W2 [E,D,H]. Optionally with biases (GPT-OSS) B1 and B3 [E,H]
/// after W1 and W3, B2 [E,D] after W2, and the clamped SwiGLU of <see cref="SwiGluClamp"/>.
/// </summary>
public sealed class ExpertBank : Module
{
    /// <summary>Registers W1, W3 (SwiGLU only) and W2 for <paramref name="experts"/> experts of width <paramref name="dim"/> → <paramref name="hidden"/> → <paramref name="dim"/> in <paramref name="arena"/>; W2 draws from N(0, <paramref name="outStd"/>²) when given (residual scaling), else like the others; zero biases B1, B3 and B2 when <paramref name="bias"/>; the clamped SwiGLU when <paramref name="clamp"/> is set (SwiGLU only).</summary>
    public ExpertBank(ParameterArena arena, string name, int experts, int dim, int hidden, ExpertActivation activation,
        float initStd = 0.02f, float? outStd = null, bool bias = false, SwiGluClamp? clamp = null) : base(arena, name)
    {
        if (clamp is { } c && (activation != ExpertActivation.SwiGlu || !(c.Alpha > 0) || !(c.Limit > 0)))
            throw new ArgumentException($"ExpertBank {name}: a SwiGLU clamp needs the SwiGLU activation and a positive alpha and limit, got {activation}, alpha {c.Alpha}, limit {c.Limit}.", nameof(clamp));
        Experts = experts;
        Dim = dim;
        Hidden = hidden;
        Activation = activation;
        W1 = Param("w1", [experts, hidden, dim], Init.Normal(initStd));
        W3 = activation == ExpertActivation.SwiGlu ? Param("w3", [experts, hidden, dim], Init.Normal(initStd)) : null;
        W2 = Param("w2", [experts, dim, hidden], Init.Normal(outStd ?? initStd));
        // Their one gradient writer, the expert FFN op, overwrites what a lazy ZeroGrad leaves stale.
        W1.ZeroLazily = W2.ZeroLazily = true;
        if (W3 is not null) W3.ZeroLazily = true;
        Clamp = clamp;
        if (!bias) return;
        B1 = Param("b1", [experts, hidden], Init.Zeros);
        B3 = W3 is null ? null : Param("b3", [experts, hidden], Init.Zeros);
        B2 = Param("b2", [experts, dim], Init.Zeros);
    }

    /// <summary>GPT-OSS's clamped SwiGLU; null for the plain activation.</summary>
    public SwiGluClamp? Clamp { get; }

    /// <summary>[E,H] bias after W1; null without biases.</summary>
    public Parameter? B1 { get; }

    /// <summary>[E,H] bias after W3; null without biases or without W3.</summary>
    public Parameter? B3 { get; }

    /// <summary>[E,D] bias after W2 (before the gate weight); null without biases.</summary>
    public Parameter? B2 { get; }

    /// <summary>Number of experts E.</summary>
    public int Experts { get; }
    /// <summary>Model width D: each expert's input and output size.</summary>
    public int Dim { get; }
    /// <summary>Hidden width H of each expert's FFN.</summary>
    public int Hidden { get; }
    /// <summary>The activation inside every expert.</summary>
    public ExpertActivation Activation { get; }

    /// <summary>[E,H,D] gate (SwiGLU) or up (GELU) projection.</summary>
    public Parameter W1 { get; }

    /// <summary>[E,H,D] up projection, SwiGLU only.</summary>
    public Parameter? W3 { get; }

    /// <summary>[E,D,H] down projection.</summary>
    public Parameter W2 { get; }

    /// <summary>Whether the expert weights are stored (<see cref="Parameter.Stored"/>), for inference in place of the arena.</summary>
    public bool IsStored => W1.Stored is not null || W2.Stored is not null || W3?.Stored is not null;

    /// <summary>The experts paged from the checkpoint file through an <see cref="ExpertCache"/> (<c>--max-memory</c>), or null when they are resident.</summary>
    public PagedExperts? Paged { get; internal set; }

    /// <summary>
    /// Who runs the routed experts at inference: null runs them here with the fused expert FFN (training and the usual
    /// path); a runner (<see cref="LocalExpertRunner"/>, or a cluster's) gets the rows sorted by expert, and the layer
    /// combines what it answers. Token-routed layers only.
    /// </summary>
    public IExpertRunner? Runner { get; set; }

    /// <summary>Parameters of one expert, for counting and for reporting.</summary>
    public long ParametersPerExpert => (long)Hidden * Dim * (W3 is null ? 2 : 3) + (B1 is null ? 0 : Hidden * (W3 is null ? 1 : 2) + Dim);
}
