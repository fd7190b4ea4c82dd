using MoeSharp.Autograd;
using MoeSharp.Formats;
using MoeSharp.IO;
using MoeSharp.Models;
using MoeSharp.Nn;

namespace MoeSharp.Tests.IO;

/// <summary>
/// GPT-OSS's fused experts under an inference load (Golden/gpt_oss: float gate_up_proj/down_proj; Golden/gpt_oss/mxfp4:
/// the same values as the released *_blocks/*_scales): the released MXFP4 experts are computed with as MXFP4, float
/// experts are quantized by --quantize like every other expert, each checked against the fp32 arena load.
/// </summary>
public sealed class GptOssStoredTests
{
    private static readonly int[] Prompt = [3, 14, 15, 92, 65, 35, 89, 79];
    private static string F32 => TestPaths.ArchitectureGolden("gpt_oss");
    private static string Mxfp4 => Path.Combine(TestPaths.ArchitectureGolden("gpt_oss"), "mxfp4");

    private static IEnumerable<Parameter> ExpertWeights(MoeTransformer model)
    {
        foreach (var moe in model.MoeLayers)
        {
            yield return moe.Bank.W1;
            yield return moe.Bank.W3!;
            yield return moe.Bank.W2;
        }
    }

    private static float[] Logits(MoeTransformer model)
    {
        var tape = new Tape();
        using (tape.NoGrad()) return model.Forward(tape, Prompt, batch: 1).Logits.Span.ToArray();
    }

    [Fact]
    public void ReleasedMxfp4ExpertsAreComputedAsMxfp4()
    {
        var arena = ModelStore.Open(F32, maxContext: 64);
        using var stored = ModelStore.Open(Mxfp4, new ModelLoadOptions { MaxContext = 64, InPlace = true });
        var reference = ExpertWeights(arena).ToArray();
        int k = 0;
        foreach (var p in ExpertWeights(stored))
        {
            var w = Assert.IsType<StoredWeight>(p.Stored);
            Assert.Equal(WeightFormat.MXFP4, w.Format);
            // Exact (tolerance 0): the golden's float experts are the MXFP4 values, so each dequantized row is the arena row.
            var values = reference[k++].Value.Span;
            var row = new float[w[0].Cols];
            for (int e = 0; e < w.Count; e++)
                for (int r = 0; r < w[e].Rows; r++)
                {
                    w[e].DequantizeRow(r, row);
                    Numerics.BitwiseEqual(values.Slice((e * w[e].Rows + r) * row.Length, row.Length), row, $"{p.Name} expert {e} row {r}");
                }
        }
        // In place, MXFP4 multiplies with 8-bit activations, as llama.cpp's kernel does, and so does the converted GGUF of the
        // same release (experts as ggml MXFP4, the rest F32) used in place: the same bytes through the same kernels, 1e-5.
        using (var gguf = ModelStore.Open(Path.Combine(F32, "model-mxfp4.gguf"), new ModelLoadOptions { MaxContext = 64 }))
            Numerics.Close(Logits(gguf), Logits(stored), 1e-5f, 1e-5f, "gpt_oss logits, HF MXFP4 experts against the GGUF's");
        // Dequantized to F32 on load they are the arena's values: only the summation order differs (1e-5 relative and absolute).
        float[] expected = Logits(arena);
        using var f32 = ModelStore.Open(Mxfp4, new ModelLoadOptions { MaxContext = 64, InPlace = true, Quantize = WeightFormat.F32 });
        Assert.All(ExpertWeights(f32), p => Assert.Equal(WeightFormat.F32, p.Stored!.Format));
        Numerics.Close(expected, Logits(f32), 1e-5f, 1e-5f, "gpt_oss logits, MXFP4 experts dequantized on load against fp32");
    }

    [Fact]
    public void FloatExpertsAreQuantizedLikeTheOthers()
    {
        var arena = ModelStore.Open(F32, maxContext: 64);
        using var stored = ModelStore.Open(F32, new ModelLoadOptions { MaxContext = 64, InPlace = true, Quantize = WeightFormat.Q8_0 });
        var reference = ExpertWeights(arena).ToArray();
        int k = 0;
        foreach (var p in ExpertWeights(stored))
        {
            var w = Assert.IsType<StoredWeight>(p.Stored);
            Assert.Equal(WeightFormat.Q8_0, w.Format);
            // Exact bytes: the arena's rows (transposed from the fused tensors as the fp32 load transposes them), quantized.
            var values = reference[k++].Value.Span;
            int cols = w[0].Cols;
            var expected = new byte[w[0].RowBytes];
            for (int e = 0; e < w.Count; e++)
                for (int r = 0; r < w[e].Rows; r++)
                {
                    Quantizer.QuantizeRow(WeightFormat.Q8_0, values.Slice((e * w[e].Rows + r) * cols, cols), expected);
                    Assert.True(expected.AsSpan().SequenceEqual(w[e].Row(r)), $"{p.Name} expert {e} row {r}: Q8_0 bytes differ from the arena row's");
                }
        }
    }

    [Fact]
    public void QuantizeKeepsReleasedMxfp4Experts()
    {
        using var stored = ModelStore.Open(Mxfp4, new ModelLoadOptions { MaxContext = 64, InPlace = true, Quantize = WeightFormat.Q8_0 });
        Assert.All(ExpertWeights(stored), p => Assert.Equal(WeightFormat.MXFP4, p.Stored!.Format));
        Assert.Equal(WeightFormat.Q8_0, stored.Arena["model.layers.0.self_attn.q_proj.weight"].Stored!.Format);
    }
}
