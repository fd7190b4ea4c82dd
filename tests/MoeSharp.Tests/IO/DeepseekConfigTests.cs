using System.Text.Json;
using System.Text.Json.Nodes;
using MoeSharp.Autograd;
using MoeSharp.IO;
using MoeSharp.Kernels;
using MoeSharp.Models;
using MoeSharp.Routing;
using MoeSharp.Tests.Models;

namespace MoeSharp.Tests.IO;

/// <summary>How DeepSeek-V2 and V3 config.json files map onto MoeTransformer options, what they refuse, and a training step on V3.</summary>
public class DeepseekConfigTests
{
    private static JsonObject Golden(string arch = "deepseek_v3") =>
        JsonNode.Parse(File.ReadAllText(Path.Combine(ArchitectureGoldenTests.Folder(arch), "config.json")))!.AsObject();

    private static ModelConfig Read(JsonObject config) =>
        HfArchitecture.For(config["model_type"]!.GetValue<string>(), "config.json").ReadConfig(JsonDocument.Parse(config.ToJsonString()).RootElement, "config.json");

    [Fact]
    public void EveryFeatureBecomesAnOption()
    {
        var c = Read(Golden());
        Assert.Equal((24, 16, 8, 4, 6), (c.Mla!.QLoraRank, c.Mla.KvLoraRank, c.Mla.QkNopeHeadDim, c.Mla.QkRopeHeadDim, c.Mla.VHeadDim));
        Assert.Equal((RopeStyle.Interleaved, 4), (c.RopeStyle, c.RopeDim));
        Assert.Equal([0], c.DenseLayers!);
        Assert.False(c.IsMoeLayer(0));
        Assert.True(c.IsMoeLayer(1));
        var m = c.Moe!;
        Assert.Equal((RouterKind.SigmoidBias, 8, 3, 4, 2, 2.5f, true, 2, 16), (m.Router, m.Experts, m.TopK, m.Groups, m.TopGroups, m.RoutedScaling, m.NormalizeTopK, m.SharedExperts, m.SharedHidden));
    }

    /// <summary>
    /// rope_scaling of type yarn reaches the rotary table, and the softmax multiplier is HF's mscale(s, mscale_all_dim)²,
    /// hand-derived: (0.1·0.707·ln 4 + 1)² = 1.2056281810 for the golden, (0.1·ln 40 + 1)² = 1.8738542071 for
    /// DeepSeek-V3's released values; 1 without mscale_all_dim or without rope_scaling. Relative tolerance 1e-6 (float).
    /// </summary>
    [Fact]
    public void YarnReachesTheRotaryTableAndTheSoftmaxMultiplier()
    {
        var c = Read(Golden());
        Assert.Equal(new YarnScaling(4, 16, 32, 1, null, 0.707f, 0.707f), c.Yarn);
        Assert.Equal(1.0, c.Yarn!.ResolvedAttentionFactor, 1e-12);
        Assert.Equal(1.2056281810, c.Mla!.SoftmaxMultiplier, 1.2056281810 * 1e-6);
        Assert.Same(c.Yarn, new MoeTransformer(c).Rope.Yarn);

        var v3 = Golden();
        v3["rope_scaling"] = JsonNode.Parse("""{"type": "yarn", "factor": 40, "original_max_position_embeddings": 4096, "beta_fast": 32, "beta_slow": 1, "mscale": 1.0, "mscale_all_dim": 1.0}""");
        Assert.Equal(1.8738542071, Read(v3).Mla!.SoftmaxMultiplier, 1.8738542071 * 1e-6);

        v3["rope_scaling"] = JsonNode.Parse("""{"type": "yarn", "factor": 40, "original_max_position_embeddings": 4096}""");
        Assert.Equal(1f, Read(v3).Mla!.SoftmaxMultiplier);

        v3["rope_scaling"] = null;
        var plain = Read(v3);
        Assert.Null(plain.Yarn);
        Assert.Equal(1f, plain.Mla!.SoftmaxMultiplier);
    }

    [Theory]
    [InlineData("scoring_func", "\"softmax\"", "scoring_func \"softmax\" is not supported; expected \"sigmoid\".")]
    [InlineData("topk_method", "\"group_limited_greedy\"", "topk_method \"group_limited_greedy\" is not supported; expected \"noaux_tc\".")]
    [InlineData("rope_scaling", "{\"type\":\"longrope\",\"factor\":40}", "rope_scaling type 'longrope' is not supported; expected \"yarn\" or null.")]
    [InlineData("rope_scaling", "{\"type\":\"yarn\",\"factor\":0.5}", "rope_scaling: YaRN factor must be at least 1, got 0.5.")]
    [InlineData("first_k_dense_replace", "5", "first_k_dense_replace must be in [0, num_hidden_layers = 3], got 5.")]
    [InlineData("topk_group", "5", "topk_group must be in [1, n_group = 4], got 5.")]
    [InlineData("n_group", "3", "n_group must be positive and divide n_routed_experts = 8, got 3.")]
    public void AnUnsupportedOrInvalidFieldIsNamed(string field, string value, string message) => Refused("deepseek_v3", field, value, message);

    /// <summary>
    /// DeepSeek-V2's router: softmax without a selection bias, greedy top-k over every expert (the golden, as V2-Lite)
    /// or group_limited_greedy within topk_group of n_group groups (V2), not renormalised by default, scaled by
    /// routed_scaling_factor; the attention, dense blocks, shared experts and YaRN are V3's.
    /// </summary>
    [Fact]
    public void DeepseekV2SwitchesOnItsRouter()
    {
        var c = Read(Golden("deepseek_v2"));
        Assert.Equal((24, 16, 8, 4, 6), (c.Mla!.QLoraRank, c.Mla.KvLoraRank, c.Mla.QkNopeHeadDim, c.Mla.QkRopeHeadDim, c.Mla.VHeadDim));
        Assert.Equal(1.2056281810, c.Mla.SoftmaxMultiplier, 1.2056281810 * 1e-6);
        Assert.Equal([0], c.DenseLayers!);
        var m = c.Moe!;
        Assert.Equal((RouterKind.SoftmaxTopK, 8, 3, 1, 1, 2f, false, 2, 16, false), (m.Router, m.Experts, m.TopK, m.Groups, m.TopGroups, m.RoutedScaling, m.NormalizeTopK, m.SharedExperts, m.SharedHidden, m.GateBias));
        Assert.DoesNotContain(new MoeTransformer(c).Arena.Parameters, p => p.Name.Contains("e_score_correction_bias", StringComparison.Ordinal));

        var v2 = Golden("deepseek_v2");
        v2["topk_method"] = "group_limited_greedy";
        v2["n_group"] = 4;
        v2["topk_group"] = 2;
        v2["norm_topk_prob"] = true;
        m = Read(v2).Moe!;
        Assert.Equal((RouterKind.SoftmaxTopK, 4, 2, true), (m.Router, m.Groups, m.TopGroups, m.NormalizeTopK));
        v2.Remove("scoring_func");
        v2.Remove("topk_method");
        v2.Remove("norm_topk_prob");
        m = Read(v2).Moe!;
        Assert.Equal((RouterKind.SoftmaxTopK, 1, 1, false), (m.Router, m.Groups, m.TopGroups, m.NormalizeTopK)); // HF's defaults: softmax, greedy
    }

    [Theory]
    [InlineData("scoring_func", "\"sigmoid\"", "scoring_func \"sigmoid\" is not supported; expected \"softmax\".")]
    [InlineData("topk_method", "\"noaux_tc\"", "topk_method \"noaux_tc\" is not supported for deepseek_v2; expected \"greedy\" or \"group_limited_greedy\".")]
    [InlineData("topk_method", "\"gready\"", "topk_method \"gready\" is not supported for deepseek_v2")]
    [InlineData("topk_group", "5", "topk_group must be in [1, n_group = 4], got 5.")]
    [InlineData("rope_scaling", "{\"type\":\"dynamic\",\"factor\":4}", "rope_scaling type 'dynamic' is not supported; expected \"yarn\" or null.")]
    public void AnUnsupportedOrInvalidV2FieldIsNamed(string field, string value, string message)
    {
        var config = Golden("deepseek_v2");
        config["topk_method"] = "group_limited_greedy";
        config["n_group"] = 4;
        config["topk_group"] = 2;
        config[field] = JsonNode.Parse(value);
        Refused(config, message);
    }

    private static void Refused(string arch, string field, string value, string message)
    {
        var config = Golden(arch);
        config[field] = JsonNode.Parse(value);
        Refused(config, message);
    }

    private static void Refused(JsonObject config, string message)
    {
        var ex = Assert.ThrowsAny<Exception>(() => Read(config));
        Assert.True(ex is InvalidDataException, ex.GetType().Name);
        Assert.StartsWith("config.json: ", ex.Message);
        Assert.Contains(message, ex.Message);
    }

    /// <summary>A training step reaches every parameter but the selection bias, which only bias balancing moves.</summary>
    [Fact]
    public void ATrainingStepGivesEveryTrainableParameterAGradient()
    {
        var model = ModelStore.Open(ArchitectureGoldenTests.Folder("deepseek_v3"), maxContext: 16);
        var tape = new Tape();
        model.Arena.ZeroGrad();
        var (loss, _, _) = model.Loss(tape, [1, 17, 42, 99, 5, 260, 7, 8], [17, 42, 99, 5, 260, 7, 8, 9], batch: 2, training: true);
        tape.Backward(loss);
        Assert.True(float.IsFinite(loss.Span[0]));
        foreach (var p in model.Arena.Parameters)
        {
            var g = model.Arena.Grads.AsSpan(p.Offset, p.Length);
            Assert.True(System.Numerics.Tensors.TensorPrimitives.IsFiniteAll(g), p.Name);
            if (p.Trainable && !p.Name.Contains(".experts.", StringComparison.Ordinal))
                Assert.True(g.ToArray().Any(v => v != 0), $"{p.Name} got no gradient");
        }
    }
}
