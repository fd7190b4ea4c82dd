using MoeSharp.Autograd;
using MoeSharp.Tensors;

namespace MoeSharp.Nn;

/// <summary>y = x·Wᵀ + b with W [out,in].</summary>
public sealed class Linear : Module
{
    /// <summary>Registers <c>{name}.weight</c> [<paramref name="outFeatures"/>, <paramref name="inFeatures"/>] from N(0, <paramref name="initStd"/>²) (0.02 by default) and, with <paramref name="bias"/>, a zero <c>{name}.bias</c>.</summary>
    public Linear(ParameterArena arena, string name, int inFeatures, int outFeatures, bool bias = false, float? initStd = null)
        : base(arena, name)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(inFeatures);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(outFeatures);
        InFeatures = inFeatures;
        OutFeatures = outFeatures;
        Weight = Param("weight", [outFeatures, inFeatures], Init.Normal(initStd ?? 0.02f));
        Bias = bias ? Param("bias", [outFeatures], Init.Zeros) : null;
    }

    /// <summary>Input width: the last dimension of x.</summary>
    public int InFeatures { get; }
    /// <summary>Output width: the last dimension of y.</summary>
    public int OutFeatures { get; }
    /// <summary>W [out, in], PyTorch's layout.</summary>
    public Parameter Weight { get; }
    /// <summary>b [out], or null without a bias.</summary>
    public Parameter? Bias { get; }

    /// <summary>x [N, in] → y [N, out], recorded on <paramref name="tape"/>; a stored weight (inference) is used in place.</summary>
    public Tensor Forward(Tape tape, Tensor x) => Weight.Stored is { } w
        ? tape.StoredLinear(x, w[0], Bias?.Value, Weight.Name)
        : tape.Linear(x, Weight.Value, Bias?.Value);
}

/// <summary>A lookup table [vocab, dim].</summary>
public sealed class Embedding : Module
{
    /// <summary>Registers <c>{name}.weight</c> [<paramref name="vocab"/>, <paramref name="dim"/>] from N(0, <paramref name="initStd"/>²).</summary>
    public Embedding(ParameterArena arena, string name, int vocab, int dim, float initStd = 0.02f) : base(arena, name)
    {
        Vocab = vocab;
        Dim = dim;
        Weight = Param("weight", [vocab, dim], Init.Normal(initStd));
    }

    /// <summary>Rows of the table: token ids are in [0, Vocab).</summary>
    public int Vocab { get; }
    /// <summary>Width of each row.</summary>
    public int Dim { get; }
    /// <summary>The table [vocab, dim].</summary>
    public Parameter Weight { get; }

    /// <summary>Rows of the table for <paramref name="ids"/> [N] → [N, dim]; an id outside the vocabulary throws. A stored table dequantizes only the rows looked up.</summary>
    public Tensor Forward(Tape tape, int[] ids) => Weight.Stored is { } w
        ? tape.StoredEmbedding(w[0], ids, Weight.Name)
        : tape.Embedding(Weight.Value, ids);

    /// <summary>The tied LM head: h [N, dim] → logits [N, vocab] = h · tableᵀ.</summary>
    public Tensor Logits(Tape tape, Tensor h) => Weight.Stored is { } w
        ? tape.StoredLinear(h, w[0], null, Weight.Name)
        : tape.Linear(h, Weight.Value);
}

/// <summary>Root-mean-square normalisation with a learned scale.</summary>
public sealed class RmsNorm(ParameterArena arena, string name, int dim, float eps = 1e-5f) : Module(arena, name)
{
    /// <summary>The learned scale [dim], initialised to ones.</summary>
    public Parameter Weight { get; } = arena.Add(name + ".weight", [dim], Init.Ones);
    /// <summary>Added to the mean square before the square root.</summary>
    public float Eps { get; } = eps;

    /// <summary>x [N, dim] → x / sqrt(mean(x²) + eps) ⊙ weight, per row.</summary>
    public Tensor Forward(Tape tape, Tensor x) => tape.RmsNorm(x, Weight.Value, Eps);
}

/// <summary>Layer normalisation with a learned scale and shift.</summary>
public sealed class LayerNorm(ParameterArena arena, string name, int dim, float eps = 1e-5f) : Module(arena, name)
{
    /// <summary>The learned scale [dim], initialised to ones.</summary>
    public Parameter Weight { get; } = arena.Add(name + ".weight", [dim], Init.Ones);
    /// <summary>The learned shift [dim], initialised to zeros.</summary>
    public Parameter Bias { get; } = arena.Add(name + ".bias", [dim], Init.Zeros);
    /// <summary>Added to the variance before the square root.</summary>
    public float Eps { get; } = eps;

    /// <summary>x [N, dim] → (x − mean) / sqrt(var + eps) ⊙ weight + bias, per row.</summary>
    public Tensor Forward(Tape tape, Tensor x) => tape.LayerNorm(x, Weight.Value, Bias.Value, Eps);
}

/// <summary>The two feed-forward blocks <see cref="Mlp"/> builds.</summary>
public enum MlpKind
{
    /// <summary>down(silu(gate(x)) ⊙ up(x)), as Llama and Mistral.</summary>
    SwiGlu,

    /// <summary>down(gelu(up(x))), as GPT-2 and BERT.</summary>
    Gelu,
}

/// <summary>
/// The feed-forward block. SwiGLU: down(silu(gate(x)) ⊙ up(x)) with Llama's names gate_proj/up_proj/down_proj.
/// GELU: down(gelu(up(x))).
/// </summary>
public sealed class Mlp : Module
{
    /// <summary>Registers up_proj and down_proj (and gate_proj for SwiGLU) between <paramref name="dim"/> and <paramref name="hidden"/>; down_proj draws from N(0, <paramref name="outStd"/>²) when given.</summary>
    public Mlp(ParameterArena arena, string name, int dim, int hidden, MlpKind kind, float initStd = 0.02f, float? outStd = null)
        : base(arena, name)
    {
        Kind = kind;
        Gate = kind == MlpKind.SwiGlu ? new Linear(arena, name + ".gate_proj", dim, hidden, initStd: initStd) : null;
        Up = new Linear(arena, name + ".up_proj", dim, hidden, initStd: initStd);
        Down = new Linear(arena, name + ".down_proj", hidden, dim, initStd: outStd ?? initStd);
    }

    /// <summary>Which of the two blocks this is.</summary>
    public MlpKind Kind { get; }
    /// <summary>gate_proj [hidden, dim] for SwiGLU; null for GELU.</summary>
    public Linear? Gate { get; }
    /// <summary>up_proj [hidden, dim].</summary>
    public Linear Up { get; }
    /// <summary>down_proj [dim, hidden].</summary>
    public Linear Down { get; }

    /// <summary>x [N, dim] → [N, dim].</summary>
    public Tensor Forward(Tape tape, Tensor x)
    {
        var h = Kind == MlpKind.SwiGlu
            ? tape.SwiGlu(Gate!.Forward(tape, x), Up.Forward(tape, x))
            : tape.Gelu(Up.Forward(tape, x));
        return Down.Forward(tape, h);
    }
}
