using MoeSharp.Autograd;
using MoeSharp.Models;
using MoeSharp.Tensors;

namespace MoeSharp.Tests.Models;

/// <summary>The dense preset of <see cref="MoeTransformer"/>: initial loss, names, KV cache, config errors.</summary>
public class DenseLmTests
{
    private static ModelConfig Tiny => new() { Vocab = 23, DModel = 16, Layers = 2, Heads = 4, KvHeads = 2, DFF = 24, Context = 12 };

    [Fact]
    public void InitialLossIsNearLogVocab()
    {
        // With 0.02-std weights the logits are nearly equal, so the loss is ≈ ln V (within 0.05 for V = 65).
        var config = Tiny with { Vocab = 65 };
        var model = new MoeTransformer(config, seed: 5);
        var rng = new Rng(1);
        var ids = Enumerable.Range(0, 3 * 12).Select(_ => rng.NextInt(65)).ToArray();
        var targets = Enumerable.Range(0, 3 * 12).Select(_ => rng.NextInt(65)).ToArray();
        float loss = model.Loss(new Tape(), ids, targets, 3).Loss[0];
        Assert.InRange(loss, MathF.Log(65) - 0.05f, MathF.Log(65) + 0.05f);
    }

    [Fact]
    public void ParameterNamesFollowHuggingFaceLlama()
    {
        var model = new MoeTransformer(Tiny);
        var names = model.Arena.Parameters.Select(p => p.Name).ToHashSet();
        Assert.Contains("model.embed_tokens.weight", names);
        Assert.Contains("model.layers.1.self_attn.k_proj.weight", names);
        Assert.Contains("model.layers.0.mlp.down_proj.weight", names);
        Assert.Contains("model.norm.weight", names);
        Assert.Contains("lm_head.weight", names);
        Assert.Equal([8, 16], model.Arena["model.layers.0.self_attn.v_proj.weight"].Shape); // 2 KV heads of 4
    }

    [Fact]
    public void KvCacheGenerationGivesFullRecomputeLogits()
    {
        var model = new MoeTransformer(Tiny, seed: 9);
        int[] ids = [1, 5, 7, 2, 9, 22, 0, 3, 3, 11];
        var tape = new Tape();
        float[] full;
        using (tape.NoGrad()) full = model.Forward(tape, ids, 1).Logits.ToArray();
        tape.Reset();
        var cache = model.NewCache();
        var stepwise = new List<float>();
        using (tape.NoGrad())
        {
            // A 4-token prompt at once, then one token at a time, as generation does.
            stepwise.AddRange(model.Forward(tape, ids[..4], cache).Logits.ToArray());
            for (int i = 4; i < ids.Length; i++) stepwise.AddRange(model.Forward(tape, [ids[i]], cache).Logits.ToArray());
        }
        Numerics.Close(full, stepwise.ToArray(), 1e-5f, 1e-5f, "cached logits");
    }

    [Fact]
    public void InvalidConfigNamesTheField()
    {
        var ex = Assert.Throws<ArgumentException>(() => new MoeTransformer(Tiny with { KvHeads = 3 }));
        Assert.Contains("KvHeads", ex.Message);
        ex = Assert.Throws<ArgumentException>(() => new MoeTransformer(Tiny with { DModel = 0 }));
        Assert.Contains("DModel", ex.Message);
    }
}
