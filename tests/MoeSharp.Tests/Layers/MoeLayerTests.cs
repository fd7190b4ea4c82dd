using MoeSharp.Autograd;
using MoeSharp.Experts;
using MoeSharp.Kernels;
using MoeSharp.Layers;
using MoeSharp.Nn;
using MoeSharp.Routing;
using MoeSharp.Tensors;
using MoeSharp.Tests.Autograd;

namespace MoeSharp.Tests.Layers;

public class MoeLayerTests
{
    private static (ParameterArena Arena, MoeLayer Layer) Make(MoeOptions o, ulong seed = 3)
    {
        var arena = new ParameterArena();
        var layer = new MoeLayer(o, arena, "moe");
        arena.Build(seed);
        return (arena, layer);
    }

    private static MoeOptions Small(RouterKind router = RouterKind.SoftmaxTopK) => new()
    {
        Dim = 10, Experts = 4, TopK = router is RouterKind.Switch or RouterKind.Hash ? 1 : router == RouterKind.Dense ? 4 : 2,
        ExpertHidden = 14, Router = router, InitStd = 0.4f, Groups = router == RouterKind.SigmoidBias ? 2 : 1,
        TopGroups = router == RouterKind.SigmoidBias ? 2 : 1, SlotsPerExpert = 2,
    };

    [Fact]
    public void SoftMoeIgnoresPaddingTokens()
    {
        var (_, layer) = Make(Small(RouterKind.Soft));
        var x = Numerics.RandomTensor(11, 1, 9, 10);
        bool[] mask = [true, false, true, true, false, false, true, true, false];
        int[] real = Enumerable.Range(0, 9).Where(t => mask[t]).ToArray();
        var tape = new Tape();
        MoeResult masked, alone;
        using (tape.NoGrad()) masked = layer.Forward(tape, x, new RoutingContext { Mask = mask });
        var onlyReal = new Tensor(real.Length, 10); // the real tokens with the padding removed
        for (int i = 0; i < real.Length; i++) x.Span.Slice(real[i] * 10, 10).CopyTo(onlyReal.Span.Slice(i * 10, 10));
        var second = new Tape();
        using (second.NoGrad()) alone = layer.Forward(second, onlyReal);
        // Padding gets exactly zero dispatch weight, so the slots see the same inputs; fp32 summation order aside.
        for (int i = 0; i < real.Length; i++)
            Numerics.Close(alone.Output.Span.Slice(i * 10, 10), masked.Output.Span.Slice(real[i] * 10, 10), 1e-5f, 1e-6f, $"token {real[i]}");
        Assert.Equal(real.Length, masked.Stats.Tokens);
        Assert.Equal(alone.Stats.TokensPerExpert, masked.Stats.TokensPerExpert);
        Assert.Equal(alone.AuxLosses["z_loss"][0], masked.AuxLosses["z_loss"][0], 1e-6f);
        Assert.Contains("every token is masked", Assert.Throws<ArgumentException>(() => layer.Forward(new Tape(), x, new RoutingContext { Mask = new bool[9] })).Message);
    }

    [Fact]
    public void OneExpertTopOneEqualsTheDenseMlp()
    {
        var (arena, layer) = Make(Small() with { Experts = 1, TopK = 1 });
        var dense = new ParameterArena();
        var mlp = new Mlp(dense, "mlp", 10, 14, MlpKind.SwiGlu);
        dense.Build(0);
        layer.Bank.W1.Value.Span.CopyTo(mlp.Gate!.Weight.Value.Span);
        layer.Bank.W3!.Value.Span.CopyTo(mlp.Up.Weight.Value.Span);
        layer.Bank.W2.Value.Span.CopyTo(mlp.Down.Weight.Value.Span);
        var x = Numerics.RandomTensor(1, 1, 9, 10);
        var tape = new Tape();
        // One expert: softmax over one logit is 1, so the gate weight is exactly 1.
        Numerics.Close(mlp.Forward(tape, x).Span, layer.Forward(tape, x).Output.Span, 1e-6f, 1e-7f, "E=1,K=1 vs MLP");
    }

    [Fact]
    public void CapacityAboveTheMaximumLoadEqualsDropless()
    {
        var x = Numerics.RandomTensor(1, 1, 40, 10);
        var (_, dropless) = Make(Small());
        var (_, capped) = Make(Small() with { CapacityFactor = 4f }); // capacity = T·K = every pair fits
        var tape = new Tape();
        var a = dropless.Forward(tape, x);
        var b = capped.Forward(tape, x);
        Assert.Equal(0, b.Stats.Dropped);
        Numerics.BitwiseEqual(a.Output.Span, b.Output.Span, "capacity vs dropless");
    }

    [Theory]
    [InlineData(DropPolicy.Position)]
    [InlineData(DropPolicy.Probability)]
    public void TightCapacityDropsAndCountsPairs(DropPolicy policy)
    {
        var (_, layer) = Make(Small() with { CapacityFactor = 0.5f, DropPolicy = policy });
        var r = layer.Forward(new Tape(), Numerics.RandomTensor(1, 1, 40, 10));
        // Capacity ⌈0.5·80/4⌉ = 10 per expert: at most 40 of the 80 pairs survive.
        Assert.True(r.Stats.Dropped >= 40, $"dropped {r.Stats.Dropped}");
    }

    [Fact]
    public void WholeLayerOneThreadEqualsTwoThreadsBitwise()
    {
        float[] Run(int threads)
        {
            var limit = Workers.Limit(threads);
            try
            {
                var (arena, layer) = Make(Small() with { SharedExperts = 1, SharedGate = true });
                var x = Numerics.RandomTensor(1, 1, 64, 10);
                x.RequiresGrad = true;
                var tape = new Tape();
                var r = layer.Forward(tape, x);
                tape.Backward(tape.Add(tape.WeightedSum(r.Output, Numerics.Random(640, 2)), r.AuxLoss!));
                return [.. r.Output.ToArray(), .. x.Grad!.ToArray(), .. arena.Grads];
            }
            finally { limit.Dispose(); }
        }
        Numerics.BitwiseEqual(Run(1), Run(2), "layer 1 vs 2 threads");
    }

    public static TheoryData<RouterKind> GradientRouters() =>
    [
        RouterKind.SoftmaxTopK, RouterKind.TopKSoftmax, RouterKind.SigmoidBias, RouterKind.Switch, RouterKind.NoisyTopK,
        RouterKind.ExpertChoice, RouterKind.Sinkhorn, RouterKind.Dense, RouterKind.Soft,
    ];

    /// <summary>
    /// Central differences (ε = 1e-3, loss summed in double) against the tape for x and every parameter, through
    /// routing, dispatch, experts, shared expert and all weighted balance terms. Selection is locally constant, so
    /// small steps do not cross a routing boundary for these random inputs; tolerance 2e-3 relative + 2e-4.
    /// </summary>
    [Theory]
    [MemberData(nameof(GradientRouters))]
    public void FiniteDifferencesThroughTheLayer(RouterKind router)
    {
        var o = Small(router) with
        {
            LoadBalanceCoef = 0.1f, ZLossCoef = 0.05f, ImportanceCoef = 0.1f, LoadCoef = 0.1f, SequenceBalanceCoef = 0.1f,
            SharedExperts = router == RouterKind.SoftmaxTopK ? 1 : 0, SharedGate = router == RouterKind.SoftmaxTopK,
            RoutedScaling = router == RouterKind.SigmoidBias ? 2.5f : 1f,
        };
        var (arena, layer) = Make(o, seed: 7);
        var x = Numerics.RandomTensor(4, 1, 12, 10);
        var g = Numerics.Random(120, 5);
        var context = new RoutingContext { Sequences = 2 };
        double Loss()
        {
            var tape = new Tape();
            using (tape.NoGrad())
            {
                var r = layer.Forward(tape, x, context);
                double l = 0;
                for (int i = 0; i < g.Length; i++) l += (double)r.Output[i] * g[i];
                return l + (r.AuxLoss?[0] ?? 0);
            }
        }
        x.RequiresGrad = true;
        var tape = new Tape();
        var res = layer.Forward(tape, x, context);
        var total = res.AuxLoss is null ? tape.WeightedSum(res.Output, g) : tape.Add(tape.WeightedSum(res.Output, g), res.AuxLoss);
        tape.Backward(total);
        var rng = new Rng(9);
        void Check(Span<float> values, ReadOnlySpan<float> grads, string what, int samples)
        {
            for (int s = 0; s < samples; s++)
            {
                int i = rng.NextInt(values.Length);
                double numeric = GradCheck.Central(values, i, 1e-3f, () => Loss()), analytic = grads[i];
                Assert.True(Math.Abs(analytic - numeric) <= 2e-4 + 2e-3 * Math.Max(Math.Abs(analytic), Math.Abs(numeric)),
                    $"{router} {what}[{i}]: analytic {analytic:G6} vs numeric {numeric:G6}");
            }
        }
        Check(x.Span, x.Grad!.Span, "x", 12);
        foreach (var p in arena.Parameters.Where(p => p.Trainable))
            Check(p.Value.Span, p.Value.Grad!.Span, p.Name, 6);
    }

    [Fact]
    public void InvalidOptionsNameTheField()
    {
        void Bad(MoeOptions o, string field) =>
            Assert.Contains(field, Assert.Throws<ArgumentException>(() => new MoeLayer(o, new ParameterArena(), "m")).Message);
        Bad(Small() with { TopK = 5 }, "TopK");
        Bad(Small() with { CapacityFactor = -1 }, "CapacityFactor");
        Bad(Small() with { Router = (RouterKind)99 }, "Router");
        Bad(Small() with { Dim = 0 }, "Dim");
        Bad(Small() with { Groups = 3 }, "Groups");
        Bad(Small(RouterKind.TopKSoftmax) with { Groups = 2 }, "Groups: groups limit the SoftmaxTopK and SigmoidBias routers only, not TopKSoftmax");
        Bad(Small(RouterKind.Switch) with { RoutedScaling = 2 }, "RoutedScaling: scales the SoftmaxTopK and SigmoidBias routers' weights only, not Switch's");
        Bad(Small() with { BiasUpdateRate = 0.1f }, "BiasUpdateRate");
        var (_, layer) = Make(Small());
        var ex = Assert.Throws<ArgumentException>(() => layer.Forward(new Tape(), new Tensor(3, 7)));
        Assert.Contains("[3,7]", ex.Message);
    }

    [Fact]
    public void HashRoutingNeedsTokenIdsAndIsDeterministic()
    {
        var (_, layer) = Make(Small(RouterKind.Hash));
        var x = Numerics.RandomTensor(1, 1, 6, 10);
        Assert.Throws<ArgumentException>(() => layer.Forward(new Tape(), x));
        var ids = new[] { 5, 9, 5, 0, 1, 9 };
        var a = layer.Forward(new Tape(), x, new RoutingContext { TokenIds = ids }).Stats;
        var b = layer.Forward(new Tape(), x, new RoutingContext { TokenIds = ids }).Stats;
        Assert.Equal(a.TokensPerExpert, b.TokensPerExpert);
        Assert.Equal(6, a.TokensPerExpert.Sum());
    }

    [Fact]
    public void StatsRoundTripThroughJson()
    {
        var (_, layer) = Make(Small());
        var stats = layer.Forward(new Tape(), Numerics.RandomTensor(1, 1, 20, 10)).Stats;
        var back = MoeSharp.Routing.RoutingStats.FromJson(stats.ToJson());
        Assert.Equal(stats.TokensPerExpert, back.TokensPerExpert);
        Assert.Equal(stats.CoActivation, back.CoActivation);
        Assert.Equal(stats.Entropy, back.Entropy);
        Assert.Contains("tokens_per_expert", stats.ToJson());
        Assert.Equal(40, stats.TokensPerExpert.Sum()); // 20 tokens × K = 2
        // Co-activation diagonal is each expert's load.
        for (int e = 0; e < 4; e++) Assert.Equal(stats.TokensPerExpert[e], stats.CoActivation[e * 4 + e]);
    }
}
