using System.Runtime.InteropServices;
using MoeSharp.Autograd;
using MoeSharp.Experts;
using MoeSharp.Formats;
using MoeSharp.IO;
using MoeSharp.Layers;
using MoeSharp.Models;
using MoeSharp.Nn;
using MoeSharp.Routing;
using MoeSharp.Tensors;
using MoeSharp.Tests.IO;

namespace MoeSharp.Tests.Dispatch;

/// <summary>
/// The expert-runner seam (<see cref="ExpertBank.Runner"/>): the local runner reproduces the fused paths bit for bit
/// (fp32 arena with and without biases, clamps and capacity, stored weights in place and quantized), and a runner that
/// leaves experts unanswered gets the renormalised combine of a per-token loop in double precision.
/// </summary>
public sealed class RunnerExpertFfnTests : TempFolderTest
{
    private const int D = 16, H = 24, E = 4;

    private static MoeLayer Layer(ExpertActivation act, bool bias, bool clamp, float capacity)
    {
        var arena = new ParameterArena();
        var layer = new MoeLayer(new MoeOptions
        {
            Dim = D, Experts = E, TopK = 2, ExpertHidden = H, Activation = act, ExpertBias = bias, InitStd = 0.3f,
            SwiGluClamp = clamp ? new SwiGluClamp(1.702f, 0.6f) : null, CapacityFactor = capacity, SharedExperts = 1,
        }, arena, "moe");
        arena.Build(3);
        foreach (var b in new[] { layer.Bank.B1, layer.Bank.B3, layer.Bank.B2 })
            if (b is not null) Numerics.Random(b.Length, 31).CopyTo(b.Value.Span);
        return layer;
    }

    private static (float[] Y, RoutingStats Stats) Run(MoeLayer layer, Tensor x)
    {
        var tape = new Tape();
        using (tape.NoGrad())
        {
            var r = layer.Forward(tape, x);
            return (r.Output.ToArray(), r.Stats);
        }
    }

    /// <summary>
    /// 1200 tokens × top-2 over 4 experts put about 600 rows on each expert, so the fp32 path cuts it in two blocks;
    /// the local runner must cut it the same way. Tolerance 0: bitwise. Capacity 0.5 drops pairs, which both skip.
    /// </summary>
    [Theory]
    [InlineData(ExpertActivation.SwiGlu, false, false, 0f)]
    [InlineData(ExpertActivation.Gelu, false, false, 0f)]
    [InlineData(ExpertActivation.SwiGlu, true, true, 0f)]
    [InlineData(ExpertActivation.Gelu, true, false, 0.5f)]
    public void LocalRunnerEqualsTheFusedArenaPathBitwise(ExpertActivation act, bool bias, bool clamp, float capacity)
    {
        var layer = Layer(act, bias, clamp, capacity);
        var x = Numerics.RandomTensor(7, 1f, 1200, D); // [T,D]
        var (expected, stats) = Run(layer, x);
        Assert.Contains(stats.TokensPerExpert, c => c > 512 || capacity > 0);
        layer.Bank.Runner = LocalExpertRunner.Instance;
        var (actual, runnerStats) = Run(layer, x);
        Numerics.BitwiseEqual(expected, actual, "y");
        Assert.Equal(0, runnerStats.Degraded);
        Assert.Equal(stats.Dropped, runnerStats.Dropped);
        if (capacity > 0) Assert.True(stats.Dropped > 0, "capacity 0.5 should drop pairs");
    }

    /// <summary>
    /// The tiny Mixtral of <see cref="StoredWeightsTests"/> in place (F32 safetensors) and quantized (Q8_0): the prompt's
    /// logits (MatMul per expert) and 4 greedy decode steps (MatVec) through the KV cache, bitwise equal with the local runner.
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void LocalRunnerEqualsTheStoredPathBitwise(bool quantized)
    {
        string folder = StoredWeightsTests.WriteMixtral(Path.Combine(Folder, "hf"));
        var options = new ModelLoadOptions { InPlace = true, Quantize = quantized ? WeightFormat.Q8_0 : null };
        using var model = ModelStore.Open(folder, options);
        Assert.True(model.MoeLayers[0].Bank.IsStored);
        var expected = Decode(model);
        foreach (var moe in model.MoeLayers) moe.Bank.Runner = LocalExpertRunner.Instance;
        var actual = Decode(model);
        for (int s = 0; s < expected.Count; s++)
            Assert.True(MemoryMarshal.AsBytes(expected[s].AsSpan()).SequenceEqual(MemoryMarshal.AsBytes(actual[s].AsSpan())), $"step {s}: logits differ");
    }

    private static List<float[]> Decode(MoeTransformer model)
    {
        var tape = new Tape();
        var kv = model.NewCache();
        var all = new List<float[]>();
        int[] ids = [3, 14, 15, 92, 65, 35, 89, 79];
        using (tape.NoGrad())
            for (int step = 0; step < 5; step++)
            {
                var logits = model.Forward(tape, ids, kv).Logits.Span.ToArray();
                all.Add(logits);
                ids = [System.Numerics.Tensors.TensorPrimitives.IndexOfMax(logits.AsSpan(logits.Length - model.Config.Vocab))];
                tape.Reset();
            }
        return all;
    }

    /// <summary>Runs locally, then withholds some experts, writing NaN into their rows to show that the combine never reads them.</summary>
    private sealed class Withholding(params int[] silent) : IExpertRunner
    {
        public void Run(ExpertBank bank, ReadOnlySpan<float> xs, ReadOnlySpan<int> expertOffsets, Span<float> ys, Span<bool> answered)
        {
            LocalExpertRunner.Instance.Run(bank, xs, expertOffsets, ys, answered);
            foreach (int e in silent)
            {
                answered[e] = false;
                ys[(expertOffsets[e] * bank.Dim)..(expertOffsets[e + 1] * bank.Dim)].Fill(float.NaN);
            }
        }
    }

    /// <summary>
    /// Experts 0 and 1 withheld: each token's output is Σ over its answered pairs of w·(Σ w / Σ answered w)·expert(x),
    /// 0 when both its experts were withheld, plus the shared expert, against a per-token loop in double precision
    /// (rtol 1e-5, atol 1e-6, as the fused op's own reference test); the degraded count is the tokens that lost a pair.
    /// </summary>
    [Fact]
    public void WithheldExpertsRenormaliseTheGateAndCountDegradedTokens()
    {
        const int t = 64;
        var layer = Layer(ExpertActivation.SwiGlu, false, false, 0);
        var x = Numerics.RandomTensor(9, 1f, t, D); // [T,D]
        var tape = new Tape();
        float[] shared;
        RouterOutput routing;
        using (tape.NoGrad())
        {
            routing = layer.Forward(tape, x).Routing!;
            shared = layer.Shared!.Forward(tape, x).ToArray();
        }
        layer.Bank.Runner = new Withholding(0, 1);
        var (actual, stats) = Run(layer, x);

        var bank = layer.Bank;
        var expected = new float[t * D];
        int degraded = 0, empty = 0;
        var xv = x.Span;
        for (int token = 0; token < t; token++)
        {
            double placed = 0, kept = 0;
            for (int p = routing.TokenOffsets[token]; p < routing.TokenOffsets[token + 1]; p++)
            {
                placed += routing.Weights.Span[p];
                if (routing.PairExpert[p] >= 2) kept += routing.Weights.Span[p];
            }
            if (kept < placed) degraded++;
            if (kept == 0) empty++;
            var y = new double[D];
            for (int p = routing.TokenOffsets[token]; p < routing.TokenOffsets[token + 1]; p++)
            {
                int e = routing.PairExpert[p];
                if (e < 2) continue;
                double w = routing.Weights.Span[p] * placed / kept;
                var f = Expert(bank, e, xv.Slice(token * D, D));
                for (int i = 0; i < D; i++) y[i] += w * f[i];
            }
            for (int i = 0; i < D; i++) expected[token * D + i] = (float)(y[i] + shared[token * D + i]);
        }
        Numerics.Close(expected, actual, 1e-5f, 1e-6f, "renormalised y");
        Assert.Equal(degraded, stats.Degraded);
        Assert.InRange(degraded, 1, t - 1);
        Assert.True(empty > 0, "some token should have lost both its experts");
    }

    /// <summary>w2(silu(w1·x) ⊙ w3·x) of expert <paramref name="e"/> in double precision.</summary>
    private static double[] Expert(ExpertBank bank, int e, ReadOnlySpan<float> x)
    {
        var w1 = bank.W1.Value.Span;
        var w3 = bank.W3!.Value.Span;
        var w2 = bank.W2.Value.Span;
        var act = new double[H];
        for (int j = 0; j < H; j++)
        {
            double g = 0, u = 0;
            for (int i = 0; i < D; i++)
            {
                g += (double)w1[(e * H + j) * D + i] * x[i];
                u += (double)w3[(e * H + j) * D + i] * x[i];
            }
            act[j] = g / (1 + Math.Exp(-g)) * u;
        }
        var y = new double[D];
        for (int i = 0; i < D; i++)
            for (int j = 0; j < H; j++) y[i] += (double)w2[(e * D + i) * H + j] * act[j];
        return y;
    }

    [Fact]
    public void RecordingGradientsThroughARunnerIsOneClearError()
    {
        var layer = Layer(ExpertActivation.SwiGlu, false, false, 0);
        layer.Bank.Runner = LocalExpertRunner.Instance;
        var x = Numerics.RandomTensor(9, 1f, 8, D);
        x.RequiresGrad = true;
        var ex = Assert.Throws<InvalidOperationException>(() => layer.Forward(new Tape(), x));
        Assert.Contains("inference only", ex.Message, StringComparison.Ordinal);
        Assert.Contains("moe.experts", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void TheDegradedCountIsInTheJsonOnlyWhenNonZero()
    {
        Assert.DoesNotContain("degraded", new RoutingStats { Layer = "l" }.ToJson(), StringComparison.Ordinal);
        var json = new RoutingStats { Layer = "l", Degraded = 3 }.ToJson();
        Assert.Contains("\"degraded\":3", json, StringComparison.Ordinal);
        Assert.Equal(3, RoutingStats.FromJson(json).Degraded);
    }
}
