using System.Text.RegularExpressions;
using MoeSharp.Experts;
using MoeSharp.Kernels;
using MoeSharp.Layers;
using MoeSharp.Models;
using MoeSharp.Nn;
using MoeSharp.Routing;

namespace MoeSharp.IO;

public sealed partial class HfArchitecture
{
    /// <summary>DeepSeek-V2 and V3 as DeepseekV2Model in convert_hf_to_gguf.py writes them (conversion/deepseek.py).</summary>
    private static Gguf DeepseekGguf => new("deepseek2", "gguf-deepseek2", QkNorm.None, NormalizeTopK: false, RopeStyle.Interleaved) { Config = ReadDeepseekGguf };

    /// <summary>GPT-OSS as GptOssModel in convert_hf_to_gguf.py writes it (conversion/gpt_oss.py).</summary>
    private static Gguf GptOssGguf => new("gpt-oss", "gguf-gpt-oss", QkNorm.None, NormalizeTopK: false) { Config = ReadGptOssGguf, Rename = GptOssGgufName };

    /// <summary>
    /// llama.cpp's tensor name for <paramref name="parameter"/> in this architecture's GGUF files: <see cref="ModelStore.GgufName"/>,
    /// except where llama.cpp gives the role another name for this architecture alone.
    /// </summary>
    public string GgufTensorName(string parameter) => _gguf?.Rename?.Invoke(parameter) ?? ModelStore.GgufName(parameter);

    /// <summary>GPT-OSS's norm after attention is llama.cpp's attn_post_norm (post_attention_norm), not ffn_norm.</summary>
    private static string? GptOssGgufName(string parameter) =>
        parameter.EndsWith(".post_attention_layernorm.weight", StringComparison.Ordinal)
            ? ModelStore.GgufName(parameter).Replace(".ffn_norm.", ".post_attention_norm.", StringComparison.Ordinal) : null;

    /// <summary>
    /// A deepseek2 file's model. Sizes come from DeepseekV2Model.set_gguf_parameters' keys: since the converter splits
    /// kv_b_proj for llama.cpp's absorbed MLA, key_length_mla and value_length_mla hold the per-head q/k and v widths
    /// (key_length and value_length then describe the latent cache); older files hold them in key_length and
    /// value_length. expert_gating_func tells the versions apart: softmax (1, and llama.cpp's default for files without
    /// it) is V2's router, sigmoid (2) V3's with its exp_probs_b selection bias; groups come from expert_group_count
    /// and expert_group_used_count, ranked as <see cref="DeepseekV2"/> and <see cref="DeepseekV3"/> rank them.
    /// YaRN's mscale_all_dim is rope.scaling.yarn_log_multiplier / 0.1 (the converter's 0.1·mscale_all_dim, which
    /// llama.cpp divides back), with mscale equal to it, as llama.cpp assumes.
    /// </summary>
    private static ModelConfig ReadDeepseekGguf(GgufFile file, int? maxContext)
    {
        const string a = "deepseek2";
        string source = file.Path;
        int Required(string key) => GgufInt(file, $"{a}.{key}") ?? throw new InvalidDataException($"{source}: missing integer metadata '{a}.{key}'.");
        int layers = Required("block_count"), dr = Required("rope.dimension_count");
        int qk = GgufInt(file, $"{a}.attention.key_length_mla") ?? Required("attention.key_length");
        int v = GgufInt(file, $"{a}.attention.value_length_mla") ?? Required("attention.value_length");
        int gating = GgufInt(file, $"{a}.expert_gating_func") ?? 1;
        if (gating is not (1 or 2))
            throw new InvalidDataException($"{source}: {a}.expert_gating_func {gating} is not supported; expected 1 (softmax, DeepSeek-V2) or 2 (sigmoid, DeepSeek-V3).");
        int experts = Required("expert_count");
        int groups = Math.Max(1, GgufInt(file, $"{a}.expert_group_count") ?? 1), top = Math.Max(1, GgufInt(file, $"{a}.expert_group_used_count") ?? 1);
        if (experts % groups != 0)
            throw new InvalidDataException($"{source}: {a}.expert_group_count must divide {a}.expert_count = {experts}, got {groups}.");
        if (top > groups)
            throw new InvalidDataException($"{source}: {a}.expert_group_used_count must be in [1, {a}.expert_group_count = {groups}], got {top}.");
        int dense = GgufInt(file, $"{a}.leading_dense_block_count") ?? 0;
        if (dense < 0 || dense > layers)
            throw new InvalidDataException($"{source}: {a}.leading_dense_block_count must be in [0, {a}.block_count = {layers}], got {dense}.");
        int expertHidden = Required("expert_feed_forward_length");
        float scale = (float)(GgufDouble(file, $"{a}.expert_weights_scale") ?? 0);
        var yarn = GgufYarn(file, a);
        if (yarn is not null && GgufDouble(file, $"{a}.rope.scaling.yarn_log_multiplier") is double logMultiplier)
        {
            float all = (float)(logMultiplier / 0.1);
            yarn = yarn with { Mscale = all, MscaleAllDim = all };
        }
        var config = new ModelConfig
        {
            Preset = gating == 1 ? "gguf-deepseek-v2" : "gguf-deepseek-v3",
            Vocab = GgufVocab(file, a),
            DModel = Required("embedding_length"),
            Layers = layers,
            Heads = Required("attention.head_count"),
            DFF = Required("feed_forward_length"),
            Context = maxContext ?? GgufInt(file, $"{a}.context_length") ?? 4096,
            NormEps = (float)(GgufDouble(file, $"{a}.attention.layer_norm_rms_epsilon") ?? 1e-6),
            RopeTheta = (float)(GgufDouble(file, $"{a}.rope.freq_base") ?? 10000),
            // The converter does not permute deepseek2's rotary rows: llama.cpp rotates them as adjacent pairs.
            RopeStyle = RopeStyle.Interleaved,
            TiedEmbeddings = !file.Contains("output.weight"),
            Mla = new MlaOptions
            {
                QLoraRank = GgufInt(file, $"{a}.attention.q_lora_rank") ?? 0,
                KvLoraRank = Required("attention.kv_lora_rank"),
                QkNopeHeadDim = qk - dr,
                QkRopeHeadDim = dr,
                VHeadDim = v,
                SoftmaxMultiplier = DeepseekSoftmaxMultiplier(yarn),
            },
            Yarn = yarn,
            DenseLayers = dense > 0 ? Enumerable.Range(0, dense).ToArray() : null,
            Moe = new MoeOptions
            {
                Experts = experts,
                TopK = Required("expert_used_count"),
                ExpertHidden = expertHidden,
                Router = gating == 1 ? RouterKind.SoftmaxTopK : RouterKind.SigmoidBias,
                NormalizeTopK = file.Metadata.TryGetValue($"{a}.expert_weights_norm", out var norm) && norm.Value is true,
                Groups = groups,
                TopGroups = top,
                // llama.cpp scales only by a factor that is set and not 0.
                RoutedScaling = scale is 0 ? 1 : scale,
                SharedExperts = GgufInt(file, $"{a}.expert_shared_count") ?? 0,
                SharedHidden = expertHidden,
                LoadBalanceCoef = 0,
                ZLossCoef = 0,
            },
        };
        return ModelStore.Validated(config, source);
    }

    /// <summary>
    /// A gpt-oss file's model: sizes from the usual keys, the window from attention.sliding_window on the even blocks
    /// (llama.cpp's gpt-oss swa pattern 2, GPT-OSS's layer_types), YaRN from rope.scaling.*, biases and sinks from the
    /// tensors that hold them; the clamped SwiGLU's α 1.702 and limit 7 are fixed in llama.cpp's graph, as here.
    /// </summary>
    private static ModelConfig ReadGptOssGguf(GgufFile file, int? maxContext)
    {
        const string a = "gpt-oss";
        string source = file.Path;
        int Required(string key) => GgufInt(file, $"{a}.{key}") ?? throw new InvalidDataException($"{source}: missing integer metadata '{a}.{key}'.");
        int hidden = Required("embedding_length"), heads = Required("attention.head_count"), layers = Required("block_count");
        int window = GgufInt(file, $"{a}.attention.sliding_window") ?? 0;
        var sliding = new List<int>();
        for (int i = 0; i < layers; i += 2) sliding.Add(i);
        var config = new ModelConfig
        {
            Preset = "gguf-gpt-oss",
            Vocab = GgufVocab(file, a),
            DModel = hidden,
            Layers = layers,
            Heads = heads,
            KvHeads = GgufInt(file, $"{a}.attention.head_count_kv") ?? heads,
            HeadDim = GgufInt(file, $"{a}.attention.key_length") ?? hidden / heads,
            DFF = Required("feed_forward_length"),
            Context = maxContext ?? GgufInt(file, $"{a}.context_length") ?? 4096,
            NormEps = (float)(GgufDouble(file, $"{a}.attention.layer_norm_rms_epsilon") ?? 1e-5),
            RopeTheta = (float)(GgufDouble(file, $"{a}.rope.freq_base") ?? 150000),
            RopeStyle = RopeStyle.HalfRotate,
            Yarn = GgufYarn(file, a),
            TiedEmbeddings = !file.Contains("output.weight"),
            AttentionBias = file.Contains("blk.0.attn_q.bias"),
            AttentionOutBias = file.Contains("blk.0.attn_output.bias"),
            AttentionSinks = file.Contains("blk.0.attn_sinks.weight"),
            SlidingWindow = window > 0 ? window : 0,
            SlidingLayers = window > 0 ? sliding.ToArray() : null,
            Moe = new MoeOptions
            {
                Experts = Required("expert_count"),
                TopK = Required("expert_used_count"),
                ExpertHidden = GgufInt(file, $"{a}.expert_feed_forward_length") ?? Required("feed_forward_length"),
                Router = RouterKind.TopKSoftmax,
                GateBias = file.Contains("blk.0.ffn_gate_inp.bias"),
                ExpertBias = file.Contains("blk.0.ffn_gate_exps.bias"),
                SwiGluClamp = SwiGluClamp.GptOss,
                LoadBalanceCoef = 0,
                ZLossCoef = 0,
            },
        };
        return ModelStore.Validated(config, source);
    }

    private static int GgufVocab(GgufFile file, string a) =>
        GgufInt(file, $"{a}.vocab_size") ?? (file.Contains("token_embd.weight") ? (int)file["token_embd.weight"].Dims[^1]
            : throw new InvalidDataException($"{file.Path}: missing integer metadata '{a}.vocab_size' and tensor 'token_embd.weight'."));

    /// <summary>TextModel's rope.scaling.* keys as <see cref="YarnScaling"/>; null without them or with type none; another type is an error naming it.</summary>
    private static YarnScaling? GgufYarn(GgufFile file, string a)
    {
        string? type = file.Metadata.TryGetValue($"{a}.rope.scaling.type", out var t) ? t.Value as string : null;
        if (type is null or "none") return null;
        if (type != "yarn") throw new InvalidDataException($"{file.Path}: {a}.rope.scaling.type '{type}' is not supported; expected \"yarn\" or none.");
        var yarn = new YarnScaling(
            (float)(GgufDouble(file, $"{a}.rope.scaling.factor") ?? throw new InvalidDataException($"{file.Path}: missing number metadata '{a}.rope.scaling.factor'.")),
            GgufInt(file, $"{a}.rope.scaling.original_context_length") ?? throw new InvalidDataException($"{file.Path}: missing integer metadata '{a}.rope.scaling.original_context_length'."),
            (float)(GgufDouble(file, $"{a}.rope.scaling.yarn_beta_fast") ?? 32), (float)(GgufDouble(file, $"{a}.rope.scaling.yarn_beta_slow") ?? 1));
        try
        {
            yarn.Validate();
        }
        catch (ArgumentException ex)
        {
            throw new InvalidDataException($"{file.Path}: {a}.rope.scaling: {ex.Message}", ex);
        }
        return yarn;
    }

    [GeneratedRegex(@"^model\.layers\.(\d+)\.self_attn\.kv_b_proj\.weight$")]
    private static partial Regex KvBProj();

    /// <summary>
    /// Fills the parameters a GGUF file stores split rather than one tensor each, and names the tensors it read, so
    /// that <see cref="ModelStore.OpenGguf(string, ModelLoadOptions)"/>'s tensor-by-tensor binding leaves both alone. convert_hf_to_gguf.py
    /// splits DeepSeek's kv_b_proj [H·(dn+dv), r] per head into attn_k_b [H, r, dn] (each head's key rows,
    /// transposed) and attn_v_b [H, dv, r] for llama.cpp's absorbed MLA path; files from before keep attn_kv_b
    /// whole, and the binding reads that one as it is.
    /// </summary>
    public (IReadOnlySet<string> Parameters, IReadOnlySet<string> Tensors) LoadGgufSplits(MoeTransformer model, GgufFile file)
    {
        var parameters = new HashSet<string>(StringComparer.Ordinal);
        var tensors = new HashSet<string>(StringComparer.Ordinal);
        if (model.Config.Mla is not { } mla) return (parameters, tensors);
        int heads = model.Config.Heads, dn = mla.QkNopeHeadDim, dv = mla.VHeadDim, r = mla.KvLoraRank;
        var keyRows = new float[r * dn]; // [r, dn] one head of attn_k_b: its W_k transposed
        foreach (var p in model.Arena.Parameters)
        {
            var m = KvBProj().Match(p.Name);
            if (!m.Success) continue;
            string kb = $"blk.{m.Groups[1].Value}.attn_k_b.weight", vb = $"blk.{m.Groups[1].Value}.attn_v_b.weight";
            if (file.Contains(GgufTensorName(p.Name)) || !file.Contains(kb) && !file.Contains(vb)) continue;
            foreach (var (name, dims) in new[] { (kb, new long[] { dn, r, heads }), (vb, new long[] { r, dv, heads }) })
            {
                if (!file.Contains(name))
                    throw new InvalidDataException($"{file.Path}: the file has no tensor '{name}', the other half of parameter '{p.Name}' as convert_hf_to_gguf.py splits kv_b_proj.");
                if (!file[name].Dims.AsSpan().SequenceEqual(dims))
                    throw new InvalidDataException($"{file.Path}: tensor '{name}' has ggml dims [{string.Join(", ", file[name].Dims)}]; parameter '{p.Name}' needs [{string.Join(", ", dims)}].");
            }
            var target = p.Value.Span; // [H·(dn+dv), r]: head j's rows are W_k [dn, r], then W_v [dv, r]
            for (int j = 0; j < heads; j++)
            {
                var k = file.Matrix(kb, j);
                for (int row = 0; row < r; row++) k.DequantizeRow(row, keyRows.AsSpan(row * dn, dn));
                for (int i = 0; i < dn; i++)
                    for (int c = 0; c < r; c++) target[(j * (dn + dv) + i) * r + c] = keyRows[c * dn + i];
                var v = file.Matrix(vb, j);
                for (int i = 0; i < dv; i++) v.DequantizeRow(i, target.Slice((j * (dn + dv) + dn + i) * r, r));
            }
            if (!TensorPrimitives.IsFiniteAll(target))
                throw new InvalidDataException($"{file.Path}: tensor '{kb}' or '{vb}' holds a value that is not finite; weights must be finite.");
            parameters.Add(p.Name);
            tensors.Add(kb);
            tensors.Add(vb);
        }
        return (parameters, tensors);
    }
}
