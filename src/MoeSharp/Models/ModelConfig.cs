using System.Text.Json;
using System.Text.Json.Serialization;
using MoeSharp.Kernels;
using MoeSharp.Layers;
using MoeSharp.Nn;

namespace MoeSharp.Models;

/// <summary>
/// Sizes and MoE settings of a decoder-only Transformer language model. Zero for <see cref="KvHeads"/> means "as
/// many as <see cref="Heads"/>", and zero for <see cref="HeadDim"/> means DModel / Heads. With <see cref="Moe"/>
/// set, every <see cref="MoeEvery"/>-th block's FFN is a mixture of experts (its Dim comes from DModel).
/// Serialised as snake_case JSON (config.json of a run).
/// </summary>
public sealed record ModelConfig
{
    /// <summary>The preset this config came from (see <see cref="Presets"/>), or "custom"; informational.</summary>
    public string Preset { get; init; } = "custom";
    /// <summary>Vocabulary size V: rows of the embedding, columns of the logits.</summary>
    public int Vocab { get; init; }
    /// <summary>Model width D: the residual stream is [T, D].</summary>
    public int DModel { get; init; } = 128;
    /// <summary>Number of Transformer blocks.</summary>
    public int Layers { get; init; } = 4;
    /// <summary>Query heads per attention layer.</summary>
    public int Heads { get; init; } = 4;
    /// <summary>Key/value heads (grouped-query attention); 0 means as many as <see cref="Heads"/>.</summary>
    public int KvHeads { get; init; }
    /// <summary>Width of one head; 0 means <see cref="DModel"/> / <see cref="Heads"/>.</summary>
    public int HeadDim { get; init; }

    /// <summary>Hidden width of the dense MLP blocks.</summary>
    [JsonPropertyName("d_ff")]
    public int DFF { get; init; } = 512;

    /// <summary>Context length in tokens: the longest sequence, and the RoPE table's size.</summary>
    public int Context { get; init; } = 64;
    /// <summary>The epsilon inside every RMSNorm.</summary>
    public float NormEps { get; init; } = 1e-5f;
    /// <summary>RoPE base frequency θ.</summary>
    public float RopeTheta { get; init; } = 10000f;
    /// <summary>How RoPE pairs dimensions: half-rotate (Llama, Hugging Face) or interleaved (Mistral's reference code).</summary>
    public RopeStyle RopeStyle { get; init; } = RopeStyle.HalfRotate;
    /// <summary>The dense MLP's activation: SwiGLU or GELU.</summary>
    public MlpKind Mlp { get; init; } = MlpKind.SwiGlu;
    /// <summary>Whether the LM head reuses the embedding matrix instead of its own lm_head.</summary>
    public bool TiedEmbeddings { get; init; }
    /// <summary>Standard deviation of the normal initialisation of the weights.</summary>
    public float InitStd { get; init; } = 0.02f;

    /// <summary>Biases on the q, k and v projections (Qwen2-MoE).</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public bool AttentionBias { get; init; }

    /// <summary>RMSNorm on q and k before RoPE: per head (Qwen3-MoE) or over the whole projection (OLMoE).</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public QkNorm QkNorm { get; init; }

    /// <summary>
    /// Multi-head latent attention (DeepSeek-V2/V3) instead of grouped-query attention; null for the latter. With it,
    /// <see cref="KvHeads"/> and <see cref="HeadDim"/> are unused and RoPE rotates qk_rope_head_dim elements.
    /// </summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public MlaOptions? Mla { get; init; }

    /// <summary>A bias on the attention output projection o_proj (GPT-OSS).</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public bool AttentionOutBias { get; init; }

    /// <summary>A learned sink logit per head in every attention softmax (GPT-OSS's self_attn.sinks).</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public bool AttentionSinks { get; init; }

    /// <summary>Sliding-window attention: position P of a sliding layer sees keys P − W + 1 .. P; 0 for none.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public int SlidingWindow { get; init; }

    /// <summary>The blocks whose attention slides (GPT-OSS's layer_types); null means every block when <see cref="SlidingWindow"/> is set.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public int[]? SlidingLayers { get; init; }

    /// <summary>YaRN scaling of RoPE (rope_scaling of type yarn); null for plain RoPE.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public YarnScaling? Yarn { get; init; }

    /// <summary>The MoE FFN settings; null for a dense model.</summary>
    public MoeOptions? Moe { get; init; }

    /// <summary>Blocks i with i % MoeEvery == MoeEvery − 1 get an MoE FFN (1: every block; 2: every other, as Switch).</summary>
    public int MoeEvery { get; init; } = 1;

    /// <summary>Blocks that keep a dense MLP whatever <see cref="MoeEvery"/> says (Qwen-MoE's mlp_only_layers); null for none.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public int[]? DenseLayers { get; init; }

    /// <summary><see cref="KvHeads"/> with 0 resolved to <see cref="Heads"/>.</summary>
    [JsonIgnore] public int ResolvedKvHeads => KvHeads == 0 ? Heads : KvHeads;

    /// <summary><see cref="HeadDim"/> with 0 resolved to <see cref="DModel"/> / <see cref="Heads"/>.</summary>
    [JsonIgnore] public int ResolvedHeadDim => HeadDim == 0 && Heads > 0 ? DModel / Heads : HeadDim;

    /// <summary>Elements RoPE rotates per head: the head dimension, or qk_rope_head_dim with latent attention.</summary>
    [JsonIgnore] public int RopeDim => Mla?.QkRopeHeadDim ?? ResolvedHeadDim;

    /// <summary>The attention window of block <paramref name="layer"/>: <see cref="SlidingWindow"/> on a sliding block, else 0 (all keys).</summary>
    public int WindowOf(int layer) =>
        SlidingWindow > 0 && (SlidingLayers is null || Array.IndexOf(SlidingLayers, layer) >= 0) ? SlidingWindow : 0;

    /// <summary>Whether block <paramref name="layer"/> has an MoE FFN.</summary>
    public bool IsMoeLayer(int layer) =>
        Moe is not null && layer % MoeEvery == MoeEvery - 1 && (DenseLayers is null || Array.IndexOf(DenseLayers, layer) < 0);

    /// <summary>The MoE options of this model, with Dim filled in from DModel.</summary>
    [JsonIgnore] public MoeOptions? ResolvedMoe => Moe is null ? null : Moe with { Dim = DModel, InitStd = Moe.InitStd };

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid field.</summary>
    public void Validate()
    {
        static void Positive(int value, string field)
        {
            if (value <= 0) throw new ArgumentException($"Model config: {Snake(field)} must be positive, got {value}.", field);
        }
        Positive(Vocab, nameof(Vocab));
        Positive(DModel, nameof(DModel));
        Positive(Layers, nameof(Layers));
        Positive(Heads, nameof(Heads));
        Positive(DFF, "d_ff");
        Positive(Context, nameof(Context));
        Positive(MoeEvery, nameof(MoeEvery));
        if (Mla is null)
        {
            if (KvHeads < 0 || Heads % ResolvedKvHeads != 0)
                throw new ArgumentException($"Model config: kv_heads ({KvHeads}) must divide heads ({Heads}).", nameof(KvHeads));
            if (HeadDim == 0 && DModel % Heads != 0)
                throw new ArgumentException($"Model config: d_model ({DModel}) must be a multiple of heads ({Heads}) unless head_dim is set.", nameof(DModel));
            if (ResolvedHeadDim <= 0 || ResolvedHeadDim % 2 != 0)
                throw new ArgumentException($"Model config: the head dimension must be even and positive for RoPE, got {ResolvedHeadDim}.", nameof(HeadDim));
        }
        else
        {
            try
            {
                Mla.Validate();
            }
            catch (ArgumentException ex)
            {
                throw new ArgumentException($"Model config: {ex.Message}", nameof(Mla), ex);
            }
            if (QkNorm != QkNorm.None || AttentionBias)
                throw new ArgumentException("Model config: latent attention (mla) has no q/k norms or q/k/v biases; qk_norm must be none and attention_bias false.", nameof(Mla));
        }
        if (!(NormEps > 0)) throw new ArgumentException($"Model config: norm_eps must be positive, got {NormEps}.", nameof(NormEps));
        if (!(RopeTheta > 0)) throw new ArgumentException($"Model config: rope_theta must be positive, got {RopeTheta}.", nameof(RopeTheta));
        if (!(InitStd > 0)) throw new ArgumentException($"Model config: init_std must be positive, got {InitStd}.", nameof(InitStd));
        if (!Enum.IsDefined(RopeStyle)) throw new ArgumentException($"Model config: unknown rope_style {(int)RopeStyle}.", nameof(RopeStyle));
        if (!Enum.IsDefined(Mlp)) throw new ArgumentException($"Model config: unknown mlp {(int)Mlp}.", nameof(Mlp));
        if (!Enum.IsDefined(QkNorm)) throw new ArgumentException($"Model config: unknown qk_norm {(int)QkNorm}.", nameof(QkNorm));
        if (SlidingWindow < 0) throw new ArgumentException($"Model config: sliding_window must be non-negative, got {SlidingWindow}.", nameof(SlidingWindow));
        foreach (int layer in SlidingLayers ?? [])
            if ((uint)layer >= (uint)Layers)
                throw new ArgumentException($"Model config: sliding_layers holds {layer}; layers are 0..{Layers - 1}.", nameof(SlidingLayers));
        try
        {
            Yarn?.Validate();
        }
        catch (ArgumentException ex)
        {
            throw new ArgumentException($"Model config: yarn: {ex.Message}", nameof(Yarn), ex);
        }
        foreach (int layer in DenseLayers ?? [])
            if ((uint)layer >= (uint)Layers)
                throw new ArgumentException($"Model config: dense_layers holds {layer}; layers are 0..{Layers - 1}.", nameof(DenseLayers));
        try
        {
            ResolvedMoe?.Validate();
        }
        catch (ArgumentException ex)
        {
            throw new ArgumentException($"Model config: moe.{ex.Message.Replace("MoeOptions.", "")}", ex.ParamName, ex);
        }
    }

    /// <summary>This config as indented snake_case JSON, as in a run's config.json.</summary>
    public string ToJson() => JsonSerializer.Serialize(this, Json);

    /// <summary>Parses (and unless told otherwise validates) a config; errors name the file and the field.</summary>
    public static ModelConfig FromJson(string json, string source, bool validate = true)
    {
        ModelConfig? config;
        try
        {
            config = JsonSerializer.Deserialize<ModelConfig>(json, Json);
        }
        catch (JsonException ex)
        {
            throw new InvalidDataException($"{source}: {ex.Message}", ex);
        }
        if (config is null) throw new InvalidDataException($"{source}: the config is null.");
        if (!validate) return config;
        try
        {
            config.Validate();
        }
        catch (ArgumentException ex)
        {
            throw new ArgumentException($"{source}: {ex.Message}", ex.ParamName, ex);
        }
        return config;
    }

    private static string Snake(string name) => JsonNamingPolicy.SnakeCaseLower.ConvertName(name);

    /// <summary>snake_case, indented, unknown fields refused, enums as snake_case strings.</summary>
    internal static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower) },
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };
}
