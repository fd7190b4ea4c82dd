using System.Numerics.Tensors;
using MoeSharp.Autograd;
using MoeSharp.Formats;
using MoeSharp.IO;
using MoeSharp.Models;

namespace MoeSharp.Tests.Models;

/// <summary>
/// Tiny random Qwen3-MoE, OLMoE, Qwen2-MoE, DeepSeek-V2, DeepSeek-V3 and GPT-OSS models (Golden/&lt;arch&gt;/, every feature of each switched on; see
/// Golden/README.md) against llama.cpp: the same weights converted to GGUF as llama.cpp's convert_hf_to_gguf.py does
/// and run by its prebuilt CPU library (node-llama-cpp 3.22.1, F32 weights and KV cache, flash attention off). The
/// prompt goes through the KV cache in one pass and each greedy token after it one at a time; at every one of the
/// 16 steps the last row's logits must be within 1e-3 relative of llama.cpp's (|Δ| ≤ 1e-3·|expected| + 1e-5·max|expected|,
/// the absolute part for logits near zero), and the 16 greedy ids must be llama.cpp's exactly, both from this loop
/// and from <see cref="Generator.Greedy"/>.
/// </summary>
public class ArchitectureGoldenTests
{
    public static TheoryData<string> Architectures() => ["qwen3_moe", "olmoe", "qwen2_moe", "deepseek_v2", "deepseek_v3", "gpt_oss"];

    internal static string Folder(string arch) => TestPaths.ArchitectureGolden(arch);

    [Theory]
    [MemberData(nameof(Architectures))]
    public void LogitsAndGreedyIdsMatchLlamaCppThroughTheKvCache(string arch) => MatchesLlamaCpp(arch, ModelStore.Open(Folder(arch), maxContext: 64));

    /// <summary>
    /// The GGUF file the generator wrote, as convert_hf_to_gguf.py converts the HF folder, loads to the HF folder's
    /// config and parameters exactly, and so to llama.cpp's outputs: the very F32 file llama.cpp ran for qwen2_moe
    /// and both DeepSeeks (deepseek2, with kv_b_proj split into attn_k_b / attn_v_b), and for gpt_oss the released
    /// checkpoint's form converted (experts as ggml MXFP4, the rest F32; the generator rounded the experts to MXFP4
    /// before writing either, so dequantizing them is exact). The other architectures' GGUFs are not checked in, to
    /// keep the repository small. The softmax multiplier, which the deepseek2 file stores as 0.1·mscale_all_dim in
    /// float32, agrees to 1e-6 relative.
    /// </summary>
    [Theory]
    [InlineData("qwen2_moe", "model-f32.gguf")]
    [InlineData("deepseek_v2", "model-f32.gguf")]
    [InlineData("deepseek_v3", "model-f32.gguf")]
    [InlineData("gpt_oss", "model-mxfp4.gguf")]
    public void TheConvertedGgufLoadsToTheSameModel(string arch, string file)
    {
        // MXFP4 experts used in place multiply with 8-bit activations, as llama.cpp's MXFP4 kernel does; dequantized
        // to F32 once on load they compute with exactly the released values, which is what the F32 reference ran.
        var gguf = ModelStore.Open(Path.Combine(Folder(arch), file),
            new ModelLoadOptions { MaxContext = 64, Quantize = file.Contains("mxfp4") ? WeightFormat.F32 : null });
        var hf = ModelStore.Open(Folder(arch), maxContext: 64);
        static object Shape(ModelConfig c) => (c.Vocab, c.DModel, c.Layers, c.Heads, c.ResolvedKvHeads, c.ResolvedHeadDim, c.NormEps, c.RopeTheta,
            (c.DFF, c.RopeStyle, c.QkNorm, c.AttentionBias, c.AttentionOutBias, c.AttentionSinks, c.TiedEmbeddings),
            (c.SlidingWindow, string.Join(",", c.SlidingLayers ?? []), string.Join(",", c.DenseLayers ?? [])),
            c.Mla is { } m ? (m.QLoraRank, m.KvLoraRank, m.QkNopeHeadDim, m.QkRopeHeadDim, m.VHeadDim) : default,
            c.Yarn is { } y ? (y.Factor, y.OriginalContext, y.BetaFast, y.BetaSlow, y.AttentionFactor, y.Truncate) : default,
            (c.Moe!.Experts, c.Moe.TopK, c.Moe.ExpertHidden, c.Moe.Router, c.Moe.NormalizeTopK, c.Moe.Groups, c.Moe.TopGroups, c.Moe.RoutedScaling),
            (c.Moe.SharedExperts, c.Moe.SharedHidden, c.Moe.SharedGate, c.Moe.GateBias, c.Moe.ExpertBias, c.Moe.SwiGluClamp));
        Assert.Equal(Shape(hf.Config), Shape(gguf.Config));
        float want = hf.Config.Mla?.SoftmaxMultiplier ?? 1, got = gguf.Config.Mla?.SoftmaxMultiplier ?? 1;
        Assert.True(Math.Abs(want - got) <= 1e-6 * want, $"{arch} softmax multiplier: HF {want}, GGUF {got}");
        Assert.Equal(hf.Config.Yarn?.ResolvedAttentionFactor ?? 1, gguf.Config.Yarn?.ResolvedAttentionFactor ?? 1, 1e-6);
        // The GGUF's projections and experts are used in place, so parameters are compared one by one.
        foreach (var p in hf.Arena.Parameters)
            Numerics.BitwiseEqual(ParameterValues(p), ParameterValues(gguf.Arena[p.Name]), $"{arch} {p.Name}");
        MatchesLlamaCpp(arch, gguf);
    }

    /// <summary>A parameter's values as float32, dequantized from its stored matrices when it has them ([E·out, in] or [out, in]).</summary>
    internal static float[] ParameterValues(MoeSharp.Nn.Parameter p)
    {
        if (p.Stored is not { } w) return p.Value.Span.ToArray();
        var values = new float[p.Length];
        for (int m = 0, at = 0; m < w.Count; m++)
            for (int r = 0; r < w[m].Rows; r++, at += w[m].Cols) w[m].DequantizeRow(r, values.AsSpan(at, w[m].Cols));
        return values;
    }

    /// <summary>
    /// The training path (one pass over all 21 positions, the fused kernel with the window and sinks) gives the
    /// same logits as llama.cpp's cached steps at every position past the prompt, within the tolerance above.
    /// </summary>
    [Theory]
    [InlineData("gpt_oss")]
    public void WholeSequenceForwardMatchesLlamaCpp(string arch)
    {
        var model = ModelStore.Open(Folder(arch), maxContext: 64);
        using var expected = SafetensorsFile.Open(Path.Combine(Folder(arch), "expected.safetensors"));
        int[] prompt = expected.ReadInt32("prompt"), want = expected.ReadInt32("ids");
        float[] logits = expected.ReadFloat32("logits"); // [S, V]
        int vocab = model.Config.Vocab;
        int[] ids = [.. prompt, .. want[..^1]];
        var tape = new Tape();
        float[] all;
        using (tape.NoGrad()) all = model.Forward(tape, ids, batch: 1).Logits.ToArray(); // [T, V]
        for (int step = 0; step < want.Length; step++)
        {
            var reference = logits.AsSpan(step * vocab, vocab);
            Numerics.Close(reference, all.AsSpan((prompt.Length - 1 + step) * vocab, vocab), 1e-3f,
                1e-5f * MathF.Abs(TensorPrimitives.MaxMagnitude(reference)), $"{arch} position {prompt.Length - 1 + step} logits");
        }
    }

    /// <summary>
    /// The same GPT-OSS model with its expert matrices stored as the released checkpoints store them (MXFP4
    /// *_blocks/*_scales, Golden/gpt_oss/mxfp4/; the generator rounded them to MXFP4 before writing either folder)
    /// dequantizes on load to the F32 folder's parameters exactly, and so matches llama.cpp.
    /// </summary>
    [Fact]
    public void GptOssMxfp4ExpertsDequantizeToTheF32Model()
    {
        var f32 = ModelStore.Open(Folder("gpt_oss"), maxContext: 64);
        var mxfp4 = ModelStore.Open(Path.Combine(Folder("gpt_oss"), "mxfp4"), maxContext: 64);
        Numerics.BitwiseEqual(f32.Arena.Values, mxfp4.Arena.Values, "gpt_oss MXFP4 parameters");
        MatchesLlamaCpp("gpt_oss", mxfp4);
    }

    /// <summary>
    /// Training through the whole GPT-OSS model reaches its own parameters: the loss's gradient with respect to a
    /// sink, the router bias, each expert bias and the o_proj bias matches central differences of the loss (ε 1e-2,
    /// rtol 5e-2, atol 1e-4; float32 forward over 12 positions, so the window of 4 and the sinks both act).
    /// </summary>
    [Fact]
    public void GptOssGradientsReachSinksAndBiases()
    {
        var model = ModelStore.Open(Folder("gpt_oss"), maxContext: 64);
        int[] ids = [1, 17, 42, 99, 5, 260, 3, 8, 77, 12, 200, 41], targets = [.. ids[1..], 9];
        var tape = new Tape();
        var (loss, _, _) = model.Loss(tape, ids, targets, batch: 1);
        tape.Backward(loss);
        string[] names = ["model.layers.0.self_attn.sinks", "model.layers.1.block_sparse_moe.gate.bias", "model.layers.2.block_sparse_moe.experts.b1",
            "model.layers.0.block_sparse_moe.experts.b3", "model.layers.1.block_sparse_moe.experts.b2", "model.layers.2.self_attn.o_proj.bias"];
        // Each parameter's coordinate with the largest gradient: an expert no token picks has none.
        var at = names.Select(n => TensorPrimitives.IndexOfMaxMagnitude(model.Arena[n].Value.Grad!.Span)).ToArray();
        var analytic = names.Select((n, i) => model.Arena[n].Value.Grad![at[i]]).ToArray();
        tape.Reset();
        double Loss()
        {
            var t = new Tape();
            using (t.NoGrad()) return model.Loss(t, ids, targets, batch: 1).Loss[0];
        }
        for (int i = 0; i < names.Length; i++)
        {
            var v = model.Arena[names[i]].Value.Span;
            float saved = v[at[i]];
            v[at[i]] = saved + 1e-2f;
            double plus = Loss();
            v[at[i]] = saved - 1e-2f;
            double minus = Loss();
            v[at[i]] = saved;
            double numeric = (plus - minus) / 2e-2;
            Assert.True(Math.Abs(numeric) > 1e-4, $"{names[i]}: the loss does not depend on it");
            Assert.True(Math.Abs(analytic[i] - numeric) <= 1e-4 + 5e-2 * Math.Abs(numeric), $"{names[i]}[{at[i]}]: analytic {analytic[i]:G6}, numeric {numeric:G6}");
        }
    }

    private static void MatchesLlamaCpp(string arch, MoeTransformer model)
    {
        using var expected = SafetensorsFile.Open(Path.Combine(Folder(arch), "expected.safetensors"));
        int[] prompt = expected.ReadInt32("prompt"), want = expected.ReadInt32("ids");
        float[] logits = expected.ReadFloat32("logits"); // [S, V]
        int vocab = model.Config.Vocab;
        Assert.Equal(want.Length * vocab, logits.Length);
        var cache = model.NewCache();
        var tape = new Tape();
        int[] input = prompt;
        for (int step = 0; step < want.Length; step++)
        {
            float[] row;
            using (tape.NoGrad())
                row = model.Forward(tape, input, cache).Logits.Span.Slice((input.Length - 1) * vocab, vocab).ToArray();
            tape.Reset();
            var reference = logits.AsSpan(step * vocab, vocab);
            Numerics.Close(reference, row, 1e-3f, 1e-5f * MathF.Abs(TensorPrimitives.MaxMagnitude(reference)), $"{arch} step {step} logits");
            Assert.True(want[step] == TensorPrimitives.IndexOfMax(row), $"{arch} step {step}: greedy id {TensorPrimitives.IndexOfMax(row)}, llama.cpp {want[step]}");
            input = [want[step]];
        }
        Assert.Equal(want, Generator.Greedy(model, prompt, want.Length));
    }
}
