using MoeSharp.Autograd;
using MoeSharp.Formats;
using MoeSharp.Kernels;
using MoeSharp.Nn;
using MoeSharp.Tests.Formats;

namespace MoeSharp.Tests.Nn;

/// <summary>
/// Decode attention with stored q/k/v weights: the three projections in one parallel loop (<see cref="MatVecGroup"/>)
/// against one StoredLinear each, over a prompt and then one position at a time, in every weight format, at 1 and 2
/// threads, with and without q/k/v biases and per-head q/k norms. Tolerance 0: outputs and cached keys and values bitwise.
/// </summary>
public sealed class StoredQkvGroupTests
{
    private const int D = 256, Heads = 4, KvHeads = 2, HeadDim = 64, Positions = 8;

    private static CausalSelfAttention Attention(WeightFormat format, bool bias)
    {
        var arena = new ParameterArena();
        var rope = new RopeTable(HeadDim, Positions, 10000f, RopeStyle.HalfRotate);
        var attn = new CausalSelfAttention(arena, "attn", D, Heads, KvHeads, HeadDim, rope, 0.3f, 0.3f,
            qkvBias: bias, qkNorm: bias ? QkNorm.PerHead : QkNorm.None);
        foreach (var (linear, seed) in new[] { (attn.Q, 10UL), (attn.K, 20UL), (attn.V, 30UL) })
            arena.Store(linear.Weight, new StoredWeight(RowKernelTests.RandomMatrix(format, linear.Weight.Shape[0], D, seed)));
        arena.Build(5);
        foreach (var b in new[] { attn.Q.Bias, attn.K.Bias, attn.V.Bias })
            if (b is not null) Numerics.Random(b.Length, 41, 0.5f).CopyTo(b.Value.Span);
        return attn;
    }

    private static float[] Step(CausalSelfAttention attn, KvCache.Layer cache, float[] x, int rows, bool grouped, int threads)
    {
        bool was = MatVecGroup.Enabled;
        MatVecGroup.Enabled = grouped;
        try
        {
            using var limit = Workers.Limit(threads);
            var tape = new Tape();
            using (tape.NoGrad()) return attn.Forward(tape, MoeSharp.Tensors.Tensor.FromArray(x, rows, D), cache).ToArray();
        }
        finally
        {
            MatVecGroup.Enabled = was;
        }
    }

    public static TheoryData<WeightFormat, bool, int> Cases()
    {
        var data = new TheoryData<WeightFormat, bool, int>();
        foreach (var format in WeightFormats.All)
            foreach (int threads in new[] { 1, 2 })
            {
                data.Add(format, false, threads);
                data.Add(format, true, threads);
            }
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void GroupedDecodeProjectionsEqualOneStoredLinearEachBitwise(WeightFormat format, bool bias, int threads)
    {
        var attn = Attention(format, bias);
        int width = KvHeads * HeadDim;
        var expectedCache = new KvCache(1, Positions, width).Layers[0];
        var actualCache = new KvCache(1, Positions, width).Layers[0];
        float[] prompt = Numerics.Random(3 * D, 60, 1f); // [3, D]
        Numerics.BitwiseEqual(Step(attn, expectedCache, prompt, 3, false, 1), Step(attn, actualCache, prompt, 3, true, threads), "prompt");
        for (int pos = 3; pos < 6; pos++)
        {
            float[] x = Numerics.Random(D, 60 + (ulong)pos, 1f); // [1, D]
            var expected = Step(attn, expectedCache, x, 1, false, 1);
            Assert.Contains(expected, v => v != 0f);
            string what = $"{format} bias={bias} threads={threads} position={pos}";
            Numerics.BitwiseEqual(expected, Step(attn, actualCache, x, 1, true, threads), what);
            Numerics.BitwiseEqual(expectedCache.Keys.AsSpan(0, (pos + 1) * width), actualCache.Keys.AsSpan(0, (pos + 1) * width), what + " keys");
            Numerics.BitwiseEqual(expectedCache.Values.AsSpan(0, (pos + 1) * width), actualCache.Values.AsSpan(0, (pos + 1) * width), what + " values");
        }
    }
}
