using MoeSharp.Autograd;
using MoeSharp.Dispatch;
using MoeSharp.Experts;
using MoeSharp.Kernels;
using MoeSharp.Nn;
using MoeSharp.Tensors;

namespace MoeSharp.Tests.Dispatch;

/// <summary>
/// The grouped, sorted dispatch against a per-token loop written out in double precision (forward and every
/// gradient), on ragged assignments with dropped pairs and an expert that gets nothing.
/// </summary>
public class ExpertFfnTests
{
    private const int T = 37, D = 12, H = 20, E = 5;

    private static (ParameterArena, ExpertBank) Bank(ExpertActivation act, bool bias = false, SwiGluClamp? clamp = null)
    {
        var arena = new ParameterArena();
        var bank = new ExpertBank(arena, "experts", E, D, H, act, initStd: 0.3f, bias: bias, clamp: clamp);
        arena.Build(11);
        // Nonzero biases, so that a bias left out of the forward or the backward shows.
        if (bank.B1 is not null) Numerics.Random(bank.B1.Length, 21).CopyTo(bank.B1.Value.Span);
        if (bank.B3 is not null) Numerics.Random(bank.B3.Length, 22).CopyTo(bank.B3.Value.Span);
        if (bank.B2 is not null) Numerics.Random(bank.B2.Length, 23).CopyTo(bank.B2.Value.Span);
        return (arena, bank);
    }

    /// <summary>Up to 3 pairs per token; expert 4 never used; some pairs dropped (−1).</summary>
    private static Assignment Ragged()
    {
        var rng = new Rng(5);
        var offsets = new int[T + 1];
        var experts = new List<int>();
        for (int t = 0; t < T; t++)
        {
            int n = rng.NextInt(4);
            for (int i = 0; i < n; i++) experts.Add(rng.NextInt(6) == 0 ? -1 : rng.NextInt(E - 1));
            offsets[t + 1] = experts.Count;
        }
        return new Assignment(E, offsets, experts.ToArray());
    }

    /// <summary>
    /// The clamp limit 0.6 is small enough that about a third of gate and up values are clamped (asserted by the
    /// reference), so both sides of every kink are exercised.
    /// </summary>
    [Theory]
    [InlineData(ExpertActivation.SwiGlu, false, false)]
    [InlineData(ExpertActivation.Gelu, false, false)]
    [InlineData(ExpertActivation.SwiGlu, true, false)]
    [InlineData(ExpertActivation.Gelu, true, false)]
    [InlineData(ExpertActivation.SwiGlu, true, true)]
    [InlineData(ExpertActivation.SwiGlu, false, true)]
    public void GroupedDispatchEqualsPerTokenLoop(ExpertActivation act, bool bias, bool clamped)
    {
        var (arena, bank) = Bank(act, bias, clamped ? new SwiGluClamp(1.702f, 0.6f) : null);
        var a = Ragged();
        Assert.Equal(0, a.Load(E - 1));
        var x = Numerics.RandomTensor(1, 1, T, D);
        var w = Numerics.RandomTensor(2, 1, a.Pairs);
        var dy = Numerics.Random(T * D, 3);
        x.RequiresGrad = w.RequiresGrad = true;
        var tape = new Tape();
        var y = tape.ExpertFfn(x, a, w, bank);
        tape.Backward(y, dy);

        var r = Reference(x.Span, a, w.Span, bank, dy);
        Numerics.Close(r.Y, y.Span, 1e-5f, 1e-6f, "y");
        Numerics.Close(r.Dx, x.Grad!.Span, 1e-5f, 1e-6f, "dx");
        Numerics.Close(r.Dw, w.Grad!.Span, 1e-5f, 1e-6f, "dweights");
        Numerics.Close(r.DW1, bank.W1.Value.Grad!.Span, 1e-5f, 1e-6f, "dW1");
        Numerics.Close(r.DW2, bank.W2.Value.Grad!.Span, 1e-5f, 1e-6f, "dW2");
        if (bank.W3 is not null) Numerics.Close(r.DW3!, bank.W3.Value.Grad!.Span, 1e-5f, 1e-6f, "dW3");
        if (bank.B1 is not null) Numerics.Close(r.DB1, bank.B1.Value.Grad!.Span, 1e-5f, 1e-6f, "dB1");
        if (bank.B2 is not null) Numerics.Close(r.DB2, bank.B2.Value.Grad!.Span, 1e-5f, 1e-6f, "dB2");
        if (bank.B3 is not null) Numerics.Close(r.DB3, bank.B3.Value.Grad!.Span, 1e-5f, 1e-6f, "dB3");
        if (clamped) Assert.InRange(r.ClampedShare, 0.1, 0.9);
    }

    /// <summary>
    /// Central differences (ε 1e-3, rtol 2e-2, atol 2e-3, float32 forward) on x, the gate weights and every weight
    /// and bias of a biased bank with GPT-OSS's clamp (α 1.702, limit 7), inputs scaled so that some gate values pass
    /// the limit.
    /// </summary>
    [Fact]
    public void ClampedBiasedExpertsMatchFiniteDifferences()
    {
        var (arena, bank) = Bank(ExpertActivation.SwiGlu, bias: true, clamp: SwiGluClamp.GptOss);
        var a = Ragged();
        var x = Numerics.RandomTensor(1, 1, T, D);
        var xs = x.Span;
        for (int i = 0; i < xs.Length; i++) xs[i] *= 6f;
        var w = Numerics.RandomTensor(2, 1, a.Pairs);
        Tensor[] inputs = [x, w, bank.W1.Value, bank.W3!.Value, bank.W2.Value, bank.B1!.Value, bank.B3!.Value, bank.B2!.Value];
        Autograd.GradCheck.Run("ExpertFfn clamped", (tape, v) => tape.ExpertFfn(v[0], a, v[1], bank), inputs, 1e-3f, 2e-2f, 2e-3f);
    }

    [Fact]
    public void OneThreadEqualsTwoThreadsBitwise()
    {
        float[][] Run(int threads)
        {
            var limit = Workers.Limit(threads);
            try
            {
                var (arena, bank) = Bank(ExpertActivation.SwiGlu);
                var a = Ragged();
                var x = Numerics.RandomTensor(1, 1, T, D);
                var w = Numerics.RandomTensor(2, 1, a.Pairs);
                x.RequiresGrad = w.RequiresGrad = true;
                var tape = new Tape();
                var y = tape.ExpertFfn(x, a, w, bank);
                tape.Backward(y, Numerics.Random(T * D, 3));
                return [y.ToArray(), x.Grad!.ToArray(), w.Grad!.ToArray(), arena.Grads.ToArray()];
            }
            finally { limit.Dispose(); }
        }
        var one = Run(1);
        var two = Run(2);
        for (int i = 0; i < one.Length; i++) Numerics.BitwiseEqual(one[i], two[i], $"output {i}");
    }

    /// <summary>
    /// The weight gradients are cut into (expert, column block) items whose width depends on the thread count and
    /// the experts in use; every dW element is summed whole by one item, so any block gives the same bits. H = 300
    /// makes 128 three ragged items per expert and 512 one.
    /// </summary>
    [Fact]
    public void WeightGradientsDoNotDependOnColumnBlock()
    {
        const int h = 300;
        float[] Run(int block)
        {
            ExpertFfnOp.ColumnBlockOverride = block;
            try
            {
                var arena = new ParameterArena();
                var bank = new ExpertBank(arena, "experts", E, D, h, ExpertActivation.SwiGlu, initStd: 0.3f);
                arena.Build(11);
                var a = Ragged();
                var x = Numerics.RandomTensor(1, 1, T, D);
                var w = Numerics.RandomTensor(2, 1, a.Pairs);
                var tape = new Tape();
                var y = tape.ExpertFfn(x, a, w, bank);
                tape.Backward(y, Numerics.Random(T * D, 3));
                return arena.Grads.ToArray();
            }
            finally { ExpertFfnOp.ColumnBlockOverride = 0; }
        }
        var narrow = Run(128);
        Numerics.BitwiseEqual(narrow, Run(512), "dW with 512-column items vs 128");
        Numerics.BitwiseEqual(narrow, Run(0), "dW with the chosen block vs 128");
    }

    /// <summary>
    /// Lazy zeroing: garbage left in every gradient before ZeroGrad must not show. After one backward the expert
    /// weight gradients equal a fresh arena's bitwise (the written ones are overwritten, expert 4, which gets no
    /// rows, is cleared); a second forward and backward before the next ZeroGrad adds (twice the
    /// fresh gradient, rtol 1e-5 and atol 1e-6 as above: the bias sums add row by row into what is there, so they are
    /// not bitwise 2x); and a lazily zeroed gradient no backward reached reads 0
    /// through <see cref="ParameterArena.Grads"/>.
    /// </summary>
    [Fact]
    public void LazilyZeroedGradientsAreOverwrittenThenAccumulated()
    {
        var a = Ragged();
        var x = Numerics.RandomTensor(1, 1, T, D);
        var w = Numerics.RandomTensor(2, 1, a.Pairs);
        var dy = Numerics.Random(T * D, 3);
        float[] Grads(ParameterArena arena, ExpertBank bank, int backwards)
        {
            for (int i = 0; i < backwards; i++)
            {
                var tape = new Tape();
                tape.Backward(tape.ExpertFfn(x, a, w, bank), dy);
            }
            return arena.Grads.ToArray();
        }
        var (freshArena, freshBank) = Bank(ExpertActivation.SwiGlu, bias: true);
        var fresh = Grads(freshArena, freshBank, 1);

        var (arena, bank) = Bank(ExpertActivation.SwiGlu, bias: true);
        Numerics.Random(arena.Length, 99, 1e3f).CopyTo(arena.Grads, 0);
        arena.ZeroGrad();
        Numerics.BitwiseEqual(fresh, Grads(arena, bank, 1), "one backward after a lazy ZeroGrad");

        Numerics.Random(arena.Length, 98, 1e3f).CopyTo(arena.Grads, 0);
        arena.ZeroGrad();
        var twice = (float[])fresh.Clone();
        for (int i = 0; i < twice.Length; i++) twice[i] += fresh[i];
        Numerics.Close(twice, Grads(arena, bank, 2), 1e-5f, 1e-6f, "two backwards after a lazy ZeroGrad");

        Numerics.Random(arena.Length, 97, 1e3f).CopyTo(arena.Grads, 0);
        arena.ZeroGrad();
        Assert.True(bank.W1.GradStale);
        Assert.All(arena.Grads, g => Assert.Equal(0f, g));
        Assert.False(bank.W1.GradStale);
    }

    private sealed record Ref(float[] Y, float[] Dx, float[] Dw, float[] DW1, float[] DW2, float[]? DW3, float[] DB1, float[] DB2, float[] DB3, double ClampedShare);

    private static Ref Reference(ReadOnlySpan<float> x, Assignment a, ReadOnlySpan<float> w, ExpertBank bank, float[] dy)
    {
        bool swi = bank.Activation == ExpertActivation.SwiGlu;
        var w1 = bank.W1.Value.Span;
        var w2 = bank.W2.Value.Span;
        var w3 = swi ? bank.W3!.Value.Span : default;
        var b1 = bank.B1 is null ? new float[E * H] : bank.B1.Value.ToArray();
        var b3 = bank.B3 is null ? new float[E * H] : bank.B3.Value.ToArray();
        var b2 = bank.B2 is null ? new float[E * D] : bank.B2.Value.ToArray();
        double alpha = bank.Clamp?.Alpha ?? 1, limit = bank.Clamp?.Limit ?? double.PositiveInfinity, one = bank.Clamp is null ? 0 : 1;
        double[] db1 = new double[E * H], db3 = new double[E * H], db2 = new double[E * D];
        int clampedCount = 0, activations = 0;
        double[] y = new double[T * D], dx = new double[T * D], dw = new double[a.Pairs];
        double[] g1 = new double[E * H * D], g2 = new double[E * D * H], g3 = new double[E * H * D];
        for (int t = 0; t < T; t++)
            for (int p = a.TokenOffsets[t]; p < a.TokenOffsets[t + 1]; p++)
            {
                int e = a.PairExpert[p];
                if (e < 0) continue;
                var g = new double[H];
                var u = new double[H];
                var act = new double[H];
                for (int j = 0; j < H; j++)
                {
                    g[j] = b1[e * H + j];
                    u[j] = b3[e * H + j];
                    for (int i = 0; i < D; i++)
                    {
                        g[j] += w1[(e * H + j) * D + i] * x[t * D + i];
                        if (swi) u[j] += w3[(e * H + j) * D + i] * x[t * D + i];
                    }
                    activations += 2;
                    clampedCount += (g[j] > limit ? 1 : 0) + (Math.Abs(u[j]) > limit ? 1 : 0);
                    double gc = Math.Min(g[j], limit), uc = Math.Clamp(u[j], -limit, limit);
                    double s = 1 / (1 + Math.Exp(-alpha * gc));
                    double gelu = 0.5 * g[j] * (1 + Math.Tanh(Math.Sqrt(2 / Math.PI) * (g[j] + 0.044715 * g[j] * g[j] * g[j])));
                    act[j] = swi ? gc * s * (uc + one) : gelu;
                }
                var out_ = new double[D];
                for (int i = 0; i < D; i++)
                {
                    out_[i] = b2[e * D + i];
                    for (int j = 0; j < H; j++) out_[i] += w2[(e * D + i) * H + j] * act[j];
                }
                for (int i = 0; i < D; i++)
                {
                    y[t * D + i] += w[p] * out_[i];
                    dw[p] += dy[t * D + i] * out_[i];
                }
                // backward through the expert for upstream w·dy
                var dout = new double[D];
                for (int i = 0; i < D; i++)
                {
                    dout[i] = w[p] * dy[t * D + i];
                    db2[e * D + i] += dout[i];
                }
                var dact = new double[H];
                for (int i = 0; i < D; i++)
                    for (int j = 0; j < H; j++)
                    {
                        dact[j] += dout[i] * w2[(e * D + i) * H + j];
                        g2[(e * D + i) * H + j] += dout[i] * act[j];
                    }
                for (int j = 0; j < H; j++)
                {
                    double gc = Math.Min(g[j], limit), uc = Math.Clamp(u[j], -limit, limit);
                    double s = 1 / (1 + Math.Exp(-alpha * gc));
                    double dg, du = 0;
                    if (swi)
                    {
                        dg = g[j] < limit ? dact[j] * (uc + one) * s * (1 + alpha * gc * (1 - s)) : 0;
                        du = Math.Abs(u[j]) < limit ? dact[j] * gc * s : 0;
                    }
                    else
                    {
                        double c = Math.Sqrt(2 / Math.PI), th = Math.Tanh(c * (g[j] + 0.044715 * g[j] * g[j] * g[j]));
                        dg = dact[j] * (0.5 * (1 + th) + 0.5 * g[j] * (1 - th * th) * c * (1 + 3 * 0.044715 * g[j] * g[j]));
                    }
                    db1[e * H + j] += dg;
                    db3[e * H + j] += du;
                    for (int i = 0; i < D; i++)
                    {
                        dx[t * D + i] += dg * w1[(e * H + j) * D + i] + (swi ? du * w3[(e * H + j) * D + i] : 0);
                        g1[(e * H + j) * D + i] += dg * x[t * D + i];
                        if (swi) g3[(e * H + j) * D + i] += du * x[t * D + i];
                    }
                }
            }
        static float[] F(double[] v) => v.Select(z => (float)z).ToArray();
        return new Ref(F(y), F(dx), F(dw), F(g1), F(g2), swi ? F(g3) : null, F(db1), F(db2), F(db3), (double)clampedCount / Math.Max(1, activations));
    }
}
