using MoeSharp.Autograd;
using MoeSharp.Experts;
using MoeSharp.Formats;
using MoeSharp.Kernels;
using MoeSharp.Layers;
using MoeSharp.Nn;
using MoeSharp.Tensors;
using MoeSharp.Tests.Formats;

namespace MoeSharp.Tests.Dispatch;

/// <summary>
/// Decode through stored experts with <see cref="MatVecGroup"/> (every selected expert's W1/W3 in one parallel loop,
/// their W2 in another) against one MatVec per matrix: bitwise the same layer output in every weight format, at 1 and
/// 2 threads, with biases and GPT-OSS's clamped SwiGLU, and with GELU experts (no W3). Tolerance 0.
/// </summary>
public sealed class StoredDecodeGroupTests
{
    private const int D = 256, H = 512, E = 5, TopK = 3; // k-quants need whole 256-blocks per row

    private static MoeLayer Layer(WeightFormat format, ExpertActivation act, bool bias, bool clamp)
    {
        var arena = new ParameterArena();
        var layer = new MoeLayer(new MoeOptions
        {
            Dim = D, Experts = E, TopK = TopK, ExpertHidden = H, Activation = act, ExpertBias = bias, InitStd = 0.3f,
            SwiGluClamp = clamp ? new SwiGluClamp(1.702f, 0.6f) : null,
        }, arena, "moe");
        var bank = layer.Bank;
        foreach (var (p, rows, cols, seed) in new[] { (bank.W1, H, D, 100UL), (bank.W3, H, D, 200UL), (bank.W2, D, H, 300UL) })
        {
            if (p is null) continue;
            var matrices = new QuantizedMatrix[E];
            for (int e = 0; e < E; e++) matrices[e] = RowKernelTests.RandomMatrix(format, rows, cols, seed + (ulong)e);
            arena.Store(p, new StoredWeight(matrices));
        }
        arena.Build(3);
        foreach (var b in new[] { bank.B1, bank.B3, bank.B2 })
            if (b is not null) Numerics.Random(b.Length, 31, 0.5f).CopyTo(b.Value.Span);
        return layer;
    }

    private static float[] Decode(MoeLayer layer, Tensor x, bool grouped, int threads)
    {
        bool was = MatVecGroup.Enabled;
        MatVecGroup.Enabled = grouped;
        try
        {
            using var limit = Workers.Limit(threads);
            var tape = new Tape();
            using (tape.NoGrad()) return layer.Forward(tape, x).Output.ToArray();
        }
        finally
        {
            MatVecGroup.Enabled = was;
        }
    }

    public static TheoryData<WeightFormat, ExpertActivation, bool, bool> Cases()
    {
        var data = new TheoryData<WeightFormat, ExpertActivation, bool, bool>();
        foreach (var format in WeightFormats.All)
        {
            data.Add(format, ExpertActivation.SwiGlu, false, false);
            data.Add(format, ExpertActivation.SwiGlu, true, true);
            data.Add(format, ExpertActivation.Gelu, true, false);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void GroupedDecodeEqualsOneMatVecPerMatrixBitwise(WeightFormat format, ExpertActivation act, bool bias, bool clamp)
    {
        var layer = Layer(format, act, bias, clamp);
        Assert.True(layer.Bank.IsStored);
        for (ulong token = 0; token < 3; token++)
        {
            var x = Numerics.RandomTensor(50 + token, 1f, 1, D); // [1,D]: one decoded token
            var expected = Decode(layer, x, grouped: false, threads: 1);
            Assert.Contains(expected, v => v != 0f);
            foreach (int threads in new[] { 1, 2 })
                Numerics.BitwiseEqual(expected, Decode(layer, x, grouped: true, threads), $"{format} {act} bias={bias} clamp={clamp} token={token} threads={threads}");
        }
    }
}
