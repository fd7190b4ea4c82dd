using MoeSharp.Autograd;
using MoeSharp.Kernels;
using MoeSharp.Models;
using MoeSharp.Nn;
using MoeSharp.Tensors;
using MoeSharp.Tests.Autograd;

namespace MoeSharp.Tests.Nn;

/// <summary>
/// Multi-head latent attention: the training path (keys and values expanded per head) against finite differences,
/// the generation path (kv_b_proj absorbed, only [latent | k_rope] cached) against the training path, and the cache's
/// size. The llama.cpp reference for the whole model is in ArchitectureGoldenTests (deepseek_v3).
/// </summary>
public class LatentAttentionTests
{
    /// <summary>q_lora_rank set and v narrower than q/k; no q compression and v wider than q/k, with a YaRN-like multiplier.</summary>
    public static TheoryData<MlaOptions> Shapes() =>
    [
        new MlaOptions { QLoraRank = 6, KvLoraRank = 5, QkNopeHeadDim = 4, QkRopeHeadDim = 2, VHeadDim = 3 },
        new MlaOptions { QLoraRank = 0, KvLoraRank = 4, QkNopeHeadDim = 2, QkRopeHeadDim = 4, VHeadDim = 8, SoftmaxMultiplier = 1.3f },
    ];

    private static LatentAttention Build(MlaOptions o, int dim = 8, int heads = 2, int context = 16)
    {
        var arena = new ParameterArena();
        var rope = new RopeTable(o.QkRopeHeadDim, context, 10000f, RopeStyle.Interleaved);
        var attn = new LatentAttention(arena, "attn", dim, heads, o, rope, initStd: 0.4f, outStd: 0.4f, normEps: 1e-6f);
        arena.Build(3);
        return attn;
    }

    /// <summary>dx through every part (query bottleneck, column splits, the rotary key shared by heads, widening, attention); ε = 1e-2, rtol 2e-3, atol 1e-4.</summary>
    [Theory]
    [MemberData(nameof(Shapes))]
    public void InputGradientMatchesFiniteDifferences(MlaOptions o)
    {
        var attn = Build(o);
        GradCheck.Run("LatentAttention", (t, x) => attn.Forward(t, x[0], batch: 2, seq: 3), [Numerics.RandomTensor(5, 1, 6, 8)],
            eps: 1e-2f, rtol: 2e-3f, atol: 1e-4f);
    }

    /// <summary>Prefill of 2 positions then 3 single steps through the cache equals the whole sequence at once (rtol 1e-4, atol 1e-5).</summary>
    [Theory]
    [MemberData(nameof(Shapes))]
    public void CachedDecodeEqualsTheWholeSequence(MlaOptions o)
    {
        var attn = Build(o);
        var x = Numerics.RandomTensor(7, 1, 5, 8); // [5, D]
        var tape = new Tape();
        using var _ = tape.NoGrad();
        float[] whole = attn.Forward(tape, x, batch: 1, seq: 5).ToArray(); // [5, D]
        var cache = new KvCache(1, 5, attn.CacheWidth, 0).Layers[0];
        var stepped = new List<float>();
        foreach (var (from, count) in new[] { (0, 2), (2, 1), (3, 1), (4, 1) })
        {
            var part = Tensor.FromArray(x.Span.Slice(from * 8, count * 8).ToArray(), count, 8);
            stepped.AddRange(attn.Forward(tape, part, cache).ToArray());
        }
        Assert.Equal(5, cache.Length);
        Numerics.Close(whole, stepped.ToArray(), 1e-4f, 1e-5f, "cached vs whole-sequence latent attention");
    }

    [Fact]
    public void TheCacheKeepsOnlyTheLatentAndTheRotaryKeyPerPosition()
    {
        var mla = new MlaOptions { QLoraRank = 6, KvLoraRank = 5, QkNopeHeadDim = 4, QkRopeHeadDim = 2, VHeadDim = 3 };
        var model = new MoeTransformer(new ModelConfig { Vocab = 16, DModel = 8, Layers = 3, Heads = 4, DFF = 16, Context = 8, Mla = mla });
        var cache = model.NewCache();
        // (r + dr) floats per layer and position, against 2·H·(dn+dr) for the expanded keys and values.
        Assert.Equal(3L * (5 + 2) * sizeof(float), cache.BytesPerPosition);
        Assert.All(cache.Layers, l => Assert.Empty(l.Values));
        var tape = new Tape();
        using (tape.NoGrad()) model.Forward(tape, [1, 2, 3], cache);
        Assert.Equal(3, cache.Length);
    }

    [Fact]
    public void AnInvalidSizeIsNamed()
    {
        var config = new ModelConfig { Vocab = 16, DModel = 8, Layers = 1, Heads = 2, DFF = 16, Mla = new MlaOptions { KvLoraRank = 4, QkNopeHeadDim = 2, QkRopeHeadDim = 3, VHeadDim = 2 } };
        var ex = Assert.Throws<ArgumentException>(config.Validate);
        Assert.StartsWith("Model config: mla.qk_rope_head_dim: must be even and positive for RoPE, got 3.", ex.Message);
    }
}
