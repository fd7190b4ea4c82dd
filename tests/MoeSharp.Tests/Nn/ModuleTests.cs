using MoeSharp.Models;
using MoeSharp.Autograd;
using MoeSharp.Kernels;
using MoeSharp.Nn;
using MoeSharp.Tensors;

namespace MoeSharp.Tests.Nn;

public class ModuleTests
{
    private static ModelConfig Tiny => new() { Vocab = 23, DModel = 16, Layers = 2, Heads = 4, KvHeads = 2, DFF = 24, Context = 12 };

    [Fact]
    public void LinearEqualsXWTransposedPlusBiasFromTheTwin()
    {
        var arena = new ParameterArena();
        var linear = new Linear(arena, "fc", 7, 5, bias: true);
        arena.Build(3);
        linear.Bias!.Value.Span.Fill(0.25f);
        var x = Numerics.RandomTensor(1, 1, 4, 7);
        var y = linear.Forward(new Tape(), x);
        var twin = new float[4 * 5];
        Gemm.MultiplyReference(x.Span, linear.Weight.Value.Span, twin, 4, 5, 7, transB: true);
        for (int i = 0; i < twin.Length; i++) twin[i] += 0.25f;
        Numerics.Close(twin, y.Span, 1e-6f, 1e-6f, "linear");
    }

    [Fact]
    public void ArenaViewsShareTheFlatBuffers()
    {
        var arena = new ParameterArena();
        var a = arena.Add("a", [2, 3], Init.Ones);
        var b = arena.Add("b", [4], Init.Constant(2));
        arena.Build(0);
        Assert.Equal(10, arena.Length);
        Assert.Equal([1f, 1, 1, 1, 1, 1, 2, 2, 2, 2], arena.Values);
        b.Value.Grad![1] = 5;
        Assert.Equal(5f, arena.Grads[7]);
        Assert.Throws<InvalidOperationException>(() => arena.Add("c", [1], Init.Zeros));
        Assert.Same(a, arena["a"]);
    }

    [Fact]
    public void DuplicateParameterNameIsAnError()
    {
        var arena = new ParameterArena();
        arena.Add("w", [1], Init.Zeros);
        var ex = Assert.Throws<ArgumentException>(() => arena.Add("w", [2], Init.Zeros));
        Assert.Contains("'w'", ex.Message);
    }

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

    [Fact]
    public void ShapeMismatchNamesBothShapes()
    {
        var ex = Assert.Throws<ArgumentException>(() => new Tape().Add(new Tensor(2, 3), new Tensor(3, 2)));
        Assert.Contains("[2,3]", ex.Message);
        Assert.Contains("[3,2]", ex.Message);
        ex = Assert.Throws<ArgumentException>(() => new Tape().Linear(new Tensor(2, 3), new Tensor(4, 5)));
        Assert.Contains("[4,5]", ex.Message);
    }
}
