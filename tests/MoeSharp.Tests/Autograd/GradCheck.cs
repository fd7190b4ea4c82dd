using MoeSharp.Autograd;
using MoeSharp.Tensors;

namespace MoeSharp.Tests.Autograd;

/// <summary>
/// Finite-difference gradient check: the tape's gradient of L = Σ f(inputs) ⊙ g, for a random upstream g, against
/// central differences (L(x + ε) − L(x − ε)) / 2ε with L summed in double. Checks a sample of coordinates per input.
/// </summary>
internal static class GradCheck
{
    public static void Run(string op, Func<Tape, Tensor[], Tensor> f, Tensor[] inputs, float eps, float rtol, float atol, int samples = 40)
    {
        var tape = new Tape();
        foreach (var x in inputs) x.RequiresGrad = true;
        var y = f(tape, inputs);
        var g = Numerics.Random(y.Length, 99);
        tape.Backward(y, g);
        var analytic = inputs.Select(x => x.Grad!.ToArray()).ToArray();
        tape.Reset();

        var rng = new Rng(7);
        for (int n = 0; n < inputs.Length; n++)
        {
            var x = inputs[n].Span;
            int count = Math.Min(samples, x.Length);
            for (int s = 0; s < count; s++)
            {
                int i = count == x.Length ? s : rng.NextInt(x.Length);
                double numeric = Central(x, i, eps, () => Loss(f, inputs, g));
                double a = analytic[n][i];
                if (!(Math.Abs(a - numeric) <= atol + rtol * Math.Max(Math.Abs(a), Math.Abs(numeric))))
                    Assert.Fail($"{op}: d/d input{n}[{i}] analytic {a:G6} vs numeric {numeric:G6} (eps {eps}, rtol {rtol}, atol {atol})");
            }
        }
    }

    /// <summary>(loss(v + ε) − loss(v − ε)) / 2ε at <paramref name="values"/>[<paramref name="i"/>], which is restored afterwards.</summary>
    public static double Central(Span<float> values, int i, float eps, Func<double> loss)
    {
        float saved = values[i];
        values[i] = saved + eps;
        double plus = loss();
        values[i] = saved - eps;
        double minus = loss();
        values[i] = saved;
        return (plus - minus) / (2 * eps);
    }

    private static double Loss(Func<Tape, Tensor[], Tensor> f, Tensor[] inputs, float[] g)
    {
        var tape = new Tape();
        using (tape.NoGrad())
        {
            var y = f(tape, inputs).Span;
            double l = 0;
            for (int i = 0; i < y.Length; i++) l += (double)y[i] * g[i];
            return l;
        }
    }
}
