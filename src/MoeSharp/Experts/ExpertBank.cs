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
/// E feed-forward experts stored stacked, one tensor per projection, in the per-expert PyTorch layout so the rows
/// of expert e are exactly Mixtral's <c>experts.{e}.w1.weight</c> etc.: W1 and W3 [E,H,D], W2 [E,D,H].
/// </summary>
public sealed class ExpertBank : Module
{
    /// <summary>Registers W1, W3 (SwiGLU only) and W2 for <paramref name="experts"/> experts of width <paramref name="dim"/> → <paramref name="hidden"/> → <paramref name="dim"/> in <paramref name="arena"/>; W2 draws from N(0, <paramref name="outStd"/>²) when given (residual scaling), else like the others.</summary>
    public ExpertBank(ParameterArena arena, string name, int experts, int dim, int hidden, ExpertActivation activation,
        float initStd = 0.02f, float? outStd = null) : base(arena, name)
    {
        Experts = experts;
        Dim = dim;
        Hidden = hidden;
        Activation = activation;
        W1 = Param("w1", [experts, hidden, dim], Init.Normal(initStd));
        W3 = activation == ExpertActivation.SwiGlu ? Param("w3", [experts, hidden, dim], Init.Normal(initStd)) : null;
        W2 = Param("w2", [experts, dim, hidden], Init.Normal(outStd ?? initStd));
    }

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

    /// <summary>Parameters of one expert, for counting and for reporting.</summary>
    public long ParametersPerExpert => (long)Hidden * Dim * (W3 is null ? 2 : 3);
}
