using System.Buffers;
using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using MoeSharp.Autograd;
using MoeSharp.Formats;
using MoeSharp.IO;
using MoeSharp.Models;

namespace MoeSharp.Tests.IO;

/// <summary>
/// A tiny Mixtral (D = 256 so every row is whole K-quant super-blocks; 2 layers, 4 experts of 256, top-2, 256
/// tokens) saved as a Hugging Face folder, loaded with its weights stored (in place from the mapped file, or quantized
/// on load) against the same weights in the fp32 arena.
/// </summary>
public sealed class StoredWeightsTests : TempFolderTest
{
    private const int D = 256, Layers = 2, Experts = 4, Vocab = 256;
    private static readonly int[] Prompt = [3, 14, 15, 92, 65, 35, 89, 79];

    private string WriteFolder(bool tied = false) => WriteMixtral(Path.Combine(Folder, tied ? "tied" : "untied"), tied);

    /// <summary>Writes the tiny Mixtral's config.json and model.safetensors (random weights, seed 7) into <paramref name="folder"/>.</summary>
    internal static string WriteMixtral(string folder, bool tied = false)
    {
        string json = $$"""
            { "model_type": "mixtral", "hidden_size": {{D}}, "num_hidden_layers": {{Layers}}, "num_attention_heads": 4, "num_key_value_heads": 2,
              "intermediate_size": 256, "num_local_experts": {{Experts}}, "num_experts_per_tok": 2, "vocab_size": {{Vocab}},
              "max_position_embeddings": 64, "rope_theta": 10000.0, "tie_word_embeddings": {{(tied ? "true" : "false")}} }
            """;
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, "config.json"), json);
        using var doc = System.Text.Json.JsonDocument.Parse(json);
        // Weights of std 0.08 rather than 0.02, so the logits are well above float32's rounding of the residual stream.
        var config = ModelStore.FromHuggingFace(doc.RootElement, "test") with { InitStd = 0.08f };
        var model = new MoeTransformer(config, seed: 7);
        ModelStore.Save(Path.Combine(folder, "model.safetensors"), model.Arena);
        return folder;
    }

    private static float[] Logits(MoeTransformer model)
    {
        var tape = new Tape();
        using (tape.NoGrad()) return model.Forward(tape, Prompt, batch: 1).Logits.Span.ToArray();
    }

    /// <summary>‖a − b‖₂ / ‖a‖₂.</summary>
    private static double RelativeError(float[] expected, float[] actual)
    {
        double num = 0, den = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            num += (double)(actual[i] - expected[i]) * (actual[i] - expected[i]);
            den += (double)expected[i] * expected[i];
        }
        return Math.Sqrt(num / den);
    }

    /// <summary>
    /// Relative L2 error of the first step's logits [8, 256] against fp32, per format. A format's rounding leaves a
    /// relative weight error of about its step over √12: F16 2⁻¹¹ (3e-4 RMS), BF16 2⁻⁸ (2.3e-3 RMS), Q8_0 max|w|/127
    /// per block of 32 (≈ 0.5 % of the weights' RMS for Gaussian weights), Q6_K a 6-bit step with 8-bit sub-scales
    /// (≈ 2 %), Q4_K a 4-bit step with a min (≈ 8 %). Q8_0, Q4_K and Q6_K also quantize the activations to 8 bits in
    /// MatVec (≈ 0.3 %). Each tolerance is about 3× that through a dozen products (the errors add in quadrature); F32
    /// is exact up to float reassociation (1e-5). MXFP4 quantizes only the experts (the rest stays F32): E2M1 is
    /// ≈ 10 % on them, but their output is a small part of this model's residual stream (measured 0.5 %), so it is
    /// held to Q8_0's bound. Measured on this model: F16 5.8e-4, BF16 4.4e-3, Q8_0 1.5e-2, Q6_K 4.8e-2, Q4_K 0.19.
    /// </summary>
    [Theory]
    [InlineData(WeightFormat.F32, 1e-5)]
    [InlineData(WeightFormat.F16, 2e-3)]
    [InlineData(WeightFormat.BF16, 1.5e-2)]
    [InlineData(WeightFormat.Q8_0, 3e-2)]
    [InlineData(WeightFormat.Q6_K, 6e-2)]
    [InlineData(WeightFormat.Q4_K, 0.25)]
    [InlineData(WeightFormat.MXFP4, 3e-2)]
    public void StoredLogitsMatchFp32WithinTheFormatsStep(WeightFormat format, double tolerance)
    {
        string folder = WriteFolder();
        using var reference = ModelStore.Open(folder);
        using var stored = ModelStore.Open(folder, new ModelLoadOptions { Quantize = format });
        Assert.NotNull(stored.Arena["model.layers.1.block_sparse_moe.experts.w2"].Stored);
        double error = RelativeError(Logits(reference), Logits(stored));
        Assert.True(error <= tolerance, $"{format}: relative logit error {error:G3} > {tolerance}");
    }

    [Theory]
    [InlineData(WeightFormat.F32)]
    [InlineData(WeightFormat.BF16)]
    public void GreedyContinuationEqualsFp32(WeightFormat format)
    {
        string folder = WriteFolder();
        using var reference = ModelStore.Open(folder);
        using var stored = ModelStore.Open(folder, new ModelLoadOptions { Quantize = format });
        Assert.Equal(Generator.Greedy(reference, Prompt, 12), Generator.Greedy(stored, Prompt, 12));
    }

    [Fact]
    public void InPlaceSafetensorsStoresEveryProjectionAndKeepsOnlyNormsAndRoutersInTheArena()
    {
        string folder = WriteFolder(tied: true);
        using var reference = ModelStore.Open(folder);
        using var stored = ModelStore.Open(folder, new ModelLoadOptions { InPlace = true });
        // Left in the arena: 2 RMSNorms per layer and the final one [D], one router [E, D] per layer.
        Assert.Equal((2 * Layers + 1) * D + Layers * Experts * D, stored.Arena.Length);
        Assert.Equal(reference.Arena.Length, stored.Arena.TotalElements);
        Assert.Equal(WeightFormat.F32, stored.Embed.Weight.Stored!.Format);
        // Stored F32 products sum each row in the matvec kernel's order (vector lanes, then a tree), the arena's GEMM in
        // k order: the same terms reassociated, an error relative to Σ|w·x| rather than to the result, so logits near 0
        // carry the absolute error of the large ones (1e-5 of the largest).
        var expected = Logits(reference);
        Numerics.Close(expected, Logits(stored), 1e-5f, 1e-5f * TensorPrimitives.MaxMagnitude(expected), "tied, in place");
        Assert.Equal(Generator.Greedy(reference, Prompt, 8), Generator.Greedy(stored, Prompt, 8));
    }

    [Fact]
    public void ValueOfAStoredParameterThrowsOneLine()
    {
        using var stored = ModelStore.Open(WriteFolder(), new ModelLoadOptions { Quantize = WeightFormat.Q8_0 });
        var ex = Assert.Throws<InvalidOperationException>(() => stored.Arena["model.layers.0.self_attn.q_proj.weight"].Value);
        Assert.Equal("Parameter 'model.layers.0.self_attn.q_proj.weight' is stored as Q8_0 for inference; training and fp32 access need fp32 weights (load the model without in-place or quantized weights).", ex.Message);
        Assert.False(stored.Arena["model.layers.0.self_attn.q_proj.weight"].Trainable);
    }

    [Fact]
    public void ARecordingTapeIsRefusedByStoredWeights()
    {
        using var stored = ModelStore.Open(WriteFolder(), new ModelLoadOptions { Quantize = WeightFormat.Q8_0 });
        var ex = Assert.Throws<InvalidOperationException>(() => stored.Forward(new Tape(), Prompt, batch: 1));
        Assert.Contains("is stored as Q8_0 for inference, but the tape records gradients", ex.Message);
        Assert.DoesNotContain('\n', ex.Message);
    }

    [Fact]
    public void QuantizingRowsThatAreNotWholeBlocksNamesTheWeight()
    {
        string folder = Path.Combine(Folder, "narrow");
        Directory.CreateDirectory(folder);
        string json = """
            { "model_type": "mixtral", "hidden_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64,
              "num_local_experts": 2, "num_experts_per_tok": 1, "vocab_size": 32, "max_position_embeddings": 16 }
            """;
        File.WriteAllText(Path.Combine(folder, "config.json"), json);
        using var doc = System.Text.Json.JsonDocument.Parse(json);
        ModelStore.Save(Path.Combine(folder, "model.safetensors"), new MoeTransformer(ModelStore.FromHuggingFace(doc.RootElement, "test")).Arena);
        var ex = Assert.Throws<InvalidDataException>(() => ModelStore.Open(folder, new ModelLoadOptions { Quantize = WeightFormat.Q4_K }));
        Assert.Contains("weight 'model.embed_tokens.weight' has rows of 64; Q4_K needs a multiple of 256", ex.Message);
    }

    [Fact]
    public void AGgufThreeDimensionalExpertTensorIsReadInPlace()
    {
        string folder = WriteFolder();
        string gguf = Path.Combine(Folder, "model.q8_0.gguf");
        using (var source = ModelStore.Open(folder)) ModelStore.SaveGguf(source, gguf, WeightFormat.Q8_0, "llama");
        using var model = ModelStore.OpenGguf(gguf);
        var w1 = model.Arena["model.layers.0.block_sparse_moe.experts.w1"].Stored!;
        Assert.Equal(WeightFormat.Q8_0, w1.Format);
        Assert.Equal(Experts, w1.Count);
        // Not a managed copy: each expert's matrix is memory over the map, the experts back to back as in the file's
        // one [E, H, D] tensor, holding the tensor's bytes.
        Assert.False(MemoryMarshal.TryGetArray(w1[0].Data, out ArraySegment<byte> _));
        using var first = w1[0].Data.Pin();
        using var second = w1[1].Data.Pin();
        unsafe
        {
            Assert.Equal((long)first.Pointer + w1[0].Data.Length, (long)second.Pointer);
        }
        using var file = GgufFile.Open(gguf);
        Assert.True(file.TensorBytes(file["blk.0.ffn_gate_exps.weight"])[..w1[0].Data.Length].SequenceEqual(w1[0].Data.Span));
    }

    /// <summary>
    /// SaveGguf writes the rows the loader quantizes (q/k rows permuted to llama's interleaved RoPE), so the GGUF model
    /// computes what the folder quantized on load does, up to float reassociation in attention. BF16 multiplies float
    /// activations, so that stays at reassociation size (1e-4). Q4_K's products quantize the activations to 8 bits,
    /// a step function: a reassociation difference can flip one activation's rounding, which moves an output by one
    /// activation step times the weight, so Q4_K is held to a relative L2 difference of 5e-3 (measured 1.7e-3; about
    /// 3× as the per-format bounds are, and a fortieth of Q4_K's own error against fp32, 0.19,
    /// <see cref="StoredLogitsMatchFp32WithinTheFormatsStep"/>), and the same greedy text.
    /// </summary>
    [Theory]
    [InlineData(WeightFormat.Q4_K)]
    [InlineData(WeightFormat.BF16)]
    public void SaveGgufRoundTripsThroughOpenGguf(WeightFormat format)
    {
        string folder = WriteFolder();
        string gguf = Path.Combine(Folder, $"model.{format}.gguf");
        using (var source = ModelStore.Open(folder, new ModelLoadOptions { InPlace = true })) ModelStore.SaveGguf(source, gguf, format, "llama");
        using var quantized = ModelStore.Open(folder, new ModelLoadOptions { Quantize = format });
        using var model = ModelStore.OpenGguf(gguf);
        Assert.Equal(format, model.Arena["model.layers.0.self_attn.k_proj.weight"].Stored!.Format);
        Assert.Null(model.Arena["model.layers.0.block_sparse_moe.gate.weight"].Stored);
        if (format == WeightFormat.Q4_K)
        {
            double error = RelativeError(Logits(quantized), Logits(model));
            Assert.True(error <= 5e-3, $"Q4_K GGUF vs quantized on load: relative logit difference {error:G3} > 5e-3");
        }
        else
        {
            Numerics.Close(Logits(quantized), Logits(model), 1e-4f, 1e-5f, $"{format} GGUF vs quantized on load");
        }
        Assert.Equal(Generator.Greedy(quantized, Prompt, 8), Generator.Greedy(model, Prompt, 8));
    }

    [Fact]
    public void SaveGgufRefusesAnArchitectureThatCannotExpressTheModelAndLeavesNoFile()
    {
        string gguf = Path.Combine(Folder, "qwen.gguf");
        using var source = ModelStore.Open(WriteFolder());
        var ex = Assert.Throws<InvalidDataException>(() => ModelStore.SaveGguf(source, gguf, WeightFormat.F32, "qwen3moe"));
        Assert.Contains("qwen3moe cannot express this model: its q/k norm is None (the file would give PerHead)", ex.Message);
        Assert.Empty(Directory.GetFiles(Folder, "qwen.gguf*"));
    }
}
