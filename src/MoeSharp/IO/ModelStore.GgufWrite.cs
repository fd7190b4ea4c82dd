using MoeSharp.Formats;
using MoeSharp.Kernels;
using MoeSharp.Models;
using MoeSharp.Nn;

namespace MoeSharp.IO;

public static partial class ModelStore
{
    /// <summary>The llama.cpp architectures <see cref="SaveGguf"/> writes (those <see cref="OpenGguf(string, int?)"/> reads).</summary>
    public static IReadOnlyList<string> GgufArchitectures { get; } = ["llama", "qwen2moe", "qwen3moe", "olmoe"];

    /// <summary>
    /// Writes <paramref name="model"/> as a GGUF file of llama.cpp architecture <paramref name="architecture"/>
    /// (llama for Mixtral, qwen2moe, qwen3moe, olmoe), as convert_hf_to_gguf.py and llama-quantize lay it out:
    /// llama.cpp's tensor names (<see cref="GgufName"/>), its metadata keys, q/k rows permuted to interleaved RoPE for
    /// llama, the storable weights (<see cref="MoeTransformer.Storable"/>) in <paramref name="format"/> and norms,
    /// routers and biases in F32. MXFP4 goes to the experts only, the other weights to Q8_0 (llama-quantize's
    /// MXFP4_MOE). The tokenizer is a placeholder SentencePiece vocabulary (&lt;unk&gt; &lt;s&gt; &lt;/s&gt;, byte tokens,
    /// fillers) so llama.cpp opens the file; prompts are given as token ids. The file is read back and its config
    /// compared with the model's before it replaces <paramref name="path"/> atomically, so an architecture that cannot
    /// express the model (another router, biases, latent attention) fails naming the setting, and leaves no file.
    /// </summary>
    /// <exception cref="InvalidDataException">The model does not fit the architecture, or a row is not a whole number of the format's blocks.</exception>
    public static void SaveGguf(MoeTransformer model, string path, WeightFormat format, string architecture)
    {
        var c = model.Config;
        if (!GgufArchitectures.Contains(architecture))
            throw new InvalidDataException($"GGUF architecture '{architecture}' is not one MoeSharp writes; expected one of {string.Join(", ", GgufArchitectures)}.");
        var moe = c.ResolvedMoe ?? throw new InvalidDataException($"{architecture}: the model has no MoE layers; MoeSharp writes GGUF for MoE models.");
        // llama.cpp's llama architecture applies RoPE to interleaved pairs, the others to halves (HfArchitecture's table).
        bool interleaved = architecture == "llama";
        if (!interleaved && c.RopeStyle == RopeStyle.Interleaved)
            throw new InvalidDataException($"{architecture}: the model rotates interleaved pairs (rope style Interleaved); {architecture} rotates halves.");
        bool permute = interleaved && c.RopeStyle == RopeStyle.HalfRotate;
        if (permute && c.RopeDim != c.ResolvedHeadDim)
            throw new InvalidDataException($"{architecture}: partial RoPE ({c.RopeDim} of {c.ResolvedHeadDim} head dimensions) cannot be permuted to llama's layout.");
        string a = architecture;
        var writer = new GgufWriter()
            .Add("general.architecture", GgufValue.Of(a))
            .Add("general.name", GgufValue.Of($"moesharp-{c.Preset}"))
            .Add("general.file_type", GgufValue.Of(FileType(format)))
            .Add("general.quantization_version", GgufValue.Of(2u))
            .Add($"{a}.vocab_size", GgufValue.Of((uint)c.Vocab))
            .Add($"{a}.context_length", GgufValue.Of((uint)c.Context))
            .Add($"{a}.embedding_length", GgufValue.Of((uint)c.DModel))
            .Add($"{a}.block_count", GgufValue.Of((uint)c.Layers))
            .Add($"{a}.feed_forward_length", GgufValue.Of((uint)(c.DenseLayers is { Length: > 0 } ? c.DFF : moe.ExpertHidden)))
            .Add($"{a}.expert_feed_forward_length", GgufValue.Of((uint)moe.ExpertHidden))
            .Add($"{a}.attention.head_count", GgufValue.Of((uint)c.Heads))
            .Add($"{a}.attention.head_count_kv", GgufValue.Of((uint)c.ResolvedKvHeads))
            .Add($"{a}.attention.key_length", GgufValue.Of((uint)c.ResolvedHeadDim))
            .Add($"{a}.attention.value_length", GgufValue.Of((uint)c.ResolvedHeadDim))
            .Add($"{a}.rope.dimension_count", GgufValue.Of((uint)c.RopeDim))
            .Add($"{a}.rope.freq_base", GgufValue.Of(c.RopeTheta))
            .Add($"{a}.attention.layer_norm_rms_epsilon", GgufValue.Of(c.NormEps))
            .Add($"{a}.expert_count", GgufValue.Of((uint)moe.Experts))
            .Add($"{a}.expert_used_count", GgufValue.Of((uint)moe.TopK));
        if (moe.SharedExperts > 0)
            writer.Add($"{a}.expert_shared_feed_forward_length", GgufValue.Of((uint)(moe.SharedExperts * (moe.SharedHidden > 0 ? moe.SharedHidden : moe.ExpertHidden))));
        AddPlaceholderTokenizer(writer, c.Vocab);

        var storable = new HashSet<Parameter>(model.Storable);
        foreach (var p in model.Arena.Parameters)
        {
            var target = !storable.Contains(p) ? WeightFormat.F32
                : format != WeightFormat.MXFP4 ? format
                : p.Shape.Length == 3 ? WeightFormat.MXFP4 : WeightFormat.Q8_0;
            int[]? rows = permute ? QkPermutation(p.Name, c) : null;
            var dims = new long[p.Shape.Length];
            for (int i = 0; i < dims.Length; i++) dims[i] = p.Shape[^(i + 1)];
            writer.AddTensor(GgufName(p.Name), target, dims, TensorBytes(p, target, rows));
        }

        string temp = $"{path}.{Guid.NewGuid():N}.partial";
        try
        {
            writer.Write(temp);
            using (var written = GgufFile.Open(temp))
            {
                var read = HfArchitecture.ForGguf(a, path).ReadGguf(written);
                if (ConfigMismatch(c, read) is { } mismatch)
                    throw new InvalidDataException($"{architecture} cannot express this model: its {mismatch}.");
            }
            File.Move(temp, path, overwrite: true);
        }
        finally
        {
            File.Delete(temp);
        }
    }

    /// <summary>llama.cpp's <c>llama_ftype</c> of a file whose weights are mostly <paramref name="format"/>.</summary>
    private static uint FileType(WeightFormat format) => format switch
    {
        WeightFormat.F32 => 0,
        WeightFormat.F16 => 1,
        WeightFormat.Q8_0 => 7,
        WeightFormat.Q4_K => 14, // MOSTLY_Q4_K_S: every weight Q4_K
        WeightFormat.Q6_K => 18,
        WeightFormat.BF16 => 32,
        WeightFormat.MXFP4 => 38, // MOSTLY_MXFP4_MOE
        _ => throw new ArgumentOutOfRangeException(nameof(format), format, null),
    };

    /// <summary>
    /// The row order convert_hf_to_gguf.py's LlamaModel.permute gives q_proj and k_proj ([heads·hd, D]) so that
    /// llama.cpp's interleaved RoPE rotates the pairs the HF model rotates as halves: within each head, new row
    /// 2i + j is old row j·hd/2 + i. Null for any other parameter.
    /// </summary>
    private static int[]? QkPermutation(string name, ModelConfig c)
    {
        int heads = name.EndsWith(".self_attn.q_proj.weight", StringComparison.Ordinal) || name.EndsWith(".self_attn.q_proj.bias", StringComparison.Ordinal) ? c.Heads
            : name.EndsWith(".self_attn.k_proj.weight", StringComparison.Ordinal) || name.EndsWith(".self_attn.k_proj.bias", StringComparison.Ordinal) ? c.ResolvedKvHeads
            : 0;
        if (heads == 0) return null;
        int hd = c.ResolvedHeadDim, half = hd / 2;
        var order = new int[heads * hd]; // [heads·hd] old row of each new row
        for (int h = 0; h < heads; h++)
            for (int i = 0; i < half; i++)
                for (int j = 0; j < 2; j++)
                    order[h * hd + 2 * i + j] = h * hd + j * half + i;
        return order;
    }

    /// <summary>The parameter's rows (in <paramref name="order"/> when given) as <paramref name="format"/>, straight from its stored bytes when they already are.</summary>
    private static byte[] TensorBytes(Parameter p, WeightFormat format, int[]? order)
    {
        int cols = p.Shape[^1];
        if (cols % format.BlockSize() != 0)
            throw new InvalidDataException($"weight '{p.Name}' has rows of {cols}; {format} needs a multiple of {format.BlockSize()}.");
        long rowBytes = format.RowBytes(cols);
        int rows = p.Length / cols, perMatrix = p.Shape.Length == 3 ? p.Shape[1] : rows;
        var data = new byte[checked(rows * rowBytes)]; // [rows, rowBytes]
        if (p.Stored is { Format: var f } stored && f == format && order is null)
        {
            for (int m = 0; m < stored.Count; m++) stored[m].Data.Span.CopyTo(data.AsSpan((int)(m * perMatrix * rowBytes)));
            return data;
        }
        Parallel.For(0, rows, () => new float[cols], (r, _, row) =>
        {
            int source = order is null ? r : order[r % order.Length] + r / order.Length * order.Length;
            if (p.Stored is { } s) s[source / perMatrix].DequantizeRow(source % perMatrix, row);
            else p.Value.Span.Slice(source * cols, cols).CopyTo(row);
            Quantizer.QuantizeRow(format, row, data.AsSpan((int)(r * rowBytes), (int)rowBytes));
            return row;
        }, _ => { });
        return data;
    }

    /// <summary>make_models.py's placeholder SentencePiece vocabulary of <paramref name="vocab"/> tokens.</summary>
    private static void AddPlaceholderTokenizer(GgufWriter writer, int vocab)
    {
        var tokens = new string[vocab];
        var scores = new float[vocab];
        var types = new int[vocab];
        for (int i = 0; i < vocab; i++)
        {
            // 2 unknown, 3 control, 6 byte, 1 normal (llama_token_type).
            (tokens[i], types[i]) = i switch
            {
                0 => ("<unk>", 2),
                1 => ("<s>", 3),
                2 => ("</s>", 3),
                _ when vocab >= 3 + 256 && i < 3 + 256 => ($"<0x{i - 3:X2}>", 6),
                _ => ($"t{i:D5}", 1),
            };
            scores[i] = types[i] == 1 ? -i : 0;
        }
        writer.Add("tokenizer.ggml.model", GgufValue.Of("llama"))
            .Add("tokenizer.ggml.pre", GgufValue.Of("default"))
            .Add("tokenizer.ggml.tokens", GgufValue.Array(GgufValueType.String, tokens))
            .Add("tokenizer.ggml.scores", GgufValue.Array(GgufValueType.Float32, scores))
            .Add("tokenizer.ggml.token_type", GgufValue.Array(GgufValueType.Int32, types))
            .Add("tokenizer.ggml.bos_token_id", GgufValue.Of(1u))
            .Add("tokenizer.ggml.eos_token_id", GgufValue.Of(2u))
            .Add("tokenizer.ggml.unknown_token_id", GgufValue.Of(0u));
    }

    /// <summary>The first setting in which a model read back from GGUF differs from the one written, as "name X (the file gives Y)"; null when none does.</summary>
    private static string? ConfigMismatch(ModelConfig m, ModelConfig g)
    {
        var mo = m.ResolvedMoe!;
        var go = g.ResolvedMoe;
        (string Name, object? Model, object? File)[] settings =
        [
            ("vocabulary", m.Vocab, g.Vocab), ("width", m.DModel, g.DModel), ("layers", m.Layers, g.Layers), ("heads", m.Heads, g.Heads),
            ("kv heads", m.ResolvedKvHeads, g.ResolvedKvHeads), ("head dim", m.ResolvedHeadDim, g.ResolvedHeadDim),
            ("q/k norm", m.QkNorm, g.QkNorm), ("q/k/v bias", m.AttentionBias, g.AttentionBias), ("output bias", m.AttentionOutBias, g.AttentionOutBias),
            ("attention sinks", m.AttentionSinks, g.AttentionSinks), ("latent attention", m.Mla is not null, g.Mla is not null),
            ("rope scaling", m.Yarn is not null, g.Yarn is not null), ("dense MLP", m.Mlp, g.Mlp), ("tied embeddings", m.TiedEmbeddings, g.TiedEmbeddings),
            ("dense layers", string.Join(",", Enumerable.Range(0, m.Layers).Where(i => !m.IsMoeLayer(i))), string.Join(",", Enumerable.Range(0, g.Layers).Where(i => !g.IsMoeLayer(i)))),
            ("router", mo.Router, go?.Router), ("normalize_topk", mo.NormalizeTopK, go?.NormalizeTopK), ("expert activation", mo.Activation, go?.Activation),
            ("expert biases", mo.ExpertBias, go?.ExpertBias), ("SwiGLU clamp", mo.SwiGluClamp, go?.SwiGluClamp), ("shared experts", mo.SharedExperts > 0, go?.SharedExperts > 0),
            ("shared expert gate", mo.SharedGate, go?.SharedGate), ("expert width", mo.ExpertHidden, go?.ExpertHidden),
        ];
        foreach (var (name, model, file) in settings)
            if (!Equals(model, file)) return $"{name} is {model} (the file would give {file})";
        return null;
    }
}
