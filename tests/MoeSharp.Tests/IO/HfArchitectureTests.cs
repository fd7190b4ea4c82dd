using System.Text.Json;
using System.Text.Json.Nodes;
using MoeSharp.Autograd;
using MoeSharp.IO;
using MoeSharp.Models;
using MoeSharp.Nn;
using MoeSharp.Tests.Models;
using MoeSharp.Tests.Autograd;

namespace MoeSharp.Tests.IO;

public class HfArchitectureTests : TempFolderTest
{
    private static JsonObject GoldenConfig(string arch) =>
        JsonNode.Parse(File.ReadAllText(Path.Combine(ArchitectureGoldenTests.Folder(arch), "config.json")))!.AsObject();

    private static ModelConfig Read(JsonObject config) =>
        HfArchitecture.For(config["model_type"]!.GetValue<string>(), "config.json").ReadConfig(JsonDocument.Parse(config.ToJsonString()).RootElement, "config.json");

    [Fact]
    public void AnUnknownModelTypeNamesItAndTheSupportedOnes()
    {
        var config = GoldenConfig("qwen3_moe");
        config["model_type"] = "qwen9_moe";
        File.WriteAllText(Path.Combine(Folder, "config.json"), config.ToJsonString());
        var ex = Assert.Throws<InvalidDataException>(() => ModelStore.Open(Folder));
        Assert.Contains("model_type 'qwen9_moe' is not supported", ex.Message);
        foreach (var a in HfArchitecture.All) Assert.Contains(a.ModelType, ex.Message);
    }

    [Fact]
    public void EachArchitectureIsConfigurationOfTheSameModel()
    {
        var qwen3 = Read(GoldenConfig("qwen3_moe"));
        Assert.Equal((QkNorm.PerHead, false, 16, true, 0), (qwen3.QkNorm, qwen3.AttentionBias, qwen3.ResolvedHeadDim, qwen3.Moe!.NormalizeTopK, qwen3.Moe.SharedExperts));
        var olmoe = Read(GoldenConfig("olmoe"));
        Assert.Equal((QkNorm.Whole, false, 8, false, 0), (olmoe.QkNorm, olmoe.AttentionBias, olmoe.ResolvedHeadDim, olmoe.Moe!.NormalizeTopK, olmoe.Moe.SharedExperts));
        var qwen2 = Read(GoldenConfig("qwen2_moe"));
        Assert.Equal((QkNorm.None, true, 8, false, 1, 40, true), (qwen2.QkNorm, qwen2.AttentionBias, qwen2.ResolvedHeadDim, qwen2.Moe!.NormalizeTopK,
            qwen2.Moe.SharedExperts, qwen2.Moe.SharedHidden, qwen2.Moe.SharedGate));
    }

    /// <summary>GPT-OSS's config: windows on the sliding layer_types, sinks, all four attention biases, YaRN, the biased router and experts.</summary>
    [Fact]
    public void GptOssConfigSwitchesOnEveryFeature()
    {
        var c = Read(GoldenConfig("gpt_oss"));
        Assert.Equal((4, 0, 4), (c.WindowOf(0), c.WindowOf(1), c.WindowOf(2)));
        Assert.Equal((true, true, true), (c.AttentionSinks, c.AttentionBias, c.AttentionOutBias));
        Assert.Equal(new MoeSharp.Kernels.YarnScaling(4f, 64), c.Yarn);
        Assert.Equal((MoeSharp.Routing.RouterKind.TopKSoftmax, true, true, new MoeSharp.Experts.SwiGluClamp(1.702f, 7f)),
            (c.Moe!.Router, c.Moe.GateBias, c.Moe.ExpertBias, c.Moe.SwiGluClamp));
        var back = ModelConfig.FromJson(c.ToJson(), "round trip");
        Assert.Equal(c.ToJson(), back.ToJson());
    }

    [Theory]
    [InlineData("rope_scaling", "{\"rope_type\": \"longrope\", \"factor\": 4}", "rope_scaling type 'longrope' is not supported")]
    [InlineData("rope_scaling", "{\"rope_type\": \"yarn\", \"factor\": 0.5, \"original_max_position_embeddings\": 64}", "YaRN factor must be at least 1, got 0.5")]
    [InlineData("layer_types", "[\"sliding_attention\", \"local\", \"full_attention\"]", "layer_types[1] is \"local\"")]
    [InlineData("layer_types", "[\"full_attention\"]", "layer_types has 1 entries for 3 layers")]
    public void GptOssConfigErrorsNameTheField(string field, string value, string message)
    {
        var config = GoldenConfig("gpt_oss");
        config[field] = JsonNode.Parse(value);
        Assert.Contains(message, Assert.Throws<InvalidDataException>(() => Read(config)).Message);
    }

    /// <summary>HF Qwen-MoE: block i is sparse when (i + 1) % decoder_sparse_step == 0 and i is not in mlp_only_layers.</summary>
    [Theory]
    [InlineData(1, "[]", "1,1,1,1")]
    [InlineData(2, "[]", "0,1,0,1")]
    [InlineData(1, "[0, 2]", "0,1,0,1")]
    [InlineData(2, "[3]", "0,1,0,0")]
    public void DecoderSparseStepAndMlpOnlyLayersPickTheMoeBlocks(int step, string mlpOnly, string moe)
    {
        var config = GoldenConfig("qwen3_moe");
        config["num_hidden_layers"] = 4;
        config["decoder_sparse_step"] = step;
        config["mlp_only_layers"] = JsonNode.Parse(mlpOnly);
        var c = Read(config);
        Assert.Equal(moe, string.Join(",", Enumerable.Range(0, 4).Select(i => c.IsMoeLayer(i) ? 1 : 0)));
    }

    [Fact]
    public void ConfigValuesItCannotHonourAreOneClearError()
    {
        var olmoe = GoldenConfig("olmoe");
        olmoe["clip_qkv"] = 8.0;
        Assert.Contains("clip_qkv 8", Assert.Throws<InvalidDataException>(() => Read(olmoe)).Message);
        var qwen = GoldenConfig("qwen2_moe");
        qwen["rope_scaling"] = JsonNode.Parse("""{"type": "yarn", "factor": 4}""");
        Assert.Contains("rope_scaling", Assert.Throws<InvalidDataException>(() => Read(qwen)).Message);
        qwen = GoldenConfig("qwen2_moe");
        qwen["mlp_only_layers"] = JsonNode.Parse("[7]");
        Assert.Contains("dense_layers holds 7", Assert.Throws<InvalidDataException>(() => Read(qwen)).Message);
    }

    /// <summary>
    /// A dense block of a Qwen-MoE checkpoint is Qwen's MLP (mlp.gate_proj/up_proj/down_proj of intermediate_size);
    /// the golden weights with layer 1's experts replaced by such an MLP load, and with the experts left in, the
    /// first tensor nothing takes is named.
    /// </summary>
    [Fact]
    public void MlpOnlyLayersReadQwensDenseMlpNames()
    {
        string golden = ArchitectureGoldenTests.Folder("qwen3_moe");
        var config = GoldenConfig("qwen3_moe");
        config["mlp_only_layers"] = JsonNode.Parse("[1]");
        File.WriteAllText(Path.Combine(Folder, "config.json"), config.ToJsonString());
        using (var source = SafetensorsFile.Open(Path.Combine(golden, "model.safetensors")))
        {
            var tensors = source.Entries.Where(e => !e.Name.StartsWith("model.layers.1.mlp."))
                .Select(e => new SafetensorsWriter.Tensor(e.Name, e.Shape, source.ReadFloat32(e.Name))).ToList();
            int d = config["hidden_size"]!.GetValue<int>(), ff = config["intermediate_size"]!.GetValue<int>();
            tensors.Add(new("model.layers.1.mlp.gate_proj.weight", [ff, d], Numerics.Random(ff * d, 1, 0.1f)));
            tensors.Add(new("model.layers.1.mlp.up_proj.weight", [ff, d], Numerics.Random(ff * d, 2, 0.1f)));
            tensors.Add(new("model.layers.1.mlp.down_proj.weight", [d, ff], Numerics.Random(ff * d, 3, 0.1f)));
            SafetensorsWriter.Write(Path.Combine(Folder, "model.safetensors"), tensors);
        }
        var model = ModelStore.Open(Folder, maxContext: 16);
        Assert.Equal(2, model.MoeLayers.Count);
        Assert.Equal(16, Generator.Greedy(model, [1, 17, 42], 16).Length);

        File.Copy(Path.Combine(golden, "model.safetensors"), Path.Combine(Folder, "model.safetensors"), overwrite: true);
        var ex = Assert.Throws<InvalidDataException>(() => ModelStore.Open(Folder, maxContext: 16));
        Assert.Contains("no parameter for checkpoint tensor 'model.layers.1.mlp.", ex.Message);
    }

    /// <summary>llama.cpp's names (llama-arch.cpp LLM_TENSOR_NAMES) for every kind of parameter, written out by hand.</summary>
    [Theory]
    [InlineData("model.embed_tokens.weight", "token_embd.weight")]
    [InlineData("lm_head.weight", "output.weight")]
    [InlineData("model.norm.weight", "output_norm.weight")]
    [InlineData("model.layers.3.input_layernorm.weight", "blk.3.attn_norm.weight")]
    [InlineData("model.layers.0.self_attn.q_proj.bias", "blk.0.attn_q.bias")]
    [InlineData("model.layers.0.self_attn.o_proj.weight", "blk.0.attn_output.weight")]
    [InlineData("model.layers.1.self_attn.q_norm.weight", "blk.1.attn_q_norm.weight")]
    [InlineData("model.layers.1.self_attn.k_norm.weight", "blk.1.attn_k_norm.weight")]
    [InlineData("model.layers.2.post_attention_layernorm.weight", "blk.2.ffn_norm.weight")]
    [InlineData("model.layers.2.block_sparse_moe.gate.weight", "blk.2.ffn_gate_inp.weight")]
    [InlineData("model.layers.2.block_sparse_moe.experts.w1", "blk.2.ffn_gate_exps.weight")]
    [InlineData("model.layers.2.block_sparse_moe.experts.w3", "blk.2.ffn_up_exps.weight")]
    [InlineData("model.layers.2.block_sparse_moe.experts.w2", "blk.2.ffn_down_exps.weight")]
    [InlineData("model.layers.2.block_sparse_moe.shared_expert.up_proj.weight", "blk.2.ffn_up_shexp.weight")]
    [InlineData("model.layers.2.block_sparse_moe.shared_expert_gate.weight", "blk.2.ffn_gate_inp_shexp.weight")]
    [InlineData("model.layers.10.mlp.down_proj.weight", "blk.10.ffn_down.weight")]
    [InlineData("model.layers.1.self_attn.q_a_proj.weight", "blk.1.attn_q_a.weight")]
    [InlineData("model.layers.1.self_attn.q_a_layernorm.weight", "blk.1.attn_q_a_norm.weight")]
    [InlineData("model.layers.1.self_attn.q_b_proj.weight", "blk.1.attn_q_b.weight")]
    [InlineData("model.layers.1.self_attn.kv_a_proj_with_mqa.weight", "blk.1.attn_kv_a_mqa.weight")]
    [InlineData("model.layers.1.self_attn.kv_a_layernorm.weight", "blk.1.attn_kv_a_norm.weight")]
    [InlineData("model.layers.1.self_attn.kv_b_proj.weight", "blk.1.attn_kv_b.weight")]
    [InlineData("model.layers.1.block_sparse_moe.gate.e_score_correction_bias", "blk.1.exp_probs_b.bias")]
    [InlineData("model.layers.1.self_attn.o_proj.bias", "blk.1.attn_output.bias")]
    [InlineData("model.layers.1.self_attn.sinks", "blk.1.attn_sinks.weight")]
    [InlineData("model.layers.1.block_sparse_moe.gate.bias", "blk.1.ffn_gate_inp.bias")]
    [InlineData("model.layers.1.block_sparse_moe.experts.b1", "blk.1.ffn_gate_exps.bias")]
    [InlineData("model.layers.1.block_sparse_moe.experts.b3", "blk.1.ffn_up_exps.bias")]
    [InlineData("model.layers.1.block_sparse_moe.experts.b2", "blk.1.ffn_down_exps.bias")]
    public void GgufNamesAreLlamaCpps(string parameter, string gguf) => Assert.Equal(gguf, ModelStore.GgufName(parameter));

    /// <summary>GPT-OSS alone calls its post-attention norm attn_post_norm (post_attention_norm), as llama-arch.cpp names it.</summary>
    [Fact]
    public void GptOssNamesItsPostAttentionNormApart()
    {
        const string norm = "model.layers.2.post_attention_layernorm.weight";
        Assert.Equal("blk.2.post_attention_norm.weight", HfArchitecture.For("gpt_oss", "t").GgufTensorName(norm));
        Assert.Equal("blk.2.ffn_norm.weight", HfArchitecture.For("deepseek_v3", "t").GgufTensorName(norm));
        Assert.Equal("blk.2.attn_sinks.weight", HfArchitecture.For("gpt_oss", "t").GgufTensorName("model.layers.2.self_attn.sinks"));
    }

    [Fact]
    public void AGgufOfAnotherArchitectureNamesItAndTheSupportedOnes()
    {
        string path = Path.Combine(Folder, "m.gguf");
        new GgufWriter().Add("general.architecture", GgufValue.Of("grok")).Write(path);
        var ex = Assert.Throws<InvalidDataException>(() => ModelStore.Open(path));
        Assert.Contains("general.architecture 'grok' is not supported; expected one of llama, qwen2moe, qwen3moe, olmoe, deepseek2, gpt-oss.", ex.Message);
    }

    /// <summary>The whole-sequence (training) path gives the KV-cache path's logits, to 1e-5 of their scale.</summary>
    [Theory]
    [MemberData(nameof(ArchitectureGoldenTests.Architectures), MemberType = typeof(ArchitectureGoldenTests))]
    public void TrainingForwardMatchesTheCachedForward(string arch)
    {
        var model = ModelStore.Open(ArchitectureGoldenTests.Folder(arch), maxContext: 16);
        int[] ids = [1, 17, 42, 99, 5, 260, 3];
        var tape = new Tape();
        float[] whole, cached;
        using (tape.NoGrad())
        {
            whole = model.Forward(tape, ids, batch: 1).Logits.ToArray();
            cached = model.Forward(tape, ids, model.NewCache()).Logits.ToArray();
        }
        Numerics.Close(whole, cached, 0, 1e-5f * whole.Max(MathF.Abs), arch);
    }

    /// <summary>
    /// The new parameters (per-head and whole q/k norms, q/k/v biases) get the gradient of central differences
    /// (ε = 1e-3, fp32 forward; |numeric − analytic| ≤ 3e-4 + 2% of numeric).
    /// </summary>
    [Theory]
    [InlineData("qwen3_moe", "model.layers.0.self_attn.q_norm.weight")]
    [InlineData("qwen3_moe", "model.layers.1.self_attn.k_norm.weight")]
    [InlineData("olmoe", "model.layers.0.self_attn.q_norm.weight")]
    [InlineData("olmoe", "model.layers.1.self_attn.k_norm.weight")]
    [InlineData("qwen2_moe", "model.layers.0.self_attn.q_proj.bias")]
    [InlineData("qwen2_moe", "model.layers.1.self_attn.k_proj.bias")]
    public void NewParametersGetFiniteDifferenceGradients(string arch, string name)
    {
        var model = ModelStore.Open(ArchitectureGoldenTests.Folder(arch), maxContext: 16);
        int[] input = [1, 17, 42, 99, 5, 260], target = [17, 42, 99, 5, 260, 3];
        var tape = new Tape();
        model.Arena.ZeroGrad();
        tape.Backward(model.Loss(tape, input, target, batch: 1).Loss);
        tape.Reset();
        float Loss()
        {
            var t = new Tape();
            using (t.NoGrad()) return model.Loss(t, input, target, batch: 1).CrossEntropy[0];
        }
        var p = model.Arena[name].Value;
        foreach (int i in new[] { 0, p.Length / 2, p.Length - 1 })
        {
            float numeric = (float)GradCheck.Central(p.Span, i, 1e-3f, () => Loss());
            Assert.True(Math.Abs(numeric - p.Grad![i]) <= 3e-4f + 0.02f * Math.Abs(numeric), $"{name}[{i}]: numeric {numeric:E3}, analytic {p.Grad[i]:E3}");
        }
    }
}
