using MoeSharp.Autograd;
using MoeSharp.Tensors;

namespace MoeSharp.Nn;

/// <summary>y = x·Wᵀ + b with W [out,in].</summary>
public sealed class Linear : Module
{
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

    public int InFeatures { get; }
    public int OutFeatures { get; }
    public Parameter Weight { get; }
    public Parameter? Bias { get; }

    public Tensor Forward(Tape tape, Tensor x) => tape.Linear(x, Weight.Value, Bias?.Value);
}

/// <summary>A lookup table [vocab, dim].</summary>
public sealed class Embedding : Module
{
    public Embedding(ParameterArena arena, string name, int vocab, int dim, float initStd = 0.02f) : base(arena, name)
    {
        Vocab = vocab;
        Dim = dim;
        Weight = Param("weight", [vocab, dim], Init.Normal(initStd));
    }

    public int Vocab { get; }
    public int Dim { get; }
    public Parameter Weight { get; }

    public Tensor Forward(Tape tape, int[] ids) => tape.Embedding(Weight.Value, ids);
}

/// <summary>Root-mean-square normalisation with a learned scale.</summary>
public sealed class RmsNorm(ParameterArena arena, string name, int dim, float eps = 1e-5f) : Module(arena, name)
{
    public Parameter Weight { get; } = arena.Add(name + ".weight", [dim], Init.Ones);
    public float Eps { get; } = eps;

    public Tensor Forward(Tape tape, Tensor x) => tape.RmsNorm(x, Weight.Value, Eps);
}

/// <summary>Layer normalisation with a learned scale and shift.</summary>
public sealed class LayerNorm(ParameterArena arena, string name, int dim, float eps = 1e-5f) : Module(arena, name)
{
    public Parameter Weight { get; } = arena.Add(name + ".weight", [dim], Init.Ones);
    public Parameter Bias { get; } = arena.Add(name + ".bias", [dim], Init.Zeros);
    public float Eps { get; } = eps;

    public Tensor Forward(Tape tape, Tensor x) => tape.LayerNorm(x, Weight.Value, Bias.Value, Eps);
}

public enum MlpKind { SwiGlu, Gelu }

/// <summary>
/// The feed-forward block. SwiGLU: down(silu(gate(x)) ⊙ up(x)) with Llama's names gate_proj/up_proj/down_proj.
/// GELU: down(gelu(up(x))).
/// </summary>
public sealed class Mlp : Module
{
    public Mlp(ParameterArena arena, string name, int dim, int hidden, MlpKind kind, float initStd = 0.02f, float? outStd = null)
        : base(arena, name)
    {
        Kind = kind;
        Gate = kind == MlpKind.SwiGlu ? new Linear(arena, name + ".gate_proj", dim, hidden, initStd: initStd) : null;
        Up = new Linear(arena, name + ".up_proj", dim, hidden, initStd: initStd);
        Down = new Linear(arena, name + ".down_proj", hidden, dim, initStd: outStd ?? initStd);
    }

    public MlpKind Kind { get; }
    public Linear? Gate { get; }
    public Linear Up { get; }
    public Linear Down { get; }

    public Tensor Forward(Tape tape, Tensor x)
    {
        var h = Kind == MlpKind.SwiGlu
            ? tape.SwiGlu(Gate!.Forward(tape, x), Up.Forward(tape, x))
            : tape.Gelu(Up.Forward(tape, x));
        return Down.Forward(tape, h);
    }
}
