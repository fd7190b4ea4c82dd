using MoeSharp.Kernels;
using MoeSharp.Nn;
using MoeSharp.Training;

namespace MoeSharp.Tests.Nn;

public class OptimizerTests
{
    private static (ParameterArena Arena, Parameter W, Parameter B) Make(float w0 = 1f, float b0 = -2f)
    {
        var arena = new ParameterArena();
        var w = arena.Add("w", [1, 1], Init.Constant(w0));
        var b = arena.Add("b", [1], Init.Constant(b0));
        arena.Build(0);
        return (arena, w, b);
    }

    [Fact]
    public void AdamWFirstStepMovesByLearningRateTimesSign()
    {
        // Step 1: m̂ = g, v̂ = g², so the update is lr·g/(|g| + ε) ≈ lr·sign(g), after decay p·(1 − lr·λ).
        var (arena, w, b) = Make();
        arena.Grads[0] = 0.5f;
        arena.Grads[1] = -3f;
        new AdamW(arena, weightDecay: 0.1f).Step(0.01f);
        Assert.Equal(1f * (1 - 0.001f) - 0.01f * 0.5f / (0.5f + 1e-8f), w.Value[0], 6);
        Assert.Equal(-2f + 0.01f, b.Value[0], 6); // rank-1: not decayed by default
    }

    [Fact]
    public void AdamWSecondStepMatchesHandDerivation()
    {
        // g₁ = 1, g₂ = −1, β₁ = 0.9, β₂ = 0.999, no decay:
        // m₂ = 0.9·0.1 − 0.1 = −0.01, v₂ = 0.999·0.001 + 0.001 = 0.001999;
        // m̂ = −0.01/0.19, v̂ = 0.001999/0.001999 = 1 → Δ = −lr·m̂/(1 + ε).
        var (arena, w, _) = Make(0f);
        var opt = new AdamW(arena, weightDecay: 0f);
        arena.Grads[0] = 1f;
        opt.Step(0.1f);
        float after1 = w.Value[0];
        Assert.Equal(-0.1f, after1, 6);
        arena.Grads[0] = -1f;
        opt.Step(0.1f);
        Assert.Equal(after1 + 0.1f * (0.01f / 0.19f) / (1f + 1e-8f), w.Value[0], 6);
    }

    /// <summary>
    /// AdamW over an arena whose matrix spans several work items (30,000 elements against items of 16,384), beside a
    /// decay-free vector and a frozen matrix, for three steps: one and two threads agree bitwise, and both follow a
    /// double-precision scalar reference of PyTorch's formula within 1e-5 relative + 1e-7 absolute (float32 roundings).
    /// </summary>
    [Fact]
    public void AdamWIsThreadCountInvariantAndFollowsTheFormula()
    {
        ParameterArena Build()
        {
            var arena = new ParameterArena();
            arena.Add("w", [300, 100], Init.Normal(0.5f));
            arena.Add("b", [77], Init.Normal(0.5f));
            var frozen = arena.Add("frozen", [10, 10], Init.Normal(0.5f));
            arena.Build(3);
            frozen.Trainable = false;
            return arena;
        }
        float[] Run(int threads)
        {
            using var limit = Parallelism.Limit(threads);
            var arena = Build();
            var opt = new AdamW(arena, weightDecay: 0.1f);
            for (int step = 0; step < 3; step++)
            {
                Numerics.Random(arena.Length, (ulong)step + 10).CopyTo(arena.Grads, 0);
                opt.Step(0.01f);
            }
            return arena.Values;
        }
        var one = Run(1);
        Numerics.BitwiseEqual(one, Run(2), "1 vs 2 threads");
        var start = Build();
        var expected = new double[start.Length];
        var m = new double[start.Length];
        var v = new double[start.Length];
        for (int i = 0; i < expected.Length; i++) expected[i] = start.Values[i];
        for (int step = 0; step < 3; step++)
        {
            var g = Numerics.Random(start.Length, (ulong)step + 10);
            double bc1 = 1 - Math.Pow(0.9, step + 1), bc2 = 1 - Math.Pow(0.999, step + 1);
            foreach (var p in start.Parameters)
            {
                if (!p.Trainable) continue;
                double keep = p.Shape.Length >= 2 ? 1 - 0.01 * 0.1 : 1;
                for (int i = p.Offset; i < p.Offset + p.Length; i++)
                {
                    m[i] = 0.9 * m[i] + 0.1 * g[i];
                    v[i] = 0.999 * v[i] + 0.001 * g[i] * g[i];
                    expected[i] = expected[i] * keep - 0.01 / bc1 * m[i] / (Math.Sqrt(v[i] / bc2) + 1e-8);
                }
            }
        }
        for (int i = 0; i < one.Length; i++)
            Assert.True(Math.Abs(one[i] - expected[i]) <= 1e-5 * Math.Abs(expected[i]) + 1e-7, $"element {i}: {one[i]} vs {expected[i]}");
    }

    [Fact]
    public void SgdMomentumMatchesHandDerivation()
    {
        // b₁ = g₁ = 2 → p = 1 − 0.1·2 = 0.8; b₂ = 0.9·2 + 1 = 2.8 → p = 0.8 − 0.28 = 0.52.
        var (arena, w, _) = Make();
        var opt = new Sgd(arena, momentum: 0.9f);
        arena.Grads[0] = 2f;
        opt.Step(0.1f);
        Assert.Equal(0.8f, w.Value[0], 6);
        arena.Grads[0] = 1f;
        opt.Step(0.1f);
        Assert.Equal(0.52f, w.Value[0], 6);
    }

    [Fact]
    public void FrozenParametersDoNotMove()
    {
        var (arena, w, b) = Make();
        w.Trainable = false;
        arena.Grads[0] = arena.Grads[1] = 1f;
        new AdamW(arena).Step(0.1f);
        Assert.Equal(1f, w.Value[0]);
        Assert.NotEqual(-2f, b.Value[0]);
    }

    [Fact]
    public void CosineScheduleWarmsUpThenDecays()
    {
        var s = new CosineSchedule(1f, 10, 110, 0.1f);
        Assert.Equal(0.1f, s.At(0), 6);   // (0 + 1)/10
        Assert.Equal(1f, s.At(9), 6);
        Assert.Equal(1f, s.At(10), 6);
        Assert.Equal(0.55f, s.At(60), 6); // halfway: min + ½(peak − min)
        Assert.Equal(0.1f, s.At(110), 6);
    }

    [Fact]
    public void ClippingScalesToTheMaximumNorm()
    {
        var (arena, _, _) = Make();
        arena.Grads[0] = 3f;
        arena.Grads[1] = 4f;
        float norm = GradientClipping.ClipGlobalNorm(arena, 1f);
        Assert.Equal(5f, norm, 6);
        Assert.Equal(0.6f, arena.Grads[0], 5);
        Assert.Equal(0.8f, arena.Grads[1], 5);
    }
}
