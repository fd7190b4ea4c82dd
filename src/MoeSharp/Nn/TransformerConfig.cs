using MoeSharp.Kernels;

namespace MoeSharp.Nn;

/// <summary>
/// Sizes of a decoder-only Transformer language model. Zero for <see cref="KvHeads"/> means "as many as
/// <see cref="Heads"/>", and zero for <see cref="HeadDim"/> means DModel / Heads.
/// </summary>
public sealed record TransformerConfig
{
    public int Vocab { get; init; }
    public int DModel { get; init; } = 128;
    public int Layers { get; init; } = 4;
    public int Heads { get; init; } = 4;
    public int KvHeads { get; init; }
    public int HeadDim { get; init; }
    public int DFF { get; init; } = 512;
    public int Context { get; init; } = 64;
    public float NormEps { get; init; } = 1e-5f;
    public float RopeTheta { get; init; } = 10000f;
    public RopeStyle RopeStyle { get; init; } = RopeStyle.HalfRotate;
    public MlpKind Mlp { get; init; } = MlpKind.SwiGlu;
    public bool TiedEmbeddings { get; init; }
    public float InitStd { get; init; } = 0.02f;

    public int ResolvedKvHeads => KvHeads == 0 ? Heads : KvHeads;
    public int ResolvedHeadDim => HeadDim == 0 && Heads > 0 ? DModel / Heads : HeadDim;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid field.</summary>
    public void Validate()
    {
        static void Positive(int value, string field)
        {
            if (value <= 0) throw new ArgumentException($"Model config: {field} must be positive, got {value}.", field);
        }
        Positive(Vocab, nameof(Vocab));
        Positive(DModel, nameof(DModel));
        Positive(Layers, nameof(Layers));
        Positive(Heads, nameof(Heads));
        Positive(DFF, nameof(DFF));
        Positive(Context, nameof(Context));
        if (KvHeads < 0 || Heads % ResolvedKvHeads != 0)
            throw new ArgumentException($"Model config: {nameof(KvHeads)} ({KvHeads}) must divide {nameof(Heads)} ({Heads}).", nameof(KvHeads));
        if (HeadDim == 0 && DModel % Heads != 0)
            throw new ArgumentException($"Model config: {nameof(DModel)} ({DModel}) must be a multiple of {nameof(Heads)} ({Heads}) unless {nameof(HeadDim)} is set.", nameof(DModel));
        if (ResolvedHeadDim <= 0 || ResolvedHeadDim % 2 != 0)
            throw new ArgumentException($"Model config: the head dimension must be even and positive for RoPE, got {ResolvedHeadDim}.", nameof(HeadDim));
        if (!(NormEps > 0)) throw new ArgumentException($"Model config: {nameof(NormEps)} must be positive, got {NormEps}.", nameof(NormEps));
        if (!(RopeTheta > 0)) throw new ArgumentException($"Model config: {nameof(RopeTheta)} must be positive, got {RopeTheta}.", nameof(RopeTheta));
        if (!(InitStd > 0)) throw new ArgumentException($"Model config: {nameof(InitStd)} must be positive, got {InitStd}.", nameof(InitStd));
    }
}
