using MoeSharp.Autograd;
using MoeSharp.Formats;
using MoeSharp.IO;
using MoeSharp.Kernels;
using MoeSharp.Models;
using MoeSharp.Nn;
using MoeSharp.Tests.IO;

namespace MoeSharp.Tests.Dispatch;

/// <summary>
/// Stored weights in a batched forward: prompt rows take the panel GEMM (<see cref="QuantizedMatrix.Prefill"/>) and
/// decode rows the matrix-vector arithmetic, chosen per sequence, so every sequence of a batch gets bitwise the logits
/// it gets alone; on the tiny Mixtral of <see cref="StoredWeightsTests"/> (D = 256, whole K-quant super-blocks).
/// </summary>
public sealed class StoredPrefillTests : TempFolderTest
{
    [Theory]
    [InlineData(WeightFormat.F32)]
    [InlineData(WeightFormat.F16)]
    [InlineData(WeightFormat.BF16)]
    [InlineData(WeightFormat.Q8_0)]
    [InlineData(WeightFormat.Q6_K)]
    [InlineData(WeightFormat.Q4_K)]
    [InlineData(WeightFormat.MXFP4)]
    public void EachSequenceOfAMixedBatchGetsBitwiseTheLogitsItGetsAlone(WeightFormat format)
    {
        using var model = ModelStore.Open(StoredWeightsTests.WriteMixtral(Path.Combine(Folder, "m")), new ModelLoadOptions { Quantize = format });
        int vocab = model.Config.Vocab;
        var tape = new Tape();
        using var _ = tape.NoGrad();
        var batched = new KvCache[3];
        var alone = new KvCache[3];
        for (int s = 0; s < 3; s++)
        {
            batched[s] = model.NewCache();
            alone[s] = model.NewCache();
        }
        // Sequence 1 has a cached prefix and decodes; 0 and 2 bring prompts, then all three decode, then 0 brings a chunk.
        int[][] prefix = [[], [5, 6, 7], []];
        for (int s = 0; s < 3; s++)
            if (prefix[s].Length > 0)
            {
                model.ForwardBatch(tape, [prefix[s]], [batched[s]]);
                model.ForwardBatch(tape, [prefix[s]], [alone[s]]);
                tape.Reset();
            }
        int[][][] steps = [[[3, 14, 15, 92, 65, 35], [8], [89, 79, 32, 38]], [[1], [2], [3]], [[4, 5, 6], [7], [8]]];
        foreach (var ids in steps)
        {
            float[] together = model.ForwardBatch(tape, ids, batched).Logits.ToArray(); // [S, V]
            tape.Reset();
            for (int s = 0; s < 3; s++)
            {
                float[] own = model.ForwardBatch(tape, [ids[s]], [alone[s]]).Logits.ToArray(); // [1, V]
                tape.Reset();
                Numerics.BitwiseEqual(own, together.AsSpan(s * vocab, vocab), $"{format}: sequence {s} bringing {ids[s].Length} tokens");
            }
        }
    }

    /// <summary>
    /// The panel GEMM sums as <c>Gemm</c>'s AVX-512 micro-kernel does (256-deep blocks, a fused multiply-add chain per
    /// element, blocks added in order), so a prompt pass over F32 weights used in place is bitwise the fp32 arena
    /// model's; the matrix-vector arithmetic would differ in the last bits. This shows the prompt rows reach it.
    /// </summary>
    [Fact]
    public void APromptPassOverInPlaceF32WeightsIsBitwiseTheArenaModels()
    {
        if (!PrefillKernels.Supported || Gemm.VectorBits != 512) Assert.Skip("the panel GEMM sums as Gemm's 512-bit path only");
        string folder = StoredWeightsTests.WriteMixtral(Path.Combine(Folder, "f32"));
        using var arena = ModelStore.Open(folder);
        using var stored = ModelStore.Open(folder, new ModelLoadOptions { InPlace = true });
        int[] prompt = [3, 14, 15, 92, 65, 35, 89, 79, 32, 38, 46, 26, 43];
        var tape = new Tape();
        using var _ = tape.NoGrad();
        float[] expected = arena.ForwardBatch(tape, [prompt], [arena.NewCache()]).Logits.ToArray(); // [1, V]
        tape.Reset();
        float[] actual = stored.ForwardBatch(tape, [prompt], [stored.NewCache()]).Logits.ToArray(); // [1, V]
        Numerics.BitwiseEqual(expected, actual, "prompt pass, F32 in place against the arena");
    }
}
