namespace MoeSharp.Classic.Experts;

/// <summary>Solves symmetric positive-definite systems A·x = b in double precision, for the normal equations of GLM fits.</summary>
internal static class Cholesky
{
    /// <summary>
    /// Solves a [n,n]·x = b in place (b becomes x; a is overwritten by its factor). A matrix that is not positive
    /// definite to working precision gets a growing diagonal jitter (relative to its largest diagonal entry) until it is.
    /// </summary>
    public static void Solve(double[] a, double[] b, int n)
    {
        var copy = (double[])a.Clone();
        double scale = 0;
        for (int i = 0; i < n; i++) scale = Math.Max(scale, Math.Abs(a[i * n + i]));
        if (scale == 0) scale = 1;
        for (double jitter = 0; ; jitter = jitter == 0 ? 1e-12 * scale : jitter * 10)
        {
            Array.Copy(copy, a, copy.Length);
            for (int i = 0; i < n; i++) a[i * n + i] += jitter;
            if (Factor(a, n)) break;
            if (jitter > scale) throw new InvalidOperationException($"The {n}×{n} normal equations are not positive definite even with jitter {jitter:G3}.");
        }
        // L·y = b, then Lᵀ·x = y.
        for (int i = 0; i < n; i++)
        {
            double s = b[i];
            for (int k = 0; k < i; k++) s -= a[i * n + k] * b[k];
            b[i] = s / a[i * n + i];
        }
        for (int i = n - 1; i >= 0; i--)
        {
            double s = b[i];
            for (int k = i + 1; k < n; k++) s -= a[k * n + i] * b[k];
            b[i] = s / a[i * n + i];
        }
    }

    /// <summary>In-place lower Cholesky factor; false when a pivot is not positive.</summary>
    private static bool Factor(double[] a, int n)
    {
        for (int j = 0; j < n; j++)
        {
            double d = a[j * n + j];
            for (int k = 0; k < j; k++) d -= a[j * n + k] * a[j * n + k];
            if (!(d > 0)) return false;
            d = Math.Sqrt(d);
            a[j * n + j] = d;
            for (int i = j + 1; i < n; i++)
            {
                double s = a[i * n + j];
                for (int k = 0; k < j; k++) s -= a[i * n + k] * a[j * n + k];
                a[i * n + j] = s / d;
            }
        }
        return true;
    }
}
