using System.Text.RegularExpressions;
using MoeSharp.Formats;
using MoeSharp.Models;
using MoeSharp.Nn;
using MoeSharp.Tensors;

namespace MoeSharp.IO;

public static partial class ModelStore
{
    /// <summary>
    /// Loads a GGUF file as llama.cpp's convert_hf_to_gguf.py writes it for one of the architectures whose
    /// <see cref="HfArchitecture.GgufArchitecture"/> is set (general.architecture llama for Mixtral, qwen2moe,
    /// qwen3moe, olmoe, deepseek2 for DeepSeek-V2 and V3, gpt-oss). The
    /// config comes from the file's metadata and tensors: q/k/v biases when blk.0.attn_q.bias exists, a shared
    /// expert when blk.0.ffn_up_shexp does, a dense block where blk.i.ffn_gate_inp is missing, a tied head when
    /// output.weight is. Tensors the converter split (DeepSeek's attn_k_b and attn_v_b) are joined by
    /// <see cref="HfArchitecture.LoadGgufSplits"/>. Every storable weight (<see cref="MoeTransformer.Storable"/>: the
    /// embedding, projections, experts, head) is used in place from the memory map in its format (F32 … MXFP4); the
    /// rest (norms, routers, 1-D tensors, joined splits) is dequantized to float32 into the arena. The model owns the
    /// mapped file: dispose it.
    /// </summary>
    public static MoeTransformer OpenGguf(string path, int? maxContext = null) => OpenGguf(path, new ModelLoadOptions { MaxContext = maxContext });

    /// <summary><see cref="OpenGguf(string, int?)"/>, with the storable weights quantized to <see cref="ModelLoadOptions.Quantize"/> when it is set.</summary>
    public static MoeTransformer OpenGguf(string path, ModelLoadOptions options)
    {
        if (options.MaxMemoryBytes is not null && options.Quantize is not null)
            throw new ArgumentException($"{path}: --max-memory pages the experts as the file stores them; it cannot be combined with --quantize (write a quantized file with moe quantize instead).");
        var file = GgufFile.Open(path);
        MoeTransformer model;
        HfArchitecture architecture;
        try
        {
            string? type = file.Metadata.TryGetValue("general.architecture", out var a) ? a.Value as string : null;
            architecture = HfArchitecture.ForGguf(type, path);
            var tensorName = architecture.GgufTensorName;
            model = new MoeTransformer(architecture.ReadGguf(file, options.MaxContext),
                new CheckpointWeights(path, p => GgufMatrices(file, tensorName(p.Name), p, CheckOnLoad(options, p)), options.Quantize, file));
        }
        catch
        {
            file.Dispose();
            throw;
        }
        try
        {
            var split = architecture.LoadGgufSplits(model, file);
            LoadGguf(model.Arena, file, architecture.GgufTensorName, split.Parameters, split.Tensors);
            if (options.MaxMemoryBytes is { } max)
            {
                var tensorName = architecture.GgufTensorName;
                PageExperts(model, path, (p, e) => (path, file.FileOffset(tensorName(p.Name), e)), max, options.ExpertCachePolicy);
            }
        }
        catch
        {
            model.Dispose();
            throw;
        }
        return model;
    }

    /// <summary>
    /// Fills every parameter but the <paramref name="filled"/> ones from its llama.cpp tensor (<paramref name="tensorName"/>),
    /// checking first that each exists with the parameter's shape (ggml lists dimensions innermost first; size-1
    /// dimensions aside) and that no tensor but the <paramref name="read"/> ones is left over, then that every value
    /// read is finite.
    /// </summary>
    private static void LoadGguf(ParameterArena arena, GgufFile file, Func<string, string> tensorName, IReadOnlySet<string> filled, IReadOnlySet<string> read)
    {
        var wanted = new HashSet<string>(read, StringComparer.Ordinal);
        foreach (var p in arena.Parameters)
        {
            if (filled.Contains(p.Name)) continue;
            string name = tensorName(p.Name);
            wanted.Add(name);
            if (!file.Contains(name))
                throw new InvalidDataException($"{file.Path}: the file has no tensor '{name}' (for parameter '{p.Name}', shape {Shapes.Format(p.Shape)}).");
            var dims = file[name].Dims;
            if (!SameShape(p.Shape, dims))
                throw new InvalidDataException($"{file.Path}: tensor '{name}' has ggml dims [{string.Join(", ", dims)}]; parameter '{p.Name}' needs {Shapes.Format(p.Shape)} (ggml dims reversed).");
        }
        foreach (var t in file.Tensors)
            if (!wanted.Contains(t.Name))
                throw new InvalidDataException($"{file.Path}: the model has no parameter for tensor '{t.Name}'.");
        foreach (var p in arena.Parameters)
        {
            if (filled.Contains(p.Name)) continue;
            // A stored parameter computes with the file's bytes in place: nothing to copy.
            if (p.Stored is not null) continue;
            string name = tensorName(p.Name);
            var info = file[name];
            var values = p.Value.Span;
            if (info.Dims.Length < 2)
            {
                if (!WeightFormats.TryFromGgmlType(info.GgmlType, out var format))
                    throw new InvalidDataException($"{file.Path}: tensor '{name}' has ggml type {info.GgmlType}, which MoeSharp does not read.");
                new QuantizedMatrix(file.TensorBytes(info).ToArray(), format, 1, values.Length).DequantizeRow(0, values);
            }
            else
            {
                int matrices = info.Dims.Length == 3 ? (int)info.Dims[2] : 1, at = 0;
                for (int m = 0; m < matrices; m++)
                {
                    var matrix = file.Matrix(name, m);
                    for (int r = 0; r < matrix.Rows; r++, at += matrix.Cols) matrix.DequantizeRow(r, values.Slice(at, matrix.Cols));
                }
            }
            if (!TensorPrimitives.IsFiniteAll(values))
                throw new InvalidDataException($"{file.Path}: tensor '{name}' holds a value that is not finite; weights must be finite.");
        }
    }

    private static bool SameShape(ReadOnlySpan<int> shape, long[] ggmlDims)
    {
        var a = new List<long>();
        for (int i = shape.Length - 1; i >= 0; i--) if (shape[i] != 1) a.Add(shape[i]);
        var b = new List<long>();
        foreach (long d in ggmlDims) if (d != 1) b.Add(d);
        return a.SequenceEqual(b);
    }

    [GeneratedRegex(@"^model\.layers\.(\d+)\.(.+)$")]
    private static partial Regex LayerParameter();

    /// <summary>
    /// llama.cpp's tensor name (llama-arch.cpp LLM_TENSOR_NAMES) for a MoeSharp parameter. One map serves every
    /// architecture, since llama.cpp names a tensor by its role, not by the model it comes from (the one exception,
    /// GPT-OSS's post-attention norm, is <see cref="HfArchitecture.GgufTensorName"/>'s); experts are stacked
    /// [E, out, in] on both sides.
    /// </summary>
    public static string GgufName(string parameter)
    {
        switch (parameter)
        {
            case "model.embed_tokens.weight": return "token_embd.weight";
            case "model.norm.weight": return "output_norm.weight";
            case "lm_head.weight": return "output.weight";
        }
        var m = LayerParameter().Match(parameter);
        if (!m.Success) return parameter;
        string role = m.Groups[2].Value switch
        {
            "input_layernorm.weight" => "attn_norm.weight",
            "post_attention_layernorm.weight" => "ffn_norm.weight",
            "self_attn.q_proj.weight" => "attn_q.weight",
            "self_attn.k_proj.weight" => "attn_k.weight",
            "self_attn.v_proj.weight" => "attn_v.weight",
            "self_attn.q_proj.bias" => "attn_q.bias",
            "self_attn.k_proj.bias" => "attn_k.bias",
            "self_attn.v_proj.bias" => "attn_v.bias",
            "self_attn.o_proj.weight" => "attn_output.weight",
            "self_attn.o_proj.bias" => "attn_output.bias",
            "self_attn.sinks" => "attn_sinks.weight",
            "self_attn.q_a_proj.weight" => "attn_q_a.weight",
            "self_attn.q_a_layernorm.weight" => "attn_q_a_norm.weight",
            "self_attn.q_b_proj.weight" => "attn_q_b.weight",
            "self_attn.kv_a_proj_with_mqa.weight" => "attn_kv_a_mqa.weight",
            "self_attn.kv_a_layernorm.weight" => "attn_kv_a_norm.weight",
            "self_attn.kv_b_proj.weight" => "attn_kv_b.weight",
            "self_attn.q_norm.weight" => "attn_q_norm.weight",
            "self_attn.k_norm.weight" => "attn_k_norm.weight",
            "block_sparse_moe.gate.weight" => "ffn_gate_inp.weight",
            "block_sparse_moe.gate.bias" => "ffn_gate_inp.bias",
            "block_sparse_moe.gate.e_score_correction_bias" => "exp_probs_b.bias",
            "block_sparse_moe.experts.w1" => "ffn_gate_exps.weight",
            "block_sparse_moe.experts.w3" => "ffn_up_exps.weight",
            "block_sparse_moe.experts.w2" => "ffn_down_exps.weight",
            "block_sparse_moe.experts.b1" => "ffn_gate_exps.bias",
            "block_sparse_moe.experts.b3" => "ffn_up_exps.bias",
            "block_sparse_moe.experts.b2" => "ffn_down_exps.bias",
            "block_sparse_moe.shared_expert.gate_proj.weight" => "ffn_gate_shexp.weight",
            "block_sparse_moe.shared_expert.up_proj.weight" => "ffn_up_shexp.weight",
            "block_sparse_moe.shared_expert.down_proj.weight" => "ffn_down_shexp.weight",
            "block_sparse_moe.shared_expert_gate.weight" => "ffn_gate_inp_shexp.weight",
            "mlp.gate_proj.weight" => "ffn_gate.weight",
            "mlp.up_proj.weight" => "ffn_up.weight",
            "mlp.down_proj.weight" => "ffn_down.weight",
            var other => other,
        };
        return $"blk.{m.Groups[1].Value}.{role}";
    }
}
