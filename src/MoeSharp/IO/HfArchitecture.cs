using System.Text.Json;
using System.Text.RegularExpressions;
using MoeSharp.Kernels;
using MoeSharp.Layers;
using MoeSharp.Models;
using MoeSharp.Nn;
using MoeSharp.Routing;

namespace MoeSharp.IO;

/// <summary>
/// A Hugging Face <c>model_type</c> that <see cref="ModelStore"/> loads: how its config.json becomes a
/// <see cref="ModelConfig"/>, and under which name its checkpoint stores each parameter. Every architecture is the
/// same <see cref="MoeTransformer"/> with other options (q/k norms, q/k/v biases, a gated shared expert, dense
/// layers, renormalised top-k or not), so nothing in the model or the MoE layer branches on the architecture.
/// </summary>
public sealed partial class HfArchitecture
{
    private readonly Func<JsonElement, string, int?, ModelConfig> _config;
    private readonly Func<string, string>? _tensorName;
    private readonly Gguf? _gguf;
    private readonly Action<ParameterArena, SafetensorsModel>? _load;
    private readonly Func<SafetensorsModel, Parameter, bool, Formats.QuantizedMatrix[]?>? _stored;

    private HfArchitecture(string modelType, Func<JsonElement, string, int?, ModelConfig> config, Func<string, string>? tensorName, Gguf? gguf = null,
        Action<ParameterArena, SafetensorsModel>? load = null, Func<SafetensorsModel, Parameter, bool, Formats.QuantizedMatrix[]?>? stored = null)
    {
        ModelType = modelType;
        _config = config;
        _tensorName = tensorName;
        _gguf = gguf;
        _load = load;
        _stored = stored;
    }

    /// <summary>
    /// The stored matrices of a parameter that the architecture's checkpoint keeps fused or quantized (GPT-OSS's
    /// experts), for an inference load; null leaves the parameter to the tensor-by-tensor reading. <paramref name="converting"/>
    /// says that the load quantizes, so a float tensor that cannot be used in place is worth rearranging into fp32 rows.
    /// </summary>
    internal Formats.QuantizedMatrix[]? StoredMatrices(SafetensorsModel source, Parameter p, bool converting) => _stored?.Invoke(source, p, converting);

    /// <summary>
    /// Fills every parameter of <paramref name="arena"/> from the checkpoint <paramref name="source"/>: tensor by
    /// tensor under <see cref="TensorName"/>, except where the architecture stores tensors fused or quantized.
    /// </summary>
    public void LoadWeights(ParameterArena arena, SafetensorsModel source)
    {
        if (_load is null) ModelStore.LoadModel(arena, source, _tensorName);
        else _load(arena, source);
    }

    /// <summary>What a GGUF file cannot say about an architecture: llama.cpp fixes these per architecture in its code.</summary>
    private sealed record Gguf(string Name, string Preset, QkNorm QkNorm, bool NormalizeTopK, RopeStyle Rope = RopeStyle.HalfRotate)
    {
        /// <summary>Reads the config where the shared reading (<see cref="ReadGguf"/>) does not fit; null to use it.</summary>
        public Func<GgufFile, int?, ModelConfig>? Config { get; init; }

        /// <summary>The architecture's own llama.cpp name for a parameter, where it differs from <see cref="ModelStore.GgufName"/>; null elsewhere.</summary>
        public Func<string, string?>? Rename { get; init; }
    }

    /// <summary>The config.json <c>model_type</c> this entry reads.</summary>
    public string ModelType { get; }

    /// <summary>llama.cpp's general.architecture for this model type; null when MoeSharp does not read its GGUF files.</summary>
    public string? GgufArchitecture => _gguf?.Name;

    /// <summary>Maps a MoeSharp parameter name (Mixtral-style) to the checkpoint's tensor name; null when they are the same.</summary>
    public Func<string, string>? TensorName => _tensorName;

    /// <summary>Every supported architecture.</summary>
    public static IReadOnlyList<HfArchitecture> All { get; } =
    [
        // convert_hf_to_gguf.py writes Mixtral as arch "llama" with q/k rows permuted (LlamaModel.permute) to
        // llama.cpp's interleaved RoPE, so the same rows computed with interleaved RoPE give the HF model.
        new("mixtral", (c, s, m) => ModelStore.FromHuggingFace(c, s, m), null, new Gguf("llama", "gguf-llama", QkNorm.None, NormalizeTopK: true, RopeStyle.Interleaved)),
        new("qwen2_moe", Qwen2Moe, QwenName, new Gguf("qwen2moe", "gguf-qwen2-moe", QkNorm.None, NormalizeTopK: false)),
        new("qwen3_moe", Qwen3Moe, QwenName, new Gguf("qwen3moe", "gguf-qwen3-moe", QkNorm.PerHead, NormalizeTopK: true)),
        new("olmoe", Olmoe, QwenName, new Gguf("olmoe", "gguf-olmoe", QkNorm.Whole, NormalizeTopK: false)),
        // convert_hf_to_gguf.py writes both DeepSeek versions as deepseek2, told apart by expert_gating_func, so
        // either entry reads any deepseek2 file (ForGguf takes the first).
        new("deepseek_v2", DeepseekV2, DeepseekName, DeepseekGguf),
        new("deepseek_v3", DeepseekV3, DeepseekName, DeepseekGguf),
        new("gpt_oss", GptOss, GptOssName, GptOssGguf, load: LoadGptOss, stored: GptOssStored),
    ];

    /// <summary>The architecture of <paramref name="modelType"/>; an unknown one is an error naming it and the supported list.</summary>
    public static HfArchitecture For(string? modelType, string source)
    {
        foreach (var a in All)
            if (a.ModelType == modelType) return a;
        throw new InvalidDataException($"{source}: model_type '{modelType}' is not supported; expected one of {string.Join(", ", All.Select(a => a.ModelType))}.");
    }

    /// <summary>The architecture whose GGUF general.architecture is <paramref name="name"/>; an unknown one is an error naming it and the supported list.</summary>
    public static HfArchitecture ForGguf(string? name, string source)
    {
        foreach (var a in All)
            if (a._gguf is not null && a._gguf.Name == name) return a;
        throw new InvalidDataException($"{source}: general.architecture '{name}' is not supported; expected one of {string.Join(", ", All.Where(a => a._gguf is not null).Select(a => a._gguf!.Name).Distinct())}.");
    }

    /// <summary>
    /// The model a GGUF file describes: sizes from its metadata (as convert_hf_to_gguf.py writes them), and what the
    /// metadata leaves out from which tensors exist (biases, shared expert, dense blocks, an untied head).
    /// </summary>
    public ModelConfig ReadGguf(GgufFile file, int? maxContext = null)
    {
        var g = _gguf ?? throw new InvalidOperationException($"MoeSharp does not read GGUF files of {ModelType}.");
        if (g.Config is not null) return g.Config(file, maxContext);
        string source = file.Path;
        int Required(string key) => GgufInt(file, $"{g.Name}.{key}") ?? throw new InvalidDataException($"{source}: missing integer metadata '{g.Name}.{key}'.");
        int hidden = Required("embedding_length"), heads = Required("attention.head_count"), layers = Required("block_count");
        int expertHidden = GgufInt(file, $"{g.Name}.expert_feed_forward_length") ?? Required("feed_forward_length");
        int shared = file.Contains("blk.0.ffn_up_shexp.weight")
            ? GgufInt(file, $"{g.Name}.expert_shared_feed_forward_length") ?? (int)file["blk.0.ffn_up_shexp.weight"].Dims[1] : 0;
        var dense = new List<int>();
        for (int i = 0; i < layers; i++) if (!file.Contains($"blk.{i}.ffn_gate_inp.weight")) dense.Add(i);
        var config = new ModelConfig
        {
            Preset = g.Preset,
            Vocab = GgufInt(file, $"{g.Name}.vocab_size") ?? (file.Contains("token_embd.weight") ? (int)file["token_embd.weight"].Dims[^1] : Required("vocab_size")),
            DModel = hidden,
            Layers = layers,
            Heads = heads,
            KvHeads = GgufInt(file, $"{g.Name}.attention.head_count_kv") ?? heads,
            HeadDim = GgufInt(file, $"{g.Name}.attention.key_length") ?? hidden / heads,
            DFF = Required("feed_forward_length"),
            Context = maxContext ?? GgufInt(file, $"{g.Name}.context_length") ?? 4096,
            NormEps = (float)(GgufDouble(file, $"{g.Name}.attention.layer_norm_rms_epsilon") ?? 1e-6),
            RopeTheta = (float)(GgufDouble(file, $"{g.Name}.rope.freq_base") ?? 10000),
            RopeStyle = g.Rope,
            TiedEmbeddings = !file.Contains("output.weight"),
            QkNorm = g.QkNorm,
            AttentionBias = file.Contains("blk.0.attn_q.bias"),
            DenseLayers = dense.Count > 0 ? dense.ToArray() : null,
            Moe = new MoeOptions
            {
                Experts = Required("expert_count"),
                TopK = Required("expert_used_count"),
                ExpertHidden = expertHidden,
                Router = RouterKind.SoftmaxTopK,
                NormalizeTopK = g.NormalizeTopK,
                SharedExperts = shared > 0 ? 1 : 0,
                SharedHidden = shared,
                SharedGate = file.Contains("blk.0.ffn_gate_inp_shexp.weight"),
                LoadBalanceCoef = 0,
                ZLossCoef = 0,
            },
        };
        return ModelStore.Validated(config, source);
    }

    private static int? GgufInt(GgufFile file, string key) =>
        file.Metadata.TryGetValue(key, out var v) && v.Value is uint or int or ulong or long or ushort or short or byte or sbyte
            ? checked((int)Convert.ToInt64(v.Value, System.Globalization.CultureInfo.InvariantCulture)) : null;

    private static double? GgufDouble(GgufFile file, string key) =>
        file.Metadata.TryGetValue(key, out var v) && v.Value is float or double ? Convert.ToDouble(v.Value, System.Globalization.CultureInfo.InvariantCulture) : null;

    /// <summary>The model described by config.json's root object <paramref name="config"/>, read from <paramref name="source"/>.</summary>
    public ModelConfig ReadConfig(JsonElement config, string source, int? maxContext = null) => _config(config, source, maxContext);

    /// <summary>
    /// Qwen2-MoE: q/k/v biases, softmax top-k (renormalised per norm_topk_prob), a shared expert of its own width
    /// scaled by σ(shared_expert_gate·x), MoE in every decoder_sparse_step-th block except mlp_only_layers.
    /// </summary>
    private static ModelConfig Qwen2Moe(JsonElement c, string source, int? maxContext)
    {
        int shared = ModelStore.OptionalInt(c, "shared_expert_intermediate_size") ?? 0;
        var config = Common(c, source, maxContext, "hf-qwen2-moe", ModelStore.Int(c, "moe_intermediate_size", source)) with
        {
            AttentionBias = Bool(c, "qkv_bias") ?? true,
        };
        if (shared < 0) throw new InvalidDataException($"{source}: shared_expert_intermediate_size must be non-negative, got {shared}.");
        return Sparse(c, source, config with
        {
            Moe = config.Moe! with { SharedExperts = shared > 0 ? 1 : 0, SharedHidden = shared, SharedGate = shared > 0 },
        });
    }

    /// <summary>Qwen3-MoE: RMSNorm on q and k per head, head_dim of its own, no shared expert, dense layers as Qwen2-MoE.</summary>
    private static ModelConfig Qwen3Moe(JsonElement c, string source, int? maxContext) =>
        Sparse(c, source, Common(c, source, maxContext, "hf-qwen3-moe", ModelStore.Int(c, "moe_intermediate_size", source)) with
        {
            QkNorm = QkNorm.PerHead,
            AttentionBias = Bool(c, "attention_bias") ?? false,
        });

    /// <summary>OLMoE: RMSNorm on q and k over the whole projection, experts of intermediate_size, MoE in every block.</summary>
    private static ModelConfig Olmoe(JsonElement c, string source, int? maxContext)
    {
        if (c.TryGetProperty("clip_qkv", out var clip) && clip.ValueKind != JsonValueKind.Null)
            throw new InvalidDataException($"{source}: clip_qkv {clip.GetRawText()} is not supported; expected null.");
        return ModelStore.Validated(Common(c, source, maxContext, "hf-olmoe", ModelStore.Int(c, "intermediate_size", source)) with
        {
            QkNorm = QkNorm.Whole,
            AttentionBias = Bool(c, "attention_bias") ?? false,
        }, source);
    }

    /// <summary>
    /// DeepSeek-V3: multi-head latent attention (q_lora_rank, kv_lora_rank, qk_nope/qk_rope/v head dims) with
    /// interleaved-pair RoPE on the rotary parts (rope_interleave, true by default), the first first_k_dense_replace
    /// blocks dense, then sigmoid routing with e_score_correction_bias limited to topk_group of n_group groups,
    /// weights renormalised per norm_topk_prob and scaled by routed_scaling_factor, and n_shared_experts shared experts
    /// of moe_intermediate_size. rope_scaling of type yarn scales the rotary parts' table (magnitude
    /// mscale(s, mscale) / mscale(s, mscale_all_dim), 1 in the released configs, where the two are equal) and
    /// multiplies the softmax scale by mscale(s, mscale_all_dim)², as HF's DeepseekV3Attention and llama.cpp's
    /// deepseek2 graph (its kq_scale) do. What V2's configs set instead (softmax scoring, greedy or
    /// group_limited_greedy top-k) or other rope_scaling types are refused by name.
    /// </summary>
    private static ModelConfig DeepseekV3(JsonElement c, string source, int? maxContext)
    {
        Expect(c, source, "scoring_func", "sigmoid");
        Expect(c, source, "topk_method", "noaux_tc");
        var (groups, topGroups) = DeepseekGroups(c, source);
        var config = DeepseekCommon(c, source, maxContext, "hf-deepseek-v3");
        return ModelStore.Validated(config with
        {
            Moe = config.Moe! with
            {
                Router = RouterKind.SigmoidBias,
                NormalizeTopK = Bool(c, "norm_topk_prob") ?? true,
                Groups = groups,
                TopGroups = topGroups,
            },
        }, source);
    }

    /// <summary>
    /// DeepSeek-V2: V3's attention, dense blocks and shared experts (see <see cref="DeepseekV3"/>), with V2's router:
    /// softmax scores (scoring_func softmax) without a selection bias, top-k over all experts (topk_method greedy,
    /// V2-Lite) or within the topk_group of n_group groups whose best score is highest (group_limited_greedy, V2),
    /// renormalised when norm_topk_prob (false in V2) and scaled by routed_scaling_factor. DeepSeek's own V2 code
    /// scales only when it does not renormalise and HF's port ignores norm_topk_prob; MoeSharp does what llama.cpp
    /// does (renormalise, then scale): all three agree on the released checkpoints, whose norm_topk_prob is false.
    /// llama.cpp, though, ranks groups by the sum of their two best scores for every deepseek2 file, V2's included.
    /// </summary>
    private static ModelConfig DeepseekV2(JsonElement c, string source, int? maxContext)
    {
        Expect(c, source, "scoring_func", "softmax");
        string? method = c.TryGetProperty("topk_method", out var m) && m.ValueKind == JsonValueKind.String ? m.GetString() : null;
        if (m.ValueKind is not (JsonValueKind.Undefined or JsonValueKind.Null) && method is not ("greedy" or "group_limited_greedy"))
            throw new InvalidDataException($"{source}: topk_method {m.GetRawText()} is not supported for deepseek_v2; expected \"greedy\" or \"group_limited_greedy\".");
        var (groups, topGroups) = method == "group_limited_greedy" ? DeepseekGroups(c, source) : (1, 1);
        var config = DeepseekCommon(c, source, maxContext, "hf-deepseek-v2");
        return ModelStore.Validated(config with
        {
            Moe = config.Moe! with
            {
                Router = RouterKind.SoftmaxTopK,
                NormalizeTopK = Bool(c, "norm_topk_prob") ?? false,
                Groups = groups,
                TopGroups = topGroups,
            },
        }, source);
    }

    /// <summary>n_group and topk_group (1 when absent), each checked against the other and the expert count by its config name.</summary>
    private static (int Groups, int TopGroups) DeepseekGroups(JsonElement c, string source)
    {
        int groups = ModelStore.OptionalInt(c, "n_group") ?? 1, top = ModelStore.OptionalInt(c, "topk_group") ?? 1;
        int experts = ModelStore.Int(c, "n_routed_experts", source);
        if (groups < 1 || experts % groups != 0)
            throw new InvalidDataException($"{source}: n_group must be positive and divide n_routed_experts = {experts}, got {groups}.");
        if (top < 1 || top > groups)
            throw new InvalidDataException($"{source}: topk_group must be in [1, n_group = {groups}], got {top}.");
        return (groups, top);
    }

    /// <summary>What DeepSeek-V2 and V3 configs share: everything but the router's kind, groups and renormalisation.</summary>
    private static ModelConfig DeepseekCommon(JsonElement c, string source, int? maxContext, string preset)
    {
        var yarn = Yarn(c, source);
        if (ModelStore.OptionalInt(c, "moe_layer_freq") is int freq && freq != 1)
            throw new InvalidDataException($"{source}: moe_layer_freq {freq} is not supported; expected 1.");
        if (Bool(c, "attention_bias") == true)
            throw new InvalidDataException($"{source}: attention_bias true is not supported for DeepSeek; expected false.");
        int layers = ModelStore.Int(c, "num_hidden_layers", source);
        int dense = ModelStore.OptionalInt(c, "first_k_dense_replace") ?? 0;
        if (dense < 0 || dense > layers)
            throw new InvalidDataException($"{source}: first_k_dense_replace must be in [0, num_hidden_layers = {layers}], got {dense}.");
        int expertHidden = ModelStore.Int(c, "moe_intermediate_size", source);
        int shared = ModelStore.OptionalInt(c, "n_shared_experts") ?? 0;
        if (shared < 0) throw new InvalidDataException($"{source}: n_shared_experts must be non-negative, got {shared}.");
        double theta = ModelStore.OptionalDouble(c, "rope_theta") ?? 10000;
        return new ModelConfig
        {
            Preset = preset,
            Vocab = ModelStore.Int(c, "vocab_size", source),
            DModel = ModelStore.Int(c, "hidden_size", source),
            Layers = layers,
            Heads = ModelStore.Int(c, "num_attention_heads", source),
            DFF = ModelStore.Int(c, "intermediate_size", source),
            Context = maxContext ?? ModelStore.OptionalInt(c, "max_position_embeddings") ?? 4096,
            NormEps = (float)(ModelStore.OptionalDouble(c, "rms_norm_eps") ?? 1e-6),
            RopeTheta = (float)theta,
            // HF de-interleaves the rotary parts before rotate_half; that is interleaved-pair RoPE up to a
            // permutation that q and k share, so scores are the same (llama.cpp runs it as LLAMA_ROPE_TYPE_NORM).
            RopeStyle = Bool(c, "rope_interleave") ?? true ? RopeStyle.Interleaved : RopeStyle.HalfRotate,
            TiedEmbeddings = Bool(c, "tie_word_embeddings") ?? false,
            Mla = new MlaOptions
            {
                QLoraRank = ModelStore.OptionalInt(c, "q_lora_rank") ?? 0,
                KvLoraRank = ModelStore.Int(c, "kv_lora_rank", source),
                QkNopeHeadDim = ModelStore.Int(c, "qk_nope_head_dim", source),
                QkRopeHeadDim = ModelStore.Int(c, "qk_rope_head_dim", source),
                VHeadDim = ModelStore.Int(c, "v_head_dim", source),
                SoftmaxMultiplier = DeepseekSoftmaxMultiplier(yarn),
            },
            Yarn = yarn,
            DenseLayers = dense > 0 ? Enumerable.Range(0, dense).ToArray() : null,
            Moe = new MoeOptions
            {
                Experts = ModelStore.Int(c, "n_routed_experts", source),
                TopK = ModelStore.Int(c, "num_experts_per_tok", source),
                ExpertHidden = expertHidden,
                RoutedScaling = (float)(ModelStore.OptionalDouble(c, "routed_scaling_factor") ?? 1),
                SharedExperts = shared,
                SharedHidden = expertHidden,
                LoadBalanceCoef = 0,
                ZLossCoef = 0,
            },
        };
    }

    /// <summary>
    /// HF's DeepseekV3Attention: the softmax scale is multiplied by m² with m = 0.1·mscale_all_dim·ln(factor) + 1
    /// (1 for factor ≤ 1, or without mscale_all_dim, or without YaRN). It makes up for the longer context's flatter
    /// attention on every dimension, where the rotary table's own magnitude only covers the rotary part.
    /// </summary>
    private static float DeepseekSoftmaxMultiplier(YarnScaling? yarn)
    {
        if (yarn is not { MscaleAllDim: float all } || all == 0 || yarn.Factor <= 1) return 1f;
        double m = 0.1 * all * Math.Log(yarn.Factor) + 1;
        return (float)(m * m);
    }

    /// <summary>A string field that, when present, must hold <paramref name="expected"/>.</summary>
    private static void Expect(JsonElement c, string source, string field, string expected)
    {
        if (c.TryGetProperty(field, out var v) && v.ValueKind != JsonValueKind.Null && !(v.ValueKind == JsonValueKind.String && v.GetString() == expected))
            throw new InvalidDataException($"{source}: {field} {v.GetRawText()} is not supported; expected \"{expected}\".");
    }

    /// <summary>What the Qwen-MoE and OLMoE configs share; experts of width <paramref name="expertHidden"/>.</summary>
    private static ModelConfig Common(JsonElement c, string source, int? maxContext, string preset, int expertHidden)
    {
        if (c.TryGetProperty("rope_scaling", out var scaling) && scaling.ValueKind != JsonValueKind.Null)
            throw new InvalidDataException($"{source}: rope_scaling {scaling.GetRawText()} is not supported; expected null.");
        if (Bool(c, "use_sliding_window") == true)
            throw new InvalidDataException($"{source}: use_sliding_window true is not supported; expected false.");
        int hidden = ModelStore.Int(c, "hidden_size", source), heads = ModelStore.Int(c, "num_attention_heads", source);
        bool aux = Bool(c, "output_router_logits") ?? false;
        double theta = ModelStore.OptionalDouble(c, "rope_theta")
            ?? (c.TryGetProperty("rope_parameters", out var rope) ? ModelStore.OptionalDouble(rope, "rope_theta") : null) ?? 10000;
        return new ModelConfig
        {
            Preset = preset,
            Vocab = ModelStore.Int(c, "vocab_size", source),
            DModel = hidden,
            Layers = ModelStore.Int(c, "num_hidden_layers", source),
            Heads = heads,
            KvHeads = ModelStore.OptionalInt(c, "num_key_value_heads") ?? heads,
            HeadDim = ModelStore.OptionalInt(c, "head_dim") ?? hidden / heads,
            DFF = ModelStore.Int(c, "intermediate_size", source),
            Context = maxContext ?? ModelStore.OptionalInt(c, "max_position_embeddings") ?? 4096,
            NormEps = (float)(ModelStore.OptionalDouble(c, "rms_norm_eps") ?? 1e-6),
            RopeTheta = (float)theta,
            RopeStyle = RopeStyle.HalfRotate,
            TiedEmbeddings = Bool(c, "tie_word_embeddings") ?? false,
            Moe = new MoeOptions
            {
                Experts = ModelStore.Int(c, "num_experts", source),
                TopK = ModelStore.Int(c, "num_experts_per_tok", source),
                ExpertHidden = expertHidden,
                Router = RouterKind.SoftmaxTopK,
                NormalizeTopK = Bool(c, "norm_topk_prob") ?? false,
                LoadBalanceCoef = aux ? (float)(ModelStore.OptionalDouble(c, "router_aux_loss_coef") ?? 0.001) : 0,
                LoadBalanceNormalization = LoadBalanceNormalization.PerToken,
                ZLossCoef = 0,
            },
        };
    }

    /// <summary>Qwen's sparse-layer pattern: block i is MoE when (i + 1) % decoder_sparse_step == 0 and i ∉ mlp_only_layers.</summary>
    private static ModelConfig Sparse(JsonElement c, string source, ModelConfig config)
    {
        int step = ModelStore.OptionalInt(c, "decoder_sparse_step") ?? 1;
        int[]? dense = null;
        if (c.TryGetProperty("mlp_only_layers", out var only) && only.ValueKind == JsonValueKind.Array && only.GetArrayLength() > 0)
        {
            dense = new int[only.GetArrayLength()];
            int i = 0;
            foreach (var v in only.EnumerateArray())
                dense[i++] = v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int layer) ? layer
                    : throw new InvalidDataException($"{source}: mlp_only_layers holds {v.GetRawText()}; expected layer indices.");
        }
        return ModelStore.Validated(config with { MoeEvery = step, DenseLayers = dense }, source);
    }

    private static bool? Bool(JsonElement c, string field) =>
        c.TryGetProperty(field, out var v) && v.ValueKind is JsonValueKind.True or JsonValueKind.False ? v.GetBoolean() : null;

    [GeneratedRegex(@"\.experts\.(\d+)\.w([123])\.weight$")]
    private static partial Regex MixtralExpert();

    /// <summary>DeepSeek names: Qwen's, with the fused shared experts under <c>mlp.shared_experts</c>.</summary>
    private static string DeepseekName(string name) => QwenName(name).Replace(".mlp.shared_expert.", ".mlp.shared_experts.");

    /// <summary>Qwen-MoE and OLMoE names: the MoE block is <c>mlp</c> and its experts use Llama's projection names.</summary>
    private static string QwenName(string name) =>
        MixtralExpert().Replace(name.Replace(".block_sparse_moe.", ".mlp."), m =>
            $".experts.{m.Groups[1].Value}.{m.Groups[2].Value switch { "1" => "gate_proj", "2" => "down_proj", _ => "up_proj" }}.weight");
}
