namespace MoeSharp.Classic.Diagnostics;

/// <summary>
/// The leading principal components of rows x [N,D], by power iteration on the covariance matrix (in double) with
/// deflation: enough for a 2-D picture of where a gate sends which inputs, without a linear-algebra package.
/// </summary>
internal sealed class Pca
{
    private Pca(double[] mean, double[][] components, double[] explained)
    {
        Mean = mean;
        Components = components;
        ExplainedVariance = explained;
    }

    /// <summary>[D] column means.</summary>
    public double[] Mean { get; }

    /// <summary>[k][D] unit directions, by decreasing variance.</summary>
    public double[][] Components { get; }

    /// <summary>[k] share of the total variance along each component.</summary>
    public double[] ExplainedVariance { get; }

    public static Pca Fit(ReadOnlySpan<float> x, int d, int components = 2, int iterations = 300)
    {
        int n = x.Length / d;
        var mean = new double[d];
        for (int r = 0; r < n; r++)
            for (int j = 0; j < d; j++) mean[j] += x[r * d + j] / (double)n;
        var cov = new double[d * d]; // [D,D]
        for (int r = 0; r < n; r++)
            for (int i = 0; i < d; i++)
            {
                double ci = x[r * d + i] - mean[i];
                for (int j = 0; j <= i; j++) cov[i * d + j] += ci * (x[r * d + j] - mean[j]) / Math.Max(1, n - 1);
            }
        for (int i = 0; i < d; i++)
            for (int j = i + 1; j < d; j++) cov[i * d + j] = cov[j * d + i];
        double total = 0;
        for (int i = 0; i < d; i++) total += cov[i * d + i];
        int k = Math.Min(components, d);
        var dirs = new double[k][];
        var explained = new double[k];
        for (int c = 0; c < k; c++)
        {
            // A fixed, non-degenerate start keeps the result deterministic.
            var v = Enumerable.Range(0, d).Select(j => 1.0 + 0.1 * j + 0.01 * c).ToArray();
            double lambda = 0;
            for (int it = 0; it < iterations; it++)
            {
                var w = new double[d];
                for (int i = 0; i < d; i++)
                    for (int j = 0; j < d; j++) w[i] += cov[i * d + j] * v[j];
                double norm = Math.Sqrt(w.Sum(a => a * a));
                if (norm < 1e-300) break;
                for (int i = 0; i < d; i++) v[i] = w[i] / norm;
                lambda = norm;
            }
            // Sign convention: the largest entry positive, so reruns draw the same picture.
            int big = Array.IndexOf(v, v.MaxBy(Math.Abs));
            if (v[big] < 0) for (int i = 0; i < d; i++) v[i] = -v[i];
            dirs[c] = v;
            explained[c] = total > 0 ? lambda / total : 0;
            for (int i = 0; i < d; i++)
                for (int j = 0; j < d; j++) cov[i * d + j] -= lambda * v[i] * v[j];
        }
        return new Pca(mean, dirs, explained);
    }

    /// <summary>Coordinates [N,k] of rows x [N,D] along the components.</summary>
    public double[] Project(ReadOnlySpan<float> x)
    {
        int d = Mean.Length, k = Components.Length, n = x.Length / d;
        var y = new double[n * k];
        for (int r = 0; r < n; r++)
            for (int c = 0; c < k; c++)
            {
                double s = 0;
                for (int j = 0; j < d; j++) s += (x[r * d + j] - Mean[j]) * Components[c][j];
                y[r * k + c] = s;
            }
        return y;
    }
}
