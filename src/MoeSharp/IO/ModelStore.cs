using System.Text.Json;
using System.Text.RegularExpressions;
using MoeSharp.Kernels;
using MoeSharp.Layers;
using MoeSharp.Models;
using MoeSharp.Nn;
using MoeSharp.Routing;
using MoeSharp.Tensors;

namespace MoeSharp.IO;

/// <summary>
/// Model weights on disk in the Hugging Face Mixtral layout. MoeSharp keeps each layer's experts stacked
/// ([E,H,D] for w1/w3, [E,D,H] for w2); on disk they are split into <c>experts.{j}.w1.weight</c> etc., so the file
/// reads like a Mixtral checkpoint. Also reads Hugging Face folders of every <see cref="HfArchitecture"/> (names mapped
/// per architecture) and Mistral's reference layout.
/// </summary>
public static partial class ModelStore
{
    [GeneratedRegex(@"^(?<prefix>.+\.experts)\.(?<w>w[123])$")]
    private static partial Regex StackedExperts();

    /// <summary>Writes the model's weights (HF names, experts split), atomically.</summary>
    public static void Save(string path, ParameterArena arena, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var tensors = new List<SafetensorsWriter.Tensor>();
        foreach (var p in arena.Parameters)
        {
            if (p.Stored is { } w)
                throw new InvalidOperationException($"Cannot save parameter '{p.Name}': it is stored as {w.Format} for inference; save a model loaded with fp32 weights, or write a GGUF with 'moe quantize'.");
            var m = StackedExperts().Match(p.Name);
            if (!m.Success)
            {
                tensors.Add(new SafetensorsWriter.Tensor(p.Name, p.Shape, arena.Values.AsMemory(p.Offset, p.Length)));
                continue;
            }
            int experts = p.Shape[0], per = p.Length / experts;
            for (int j = 0; j < experts; j++)
                tensors.Add(new SafetensorsWriter.Tensor($"{m.Groups["prefix"].Value}.{j}.{m.Groups["w"].Value}.weight", p.Shape[1..],
                    arena.Values.AsMemory(p.Offset + j * per, per)));
        }
        SafetensorsWriter.Write(path, tensors, metadata ?? new Dictionary<string, string> { ["format"] = "pt" });
    }

    /// <summary>
    /// Fills every parameter from <paramref name="source"/>, where the tensor for HF name n is stored under
    /// <paramref name="rename"/>(n). Every tensor is checked (present, right shape) before any is read, and every
    /// value after, so that a checkpoint for another architecture or with a NaN or infinity in it fails here,
    /// naming the file's tensor, rather than as garbage or a NaN loss later. The source may hold other tensors too
    /// (gradients beside weights, the parts of a mixture); <see cref="Open(string, int?)"/> refuses those for a whole model.
    /// </summary>
    public static void Load(ParameterArena arena, SafetensorsModel source, Func<string, string>? rename = null) => LoadPlanned(arena, source, rename, null);

    private static void LoadPlanned(ParameterArena arena, SafetensorsModel source, Func<string, string>? rename, Func<Parameter, bool>? custom)
    {
        var plan = Plan(arena, rename, custom);
        foreach (var (stored, target, _, shape) in plan)
        {
            if (!source.Contains(stored))
                throw new InvalidDataException($"{source.Location}: the checkpoint has no tensor '{stored}' (for parameter '{target.Name}', shape {Shapes.Format(shape)}){LayerCounts(arena, source)}.");
            var entry = source.Entry(stored);
            if (!entry.Shape.AsSpan().SequenceEqual(shape))
                throw new InvalidDataException($"{source.PathOf(stored)}: checkpoint tensor '{stored}' has shape {Shapes.Format(entry.Shape)}; parameter '{target.Name}' needs {Shapes.Format(shape)}.");
        }
        foreach (var (stored, target, offset, shape) in plan)
        {
            // A stored parameter computes with the checkpoint's bytes in place: nothing to read.
            if (target.Stored is not null) continue;
            var values = target.Value.Span.Slice(offset, Shapes.Count(shape));
            source.ReadFloat32(stored, values);
            if (!TensorPrimitives.IsFiniteAll(values))
            {
                int at = 0;
                while (float.IsFinite(values[at])) at++;
                throw new InvalidDataException($"{source.PathOf(stored)}: checkpoint tensor '{stored}' holds {values[at]} at flat index {at} of shape {Shapes.Format(shape)}; weights must be finite.");
            }
        }
    }

    /// <summary>
    /// <see cref="Load"/> for a whole model: a tensor that no parameter takes means the config describes another
    /// model than the weights (fewer layers or experts, say), which would otherwise load silently.
    /// </summary>
    /// <remarks>
    /// Parameters for which <paramref name="custom"/> is true are left to the caller (an architecture whose checkpoint
    /// stores them fused or quantized), which names the tensors it reads for them in <paramref name="consumed"/>.
    /// </remarks>
    internal static void LoadModel(ParameterArena arena, SafetensorsModel source, Func<string, string>? rename = null,
        Func<Parameter, bool>? custom = null, IEnumerable<string>? consumed = null)
    {
        var wanted = new HashSet<string>(consumed ?? [], StringComparer.Ordinal);
        foreach (var entry in Plan(arena, rename, custom)) wanted.Add(entry.Stored);
        var unused = source.Names.Where(n => !wanted.Contains(n)).ToArray();
        if (unused.Length > 0)
            throw new InvalidDataException($"{source.Location}: the model has no parameter for checkpoint tensor '{unused[0]}'" +
                (unused.Length > 1 ? $" (nor for {unused.Length - 1} more)" : "") + $"{LayerCounts(arena, source)}.");
        LoadPlanned(arena, source, rename, custom);
    }

    /// <summary>Where each parameter's values are stored: the tensor name, the parameter, the offset into it, the tensor's shape.</summary>
    private static List<(string Stored, Parameter Target, int Offset, int[] Shape)> Plan(ParameterArena arena, Func<string, string>? rename,
        Func<Parameter, bool>? custom = null)
    {
        var plan = new List<(string Stored, Parameter Target, int Offset, int[] Shape)>();
        foreach (var p in arena.Parameters)
        {
            if (custom is not null && custom(p)) continue;
            var m = StackedExperts().Match(p.Name);
            if (!m.Success)
            {
                plan.Add((rename?.Invoke(p.Name) ?? p.Name, p, 0, p.Shape));
                continue;
            }
            int per = p.Length / p.Shape[0];
            for (int j = 0; j < p.Shape[0]; j++)
            {
                string name = $"{m.Groups["prefix"].Value}.{j}.{m.Groups["w"].Value}.weight";
                plan.Add((rename?.Invoke(name) ?? name, p, j * per, p.Shape[1..]));
            }
        }
        return plan;
    }

    /// <summary>"; the config has 1 layer, the checkpoint 2" when the two disagree, else "".</summary>
    private static string LayerCounts(ParameterArena arena, SafetensorsModel source)
    {
        int model = Layers(arena.Parameters.Select(p => p.Name)), stored = Layers(source.Names);
        return model == stored ? "" : $"; the config has {model} layer{(model == 1 ? "" : "s")}, the checkpoint {stored}";
    }

    /// <summary>One more than the highest i in names of the form "…layers.i.…" (HF and reference layouts alike).</summary>
    private static int Layers(IEnumerable<string> names)
    {
        int layers = 0;
        foreach (string name in names)
            if (LayerIndex().Match(name) is { Success: true } m) layers = Math.Max(layers, int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) + 1);
        return layers;
    }

    [GeneratedRegex(@"(?:^|\.)layers\.(\d{1,9})\.")]
    private static partial Regex LayerIndex();

    /// <summary>Mistral's reference names for the HF name <paramref name="hf"/> (tok_embeddings, layers.i.attention.wq, feed_forward…).</summary>
    public static string ReferenceName(string hf)
    {
        if (hf == "model.embed_tokens.weight") return "tok_embeddings.weight";
        if (hf == "model.norm.weight") return "norm.weight";
        if (hf == "lm_head.weight") return "output.weight";
        return hf.Replace("model.layers.", "layers.")
            .Replace(".self_attn.q_proj.", ".attention.wq.").Replace(".self_attn.k_proj.", ".attention.wk.")
            .Replace(".self_attn.v_proj.", ".attention.wv.").Replace(".self_attn.o_proj.", ".attention.wo.")
            .Replace(".input_layernorm.", ".attention_norm.").Replace(".post_attention_layernorm.", ".ffn_norm.")
            .Replace(".block_sparse_moe.", ".feed_forward.");
    }

    /// <summary>
    /// Reads a model folder: a MoeSharp run (config.json with a "model" section), a Hugging Face folder (config.json
    /// whose model_type is one of <see cref="HfArchitecture.All"/>, model.safetensors or an index of shards), or
    /// Mistral's reference layout (config.reference.json / params with "dim", model.reference.safetensors). A path to
    /// a <c>.gguf</c> file is read by <see cref="OpenGguf(string, int?)"/>. The weights go into the trainable fp32 arena.
    /// </summary>
    public static MoeTransformer Open(string folder, int? maxContext = null) => Open(folder, new ModelLoadOptions { MaxContext = maxContext });

    /// <summary>
    /// <see cref="Open(string, int?)"/> with the weights placed as <paramref name="options"/> says: in place from the
    /// mapped files, or quantized on load, for inference (see <see cref="ModelLoadOptions"/>); dispose the model.
    /// </summary>
    public static MoeTransformer Open(string folder, ModelLoadOptions options)
    {
        if (File.Exists(folder) && folder.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase)) return OpenGguf(folder, options);
        if (!Directory.Exists(folder)) throw new DirectoryNotFoundException($"Model folder '{folder}' does not exist.");
        string configPath = Path.Combine(folder, "config.json");
        if (!File.Exists(configPath)) throw new FileNotFoundException($"Model folder '{folder}' has no config.json.");
        using var doc = ParseJson(configPath);
        var root = doc.RootElement;
        if (root.TryGetProperty("model", out var run))
        {
            var config = ModelConfig.FromJson(run.GetRawText(), configPath + " (model)");
            var weights = SafetensorsModel.Open(Path.Combine(folder, "model.safetensors"));
            return Build(config, weights, options, null, model => LoadModel(model.Arena, weights));
        }
        if (root.TryGetProperty("model_type", out var type))
        {
            var architecture = HfArchitecture.For(type.ValueKind == JsonValueKind.String ? type.GetString() : type.GetRawText(), configPath);
            var config = architecture.ReadConfig(root, configPath, options.MaxContext);
            var weights = SafetensorsModel.Open(folder);
            return Build(config, weights, options, architecture.TensorName, model => architecture.LoadWeights(model.Arena, weights), architecture);
        }
        throw new InvalidDataException($"{configPath}: neither a MoeSharp run config (\"model\") nor a Hugging Face config (\"model_type\").");
    }

    /// <summary>
    /// Loads a Hugging Face config (any <see cref="HfArchitecture"/>; Mixtral when it names no model_type) and one
    /// weights file (or folder) given separately.
    /// </summary>
    public static MoeTransformer OpenHuggingFace(string configPath, string weights, int? maxContext = null)
    {
        using var doc = ParseJson(configPath);
        var root = doc.RootElement;
        var architecture = HfArchitecture.For(!root.TryGetProperty("model_type", out var type) ? "mixtral"
            : type.ValueKind == JsonValueKind.String ? type.GetString() : type.GetRawText(), configPath);
        var config = architecture.ReadConfig(root, configPath, maxContext);
        var source = SafetensorsModel.Open(weights);
        return Build(config, source, new ModelLoadOptions(), architecture.TensorName, model => architecture.LoadWeights(model.Arena, source));
    }

    /// <summary>Loads Mistral's reference layout: a params JSON with "dim", and weights under reference names (interleaved RoPE).</summary>
    public static MoeTransformer OpenReference(string configPath, string weightsPath, int? maxContext = null)
    {
        using var doc = ParseJson(configPath);
        var config = FromReference(doc.RootElement, configPath, maxContext);
        var weights = SafetensorsModel.Open(weightsPath);
        return Build(config, weights, new ModelLoadOptions(), ReferenceName, model => LoadModel(model.Arena, weights, ReferenceName));
    }

    /// <summary>A Hugging Face MixtralConfig as a <see cref="ModelConfig"/> (rotate-half RoPE).</summary>
    public static ModelConfig FromHuggingFace(JsonElement c, string source, int? maxContext = null)
    {
        int hidden = Int(c, "hidden_size", source), heads = Int(c, "num_attention_heads", source);
        bool aux = c.TryGetProperty("output_router_logits", out var o) && o.ValueKind == JsonValueKind.True;
        var config = new ModelConfig
        {
            Preset = "hf-mixtral",
            Vocab = Int(c, "vocab_size", source),
            DModel = hidden,
            Layers = Int(c, "num_hidden_layers", source),
            Heads = heads,
            KvHeads = OptionalInt(c, "num_key_value_heads") ?? heads,
            HeadDim = OptionalInt(c, "head_dim") ?? hidden / heads,
            DFF = Int(c, "intermediate_size", source),
            Context = WithinWindow(maxContext ?? OptionalInt(c, "max_position_embeddings") ?? 4096, c),
            NormEps = (float)(OptionalDouble(c, "rms_norm_eps") ?? 1e-5),
            RopeTheta = (float)(OptionalDouble(c, "rope_theta") ?? 1e6),
            RopeStyle = RopeStyle.HalfRotate,
            TiedEmbeddings = c.TryGetProperty("tie_word_embeddings", out var tie) && tie.ValueKind == JsonValueKind.True,
            Moe = new MoeOptions
            {
                Experts = Int(c, "num_local_experts", source),
                TopK = Int(c, "num_experts_per_tok", source),
                ExpertHidden = Int(c, "intermediate_size", source),
                Router = RouterKind.SoftmaxTopK,
                LoadBalanceCoef = aux ? (float)(OptionalDouble(c, "router_aux_loss_coef") ?? 0.02) : 0,
                LoadBalanceNormalization = LoadBalanceNormalization.PerToken,
                ZLossCoef = 0,
            },
        };
        return Validated(config, source);
    }

    /// <summary>Mistral's reference params (dim, n_layers, …) as a <see cref="ModelConfig"/> (interleaved RoPE).</summary>
    public static ModelConfig FromReference(JsonElement c, string source, int? maxContext = null)
    {
        int dim = Int(c, "dim", source), heads = Int(c, "n_heads", source);
        var config = new ModelConfig
        {
            Preset = "mistral-reference",
            Vocab = Int(c, "vocab_size", source),
            DModel = dim,
            Layers = Int(c, "n_layers", source),
            Heads = heads,
            KvHeads = OptionalInt(c, "n_kv_heads") ?? heads,
            HeadDim = OptionalInt(c, "head_dim") ?? dim / heads,
            DFF = Int(c, "hidden_dim", source),
            Context = WithinWindow(maxContext ?? 4096, c),
            NormEps = (float)(OptionalDouble(c, "norm_eps") ?? 1e-5),
            RopeTheta = (float)(OptionalDouble(c, "rope_theta") ?? 1e6),
            RopeStyle = RopeStyle.Interleaved,
            TiedEmbeddings = c.TryGetProperty("tied_embeddings", out var tie) && tie.ValueKind == JsonValueKind.True,
            Moe = new MoeOptions
            {
                Experts = Int(c, "num_experts", source),
                TopK = Int(c, "num_experts_per_tok", source),
                ExpertHidden = Int(c, "hidden_dim", source),
                Router = RouterKind.SoftmaxTopK,
                LoadBalanceCoef = 0,
                ZLossCoef = 0,
            },
        };
        return Validated(config, source);
    }

    internal static ModelConfig Validated(ModelConfig config, string source)
    {
        try
        {
            config.Validate();
        }
        catch (ArgumentException ex)
        {
            throw new InvalidDataException($"{source}: {ex.Message}", ex);
        }
        return config;
    }

    private static JsonDocument ParseJson(string path)
    {
        try
        {
            return JsonDocument.Parse(File.ReadAllText(path));
        }
        catch (JsonException ex)
        {
            throw new InvalidDataException($"{path}: not valid JSON ({ex.Message}).", ex);
        }
    }

    internal static int Int(JsonElement c, string field, string source) =>
        OptionalInt(c, field) ?? throw new InvalidDataException($"{source}: missing integer field '{field}'.");

    /// <summary>
    /// Mistral-style sliding-window attention lets position t see only keys t − W + 1 .. t. Within W positions that
    /// is plain causal attention, so the context is capped at W: inside it the model is exact, and generation past it
    /// re-encodes the recent text (see <see cref="Generator"/>) instead of silently attending further back than the
    /// weights were trained to. A null window (Mixtral's usual config) leaves the context alone.
    /// </summary>
    private static int WithinWindow(int context, JsonElement c) =>
        OptionalInt(c, "sliding_window") is int window and > 0 ? Math.Min(context, window) : context;

    internal static int? OptionalInt(JsonElement c, string field) =>
        c.TryGetProperty(field, out var v) && v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int i) ? i : null;

    internal static double? OptionalDouble(JsonElement c, string field) =>
        c.TryGetProperty(field, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble() : null;
}
