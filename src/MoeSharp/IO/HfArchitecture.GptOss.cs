using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.RegularExpressions;
using MoeSharp.Experts;
using MoeSharp.Formats;
using MoeSharp.Kernels;
using MoeSharp.Layers;
using MoeSharp.Models;
using MoeSharp.Nn;
using MoeSharp.Routing;

namespace MoeSharp.IO;

public sealed partial class HfArchitecture
{
    /// <summary>
    /// GPT-OSS: q/k/v/o biases, a sink logit per head, sliding-window attention on the layers layer_types calls
    /// "sliding_attention", YaRN RoPE, a biased router whose top-k logits are softmaxed, and biased experts with the
    /// clamped SwiGLU (α 1.702, limit swiglu_limit).
    /// </summary>
    private static ModelConfig GptOss(JsonElement c, string source, int? maxContext)
    {
        int hidden = ModelStore.Int(c, "hidden_size", source), heads = ModelStore.Int(c, "num_attention_heads", source);
        int layers = ModelStore.Int(c, "num_hidden_layers", source);
        bool bias = Bool(c, "attention_bias") ?? true;
        double limit = ModelStore.OptionalDouble(c, "swiglu_limit") ?? 7;
        var sliding = new List<int>();
        if (c.TryGetProperty("layer_types", out var types) && types.ValueKind == JsonValueKind.Array)
        {
            if (types.GetArrayLength() != layers)
                throw new InvalidDataException($"{source}: layer_types has {types.GetArrayLength()} entries for {layers} layers.");
            int i = 0;
            foreach (var t in types.EnumerateArray())
            {
                string? kind = t.ValueKind == JsonValueKind.String ? t.GetString() : null;
                if (kind == "sliding_attention") sliding.Add(i);
                else if (kind != "full_attention")
                    throw new InvalidDataException($"{source}: layer_types[{i}] is {t.GetRawText()}; expected \"sliding_attention\" or \"full_attention\".");
                i++;
            }
        }
        else
        {
            for (int i = 0; i < layers; i += 2) sliding.Add(i); // GPT-OSS's default: sliding, full, sliding, ...
        }
        int window = ModelStore.OptionalInt(c, "sliding_window") ?? 0;
        if (window < 0) throw new InvalidDataException($"{source}: sliding_window must be positive, got {window}.");
        var config = new ModelConfig
        {
            Preset = "hf-gpt-oss",
            Vocab = ModelStore.Int(c, "vocab_size", source),
            DModel = hidden,
            Layers = layers,
            Heads = heads,
            KvHeads = ModelStore.OptionalInt(c, "num_key_value_heads") ?? heads,
            HeadDim = ModelStore.OptionalInt(c, "head_dim") ?? hidden / heads,
            DFF = ModelStore.Int(c, "intermediate_size", source),
            Context = maxContext ?? ModelStore.OptionalInt(c, "max_position_embeddings") ?? 4096,
            NormEps = (float)(ModelStore.OptionalDouble(c, "rms_norm_eps") ?? 1e-5),
            RopeTheta = (float)(ModelStore.OptionalDouble(c, "rope_theta") ?? 150000),
            RopeStyle = RopeStyle.HalfRotate,
            Yarn = Yarn(c, source),
            TiedEmbeddings = Bool(c, "tie_word_embeddings") ?? false,
            AttentionBias = bias,
            AttentionOutBias = bias,
            AttentionSinks = true,
            SlidingWindow = window > 0 && sliding.Count > 0 ? window : 0,
            SlidingLayers = window > 0 && sliding.Count > 0 ? sliding.ToArray() : null,
            Moe = new MoeOptions
            {
                Experts = ModelStore.OptionalInt(c, "num_local_experts") ?? ModelStore.Int(c, "num_experts", source),
                TopK = ModelStore.OptionalInt(c, "num_experts_per_tok") ?? ModelStore.Int(c, "experts_per_token", source),
                ExpertHidden = ModelStore.Int(c, "intermediate_size", source),
                Router = RouterKind.TopKSoftmax,
                GateBias = true,
                ExpertBias = true,
                SwiGluClamp = new SwiGluClamp(SwiGluClamp.GptOss.Alpha, (float)limit),
                LoadBalanceCoef = Bool(c, "output_router_logits") == true ? (float)(ModelStore.OptionalDouble(c, "router_aux_loss_coef") ?? 0.9) : 0,
                LoadBalanceNormalization = LoadBalanceNormalization.PerToken,
                ZLossCoef = 0,
            },
        };
        return ModelStore.Validated(config, source);
    }

    /// <summary>rope_scaling of type yarn as <see cref="YarnScaling"/>; null when absent; any other type is an error naming it.</summary>
    private static YarnScaling? Yarn(JsonElement c, string source)
    {
        if (!c.TryGetProperty("rope_scaling", out var s) || s.ValueKind == JsonValueKind.Null) return null;
        string? type = s.TryGetProperty("rope_type", out var t) || s.TryGetProperty("type", out t) ? t.GetString() : null;
        if (type != "yarn") throw new InvalidDataException($"{source}: rope_scaling type '{type}' is not supported; expected \"yarn\" or null.");
        float? Optional(string field) => ModelStore.OptionalDouble(s, field) is double v ? (float)v : null;
        var yarn = new YarnScaling(
            Optional("factor") ?? throw new InvalidDataException($"{source}: rope_scaling has no number 'factor'."),
            ModelStore.OptionalInt(s, "original_max_position_embeddings") ?? ModelStore.Int(c, "max_position_embeddings", source),
            Optional("beta_fast") ?? 32, Optional("beta_slow") ?? 1, Optional("attention_factor"), Optional("mscale"), Optional("mscale_all_dim"),
            Bool(s, "truncate") ?? true);
        try
        {
            yarn.Validate();
        }
        catch (ArgumentException ex)
        {
            throw new InvalidDataException($"{source}: rope_scaling: {ex.Message}", ex);
        }
        return yarn;
    }

    /// <summary>GPT-OSS names: the MoE block is <c>mlp</c> and its router <c>mlp.router</c> (weight and bias).</summary>
    private static string GptOssName(string name) => name.Replace(".block_sparse_moe.gate.", ".mlp.router.");

    [GeneratedRegex(@"^(?<layer>model\.layers\.\d+)\.block_sparse_moe\.experts\.(?<w>[wb][123])$")]
    private static partial Regex GptOssExpert();

    /// <summary>
    /// Loads a GPT-OSS checkpoint. The experts are stored fused per layer: gate_up_proj [E, D, 2F] with the gate in
    /// the even columns and up in the odd ones (its bias [E, 2F] likewise), down_proj [E, F, D] (input-major, the
    /// transpose of MoeSharp's [E, D, F]), down_proj_bias [E, D]; they are split and transposed here into W1, W3, W2
    /// and their biases. Everything else is read tensor by tensor under <see cref="GptOssName"/>. The released
    /// checkpoints hold the two expert matrices as MXFP4 instead, output-major: <c>gate_up_proj_blocks</c>
    /// [E, 2F, D/32, 16] and <c>gate_up_proj_scales</c> [E, 2F, D/32] (rows alternate gate and up), likewise
    /// <c>down_proj_*</c> [E, D, F/32, …]; those are dequantized to float32 on load through
    /// <see cref="Formats.WeightFormat.MXFP4"/>'s row kernel (see <see cref="Mxfp4Rows"/>) for the trainable arena, and
    /// computed with as MXFP4 by an inference load (<see cref="GptOssStored"/>), which also quantizes float experts.
    /// </summary>
    private static void LoadGptOss(ParameterArena arena, SafetensorsModel source)
    {
        var experts = new List<(string Layer, string W, Parameter P)>();
        foreach (var p in arena.Parameters)
            if (GptOssExpert().Match(p.Name) is { Success: true } m) experts.Add((m.Groups["layer"].Value, m.Groups["w"].Value, p));
        var consumed = new List<string>();
        foreach (var (layer, _, _) in experts)
        {
            string prefix = layer + ".mlp.experts.";
            foreach (string n in new[] { "gate_up_proj", "gate_up_proj_bias", "down_proj", "down_proj_bias",
                         "gate_up_proj_blocks", "gate_up_proj_scales", "down_proj_blocks", "down_proj_scales" })
                if (!consumed.Contains(prefix + n) && source.Contains(prefix + n)) consumed.Add(prefix + n);
        }
        ModelStore.LoadModel(arena, source, GptOssName, p => GptOssExpert().IsMatch(p.Name), consumed);
        foreach (var (layer, w, p) in experts)
        {
            if (p.Stored is not null) continue; // computed as stored (GptOssStored)
            int e = p.Shape[0];
            string prefix = layer + ".mlp.experts.";
            var target = p.Value.Span;
            switch (w)
            {
                case "w1" or "w3":
                {
                    // W1/W3 [E, F, D] from gate_up_proj [E, D, 2F]: W1[e, f, d] = gu[e, d, 2f], W3 the odd column 2f + 1.
                    int f = p.Shape[1], d = p.Shape[2];
                    int odd = w == "w3" ? 1 : 0;
                    if (Mxfp4Rows(source, prefix + "gate_up_proj", e, 2 * f, d) is { } rows) // [E, 2F, D]
                    {
                        for (int x = 0; x < e; x++)
                            for (int r = 0; r < f; r++)
                                rows.AsSpan((x * 2 * f + 2 * r + odd) * d, d).CopyTo(target.Slice((x * f + r) * d, d));
                        break;
                    }
                    var gu = Read(source, prefix + "gate_up_proj", [e, d, 2 * f]);
                    for (int x = 0; x < e; x++)
                        for (int r = 0; r < f; r++)
                            for (int col = 0; col < d; col++)
                                target[(x * f + r) * d + col] = gu[((long)x * d + col) * 2 * f + 2 * r + odd];
                    break;
                }
                case "b1" or "b3":
                {
                    int f = p.Shape[1];
                    var gub = Read(source, prefix + "gate_up_proj_bias", [e, 2 * f]);
                    int odd = w == "b3" ? 1 : 0;
                    for (int i = 0; i < e * f; i++) target[i] = gub[2 * i + odd];
                    break;
                }
                case "w2":
                {
                    // W2 [E, D, F] from down_proj [E, F, D].
                    int d = p.Shape[1], f = p.Shape[2];
                    if (Mxfp4Rows(source, prefix + "down_proj", e, d, f) is { } rows) // [E, D, F], already W2's layout
                    {
                        rows.CopyTo(target);
                        break;
                    }
                    var down = Read(source, prefix + "down_proj", [e, f, d]);
                    for (int x = 0; x < e; x++)
                        for (int r = 0; r < d; r++)
                            for (int col = 0; col < f; col++)
                                target[(x * d + r) * f + col] = down[((long)x * f + col) * d + r];
                    break;
                }
                default:
                    Read(source, prefix + "down_proj_bias", p.Shape).CopyTo(target);
                    break;
            }
        }
    }

    /// <summary>
    /// GPT-OSS's stacked expert weights (W1, W3, W2) as one stored matrix per expert, for an inference load. The
    /// released MXFP4 experts are repacked block by block into ggml's MXFP4 (<see cref="RepackMxfp4Row"/>) and computed
    /// with as MXFP4, as llama.cpp computes them: W1 takes gate_up's even rows, W3 its odd rows, W2 down_proj's rows.
    /// Fused float experts are input-major, so they cannot be used in place: when the load quantizes (<paramref name="converting"/>)
    /// they are transposed into fp32 rows here and quantized like every other expert; otherwise null leaves them to the
    /// fp32 arena (<see cref="LoadGptOss"/>). Null for every other parameter.
    /// </summary>
    private static QuantizedMatrix[]? GptOssStored(SafetensorsModel source, Parameter p, bool converting)
    {
        if (GptOssExpert().Match(p.Name) is not { Success: true } m || m.Groups["w"].Value is not ("w1" or "w3" or "w2")) return null;
        string w = m.Groups["w"].Value, fused = m.Groups["layer"].Value + ".mlp.experts." + (w == "w2" ? "down_proj" : "gate_up_proj");
        int experts = p.Shape[0], rows = p.Shape[1], cols = p.Shape[2];
        // [E, R, cols] with R = rows for down_proj, 2·rows (gate and up interleaved) for gate_up_proj; row r of expert x is source row Pick(x, r)
        int stride = w == "w2" ? rows : 2 * rows, odd = w == "w3" ? 1 : 0;
        long Pick(int x, int r) => w == "w2" ? (long)x * rows + r : (long)x * stride + 2 * r + odd;
        var matrices = new QuantizedMatrix[experts];
        if (Mxfp4Tensors(source, fused, experts, stride, cols) is var (blocks, scales))
        {
            int groups = cols / 32;
            for (int x = 0; x < experts; x++)
            {
                var data = new byte[(long)rows * groups * 17]; // [rows, groups × 17] ggml MXFP4
                for (int r = 0; r < rows; r++)
                    RepackMxfp4Row(blocks, scales, Pick(x, r), groups, data.AsSpan(r * groups * 17, groups * 17));
                matrices[x] = new QuantizedMatrix(data, WeightFormat.MXFP4, rows, cols);
            }
            for (int i = 0; i < scales.Length; i++)
                if (scales[i] == 0xFF) // E8M0's NaN: the only non-finite MXFP4 block
                    throw new InvalidDataException($"{source.PathOf(fused + "_scales")}: '{fused}_scales' holds the NaN scale 0xFF at flat index {i}; weights must be finite.");
            return matrices;
        }
        if (!converting) return null;
        // down_proj [E, F, D] holds W2[x, r, c] at (x·F + c)·D + r; gate_up_proj [E, D, 2F] holds W1/W3[x, r, c] at (x·D + c)·2F + 2r + odd
        float[] values = w == "w2" ? Read(source, fused, [experts, cols, rows]) : Read(source, fused, [experts, cols, stride]);
        for (int x = 0; x < experts; x++)
        {
            var data = new byte[(long)rows * cols * sizeof(float)]; // [rows, cols] fp32
            var target = MemoryMarshal.Cast<byte, float>(data.AsSpan());
            for (int r = 0; r < rows; r++)
                for (int c = 0; c < cols; c++)
                    target[r * cols + c] = w == "w2" ? values[((long)x * cols + c) * rows + r] : values[((long)x * cols + c) * stride + 2 * r + odd];
            matrices[x] = new QuantizedMatrix(data, WeightFormat.F32, rows, cols);
        }
        return matrices;
    }

    /// <summary>
    /// The MXFP4 matrix <paramref name="name"/>_blocks/_scales dequantized to [experts, rows, columns] float32; null
    /// when the checkpoint stores <paramref name="name"/> unquantized. Each row is repacked to ggml's order
    /// (<see cref="RepackMxfp4Row"/>) and dequantized by the format's row kernel.
    /// </summary>
    private static float[]? Mxfp4Rows(SafetensorsModel source, string name, int experts, int rows, int columns)
    {
        if (Mxfp4Tensors(source, name, experts, rows, columns) is not var (blocks, scales)) return null;
        int groups = columns / 32;
        var values = new float[(long)experts * rows * columns]; // [E, rows, columns]
        var row = new byte[groups * 17]; // one row in ggml's MXFP4 layout
        for (long r = 0; r < (long)experts * rows; r++)
        {
            RepackMxfp4Row(blocks, scales, r, groups, row);
            Formats.RowKernels.DequantizeRow(Formats.WeightFormat.MXFP4, row, values.AsSpan((int)(r * columns), columns));
        }
        for (int i = 0; i < values.Length; i++)
            if (!float.IsFinite(values[i]))
                throw new InvalidDataException($"{source.PathOf(name + "_scales")}: '{name}' dequantizes to {values[i]} at flat index {i}; weights must be finite.");
        return values;
    }

    /// <summary>
    /// The bytes of <paramref name="name"/>_blocks [experts, rows, columns/32, 16] and _scales [experts, rows, columns/32],
    /// checked for presence and shape, each failure naming the tensor; null when the checkpoint has no _blocks.
    /// </summary>
    private static (byte[] Blocks, byte[] Scales)? Mxfp4Tensors(SafetensorsModel source, string name, int experts, int rows, int columns)
    {
        string blocksName = name + "_blocks", scalesName = name + "_scales";
        if (!source.Contains(blocksName)) return null;
        if (!source.Contains(scalesName)) throw new InvalidDataException($"{source.PathOf(blocksName)}: '{blocksName}' has no '{scalesName}' beside it.");
        int groups = columns / 32;
        if (columns % 32 != 0) throw new InvalidDataException($"{source.PathOf(blocksName)}: MXFP4 rows of {columns} columns; expected a multiple of 32.");
        int[] blocksShape = [experts, rows, groups, 16], scalesShape = [experts, rows, groups];
        if (!source.Entry(blocksName).Shape.AsSpan().SequenceEqual(blocksShape))
            throw new InvalidDataException($"{source.PathOf(blocksName)}: '{blocksName}' has shape {Tensors.Shapes.Format(source.Entry(blocksName).Shape)}; expected {Tensors.Shapes.Format(blocksShape)}.");
        if (!source.Entry(scalesName).Shape.AsSpan().SequenceEqual(scalesShape))
            throw new InvalidDataException($"{source.PathOf(scalesName)}: '{scalesName}' has shape {Tensors.Shapes.Format(source.Entry(scalesName).Shape)}; expected {Tensors.Shapes.Format(scalesShape)}.");
        return (source.ReadBytes(blocksName), source.ReadBytes(scalesName));
    }

    /// <summary>
    /// Row <paramref name="r"/> of HF's MXFP4 (<paramref name="groups"/> blocks of 32) in ggml's layout. HF packs element
    /// 2i of a 32-block in the low nibble of byte i and 2i + 1 in the high one, with scale 2^(s − 127) on the values
    /// ±{0, ½, 1, 1½, 2, 3, 4, 6}; ggml's block (<see cref="WeightFormat.MXFP4"/>) is the scale byte, then element j in
    /// the low nibble of byte j and j + 16 in the high one, with the values doubled and the scale halved: the same numbers.
    /// </summary>
    private static void RepackMxfp4Row(byte[] blocks, byte[] scales, long r, int groups, Span<byte> row)
    {
        for (int g = 0; g < groups; g++)
        {
            long at = (r * groups + g) * 16;
            row[g * 17] = scales[r * groups + g];
            for (int j = 0; j < 16; j++)
            {
                // ggml element j is HF element j (byte j/2), element j + 16 is HF element j + 16 (byte 8 + j/2).
                int lo = (blocks[at + j / 2] >> (4 * (j & 1))) & 0xF, hi = (blocks[at + 8 + j / 2] >> (4 * (j & 1))) & 0xF;
                row[g * 17 + 1 + j] = (byte)(lo | hi << 4);
            }
        }
    }

    /// <summary>A fused expert tensor as float32, checked for presence, shape and finiteness, each failure naming the tensor.</summary>
    private static float[] Read(SafetensorsModel source, string name, int[] shape)
    {
        if (!source.Contains(name))
        {
            string quantized = name + "_blocks";
            if (source.Contains(quantized))
                throw new InvalidDataException($"{source.PathOf(quantized)}: '{quantized}' is MXFP4; MoeSharp reads GPT-OSS experts as float tensors only so far (dequantize the checkpoint first).");
            throw new InvalidDataException($"{source.Location}: the checkpoint has no tensor '{name}' (shape {Tensors.Shapes.Format(shape)}).");
        }
        var entry = source.Entry(name);
        if (!entry.Shape.AsSpan().SequenceEqual(shape))
            throw new InvalidDataException($"{source.PathOf(name)}: checkpoint tensor '{name}' has shape {Tensors.Shapes.Format(entry.Shape)}; expected {Tensors.Shapes.Format(shape)}.");
        var values = source.ReadFloat32(name);
        int at = -1;
        for (int i = 0; i < values.Length && at < 0; i++) if (!float.IsFinite(values[i])) at = i;
        if (at >= 0)
            throw new InvalidDataException($"{source.PathOf(name)}: checkpoint tensor '{name}' holds {values[at]} at flat index {at}; weights must be finite.");
        return values;
    }
}
