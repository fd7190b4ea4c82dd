namespace MoeSharp.Nn;

/// <summary>
/// A building block with named parameters in a shared <see cref="ParameterArena"/>. Names follow the Hugging Face
/// convention ("model.layers.0.self_attn.q_proj.weight"), so checkpoints are recognisable to that ecosystem.
/// </summary>
public abstract class Module(ParameterArena arena, string name)
{
    /// <summary>The arena this module's parameters live in.</summary>
    public ParameterArena Arena { get; } = arena;
    /// <summary>Dotted prefix of this module's parameter names; empty at the root.</summary>
    public string Name { get; } = name;

    /// <summary>Registers parameter <c>{Name}.{local}</c> of <paramref name="shape"/> in <see cref="Arena"/>.</summary>
    protected Parameter Param(string local, int[] shape, Init init, bool trainable = true) =>
        Arena.Add(Name.Length == 0 ? local : $"{Name}.{local}", shape, init, trainable);
}
