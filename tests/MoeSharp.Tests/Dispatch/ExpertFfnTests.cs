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

    private static (ParameterArena, ExpertBank) Bank(ExpertActivation act)
    {
        var arena = new ParameterArena();
        var bank = new ExpertBank(arena, "experts", E, D, H, act, initStd: 0.3f);
        arena.Build(11);
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

    [Theory]
    [InlineData(ExpertActivation.SwiGlu)]
    [InlineData(ExpertActivation.Gelu)]
    public void GroupedDispatchEqualsPerTokenLoop(ExpertActivation act)
    {
        var (arena, bank) = Bank(act);
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

    private sealed record Ref(float[] Y, float[] Dx, float[] Dw, float[] DW1, float[] DW2, float[]? DW3);

    private static Ref Reference(ReadOnlySpan<float> x, Assignment a, ReadOnlySpan<float> w, ExpertBank bank, float[] dy)
    {
        bool swi = bank.Activation == ExpertActivation.SwiGlu;
        var w1 = bank.W1.Value.Span;
        var w2 = bank.W2.Value.Span;
        var w3 = swi ? bank.W3!.Value.Span : default;
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
                    for (int i = 0; i < D; i++)
                    {
                        g[j] += w1[(e * H + j) * D + i] * x[t * D + i];
                        if (swi) u[j] += w3[(e * H + j) * D + i] * x[t * D + i];
                    }
                    double s = 1 / (1 + Math.Exp(-g[j]));
                    double gelu = 0.5 * g[j] * (1 + Math.Tanh(Math.Sqrt(2 / Math.PI) * (g[j] + 0.044715 * g[j] * g[j] * g[j])));
                    act[j] = swi ? g[j] * s * u[j] : gelu;
                }
                var out_ = new double[D];
                for (int i = 0; i < D; i++)
                    for (int j = 0; j < H; j++) out_[i] += w2[(e * D + i) * H + j] * act[j];
                for (int i = 0; i < D; i++)
                {
                    y[t * D + i] += w[p] * out_[i];
                    dw[p] += dy[t * D + i] * out_[i];
                }
                // backward through the expert for upstream w·dy
                var dout = new double[D];
                for (int i = 0; i < D; i++) dout[i] = w[p] * dy[t * D + i];
                var dact = new double[H];
                for (int i = 0; i < D; i++)
                    for (int j = 0; j < H; j++)
                    {
                        dact[j] += dout[i] * w2[(e * D + i) * H + j];
                        g2[(e * D + i) * H + j] += dout[i] * act[j];
                    }
                for (int j = 0; j < H; j++)
                {
                    double s = 1 / (1 + Math.Exp(-g[j]));
                    double dg, du = 0;
                    if (swi)
                    {
                        dg = dact[j] * u[j] * s * (1 + g[j] * (1 - s));
                        du = dact[j] * g[j] * s;
                    }
                    else
                    {
                        double c = Math.Sqrt(2 / Math.PI), th = Math.Tanh(c * (g[j] + 0.044715 * g[j] * g[j] * g[j]));
                        dg = dact[j] * (0.5 * (1 + th) + 0.5 * g[j] * (1 - th * th) * c * (1 + 3 * 0.044715 * g[j] * g[j]));
                    }
                    for (int i = 0; i < D; i++)
                    {
                        dx[t * D + i] += dg * w1[(e * H + j) * D + i] + (swi ? du * w3[(e * H + j) * D + i] : 0);
                        g1[(e * H + j) * D + i] += dg * x[t * D + i];
                        if (swi) g3[(e * H + j) * D + i] += du * x[t * D + i];
                    }
                }
            }
        static float[] F(double[] v) => v.Select(z => (float)z).ToArray();
        return new Ref(F(y), F(dx), F(dw), F(g1), F(g2), swi ? F(g3) : null);
    }
}
