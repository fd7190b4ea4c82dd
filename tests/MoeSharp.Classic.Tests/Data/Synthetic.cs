using MoeSharp.Classic.Data;
using MoeSharp.Tensors;

namespace MoeSharp.Classic.Tests.Data;

/// <summary>Regression data the mixture tests fit: one input drawn uniformly on [−1, 1], a target f(x) plus Gaussian noise.</summary>
internal static class Synthetic
{
    /// <summary>
    /// <paramref name="n"/> rows of x ~ U(−1, 1) and y = f(x) + <paramref name="noise"/>·N(0, 1), drawing x then the noise
    /// for each row from one generator seeded with <paramref name="seed"/>.
    /// </summary>
    public static TabularData OnInterval(int n, ulong seed, Func<float, float> f, float noise)
    {
        var rng = new Rng(seed);
        var x = new float[n]; // [n]
        var y = new float[n]; // [n]
        for (int r = 0; r < n; r++)
        {
            x[r] = 2 * rng.NextFloat() - 1;
            y[r] = f(x[r]) + noise * rng.NextNormal();
        }
        return new TabularData(Tensor.FromArray(x, n, 1), TabularTask.Regression, null, y);
    }
}
