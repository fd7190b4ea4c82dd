using MoeSharp.Tensors;

namespace MoeSharp.Classic.Data;

/// <summary>
/// Splits rows into groups, one per expert, for training experts alone on their own part of the data: by the values
/// of a given column, or by k-means clustering of the inputs.
/// </summary>
public static class Partition
{
    /// <summary>
    /// Group of each row [N] from a column's values: the i-th smallest distinct value is group i. The column must hold
    /// exactly <paramref name="groups"/> distinct values.
    /// </summary>
    public static int[] FromColumn(double[] values, int groups, string column)
    {
        var distinct = values.Distinct().Order().ToArray();
        if (distinct.Length != groups)
            throw new ArgumentException($"Partition column '{column}' has {distinct.Length} distinct values ({Preview(distinct)}); it must have one per expert ({groups}).");
        return values.Select(v => Array.BinarySearch(distinct, v)).ToArray();
    }

    /// <summary>
    /// k-means (Lloyd's iterations from a k-means++ start, seeded) on the rows of x [N,D]; returns the cluster of each
    /// row [N]. A cluster that empties is re-seeded with the row farthest from its centre.
    /// </summary>
    public static int[] KMeans(Tensor x, int k, ulong seed, int maxIterations = 100)
    {
        int n = x.Dim(0), d = x.Dim(1);
        if (k < 1) throw new ArgumentOutOfRangeException(nameof(k), $"k-means needs k ≥ 1, got {k}.");
        if (n < k) throw new ArgumentException($"k-means cannot make {k} clusters from {n} rows.");
        var xs = x.Span;
        var centres = new double[k * d]; // [k, D]
        var rng = new Rng(seed);
        var dist = new double[n];        // [N] squared distance to the nearest centre so far
        CopyRow(xs, rng.NextInt(n), centres, 0, d);
        for (int r = 0; r < n; r++) dist[r] = Distance(xs, r, centres, 0, d);
        for (int c = 1; c < k; c++)
        {
            // k-means++: the next centre is a row drawn with probability ∝ squared distance to the nearest centre.
            double total = dist.Sum(), u = rng.NextDouble() * total, acc = 0;
            int pick = n - 1;
            for (int r = 0; r < n && total > 0; r++)
                if ((acc += dist[r]) >= u) { pick = r; break; }
            if (total == 0) pick = rng.NextInt(n);
            CopyRow(xs, pick, centres, c, d);
            for (int r = 0; r < n; r++) dist[r] = Math.Min(dist[r], Distance(xs, r, centres, c, d));
        }
        var assign = new int[n];
        Array.Fill(assign, -1);
        var counts = new int[k];
        for (int it = 0; it < maxIterations; it++)
        {
            bool changed = false;
            for (int r = 0; r < n; r++)
            {
                int best = 0;
                double bestD = double.PositiveInfinity;
                for (int c = 0; c < k; c++)
                {
                    double dc = Distance(xs, r, centres, c, d);
                    if (dc < bestD) (best, bestD) = (c, dc);
                }
                dist[r] = bestD;
                if (assign[r] != best) { assign[r] = best; changed = true; }
            }
            if (!changed) break;
            Array.Clear(centres);
            Array.Clear(counts);
            for (int r = 0; r < n; r++)
            {
                counts[assign[r]]++;
                for (int j = 0; j < d; j++) centres[assign[r] * d + j] += xs[r * d + j];
            }
            for (int c = 0; c < k; c++)
            {
                if (counts[c] == 0)
                {
                    int far = Array.IndexOf(dist, dist.Max());
                    CopyRow(xs, far, centres, c, d);
                    dist[far] = 0;
                    continue;
                }
                for (int j = 0; j < d; j++) centres[c * d + j] /= counts[c];
            }
        }
        return assign;
    }

    /// <summary>Per-row weights [N] for group <paramref name="group"/>: 1 inside, 0 outside.</summary>
    public static float[] Indicator(int[] assignment, int group) => assignment.Select(a => a == group ? 1f : 0f).ToArray();

    private static void CopyRow(ReadOnlySpan<float> x, int row, double[] centres, int c, int d)
    {
        for (int j = 0; j < d; j++) centres[c * d + j] = x[row * d + j];
    }

    private static double Distance(ReadOnlySpan<float> x, int row, double[] centres, int c, int d)
    {
        double s = 0;
        for (int j = 0; j < d; j++)
        {
            double diff = x[row * d + j] - centres[c * d + j];
            s += diff * diff;
        }
        return s;
    }

    private static string Preview(double[] values) =>
        string.Join(", ", values.Take(8)) + (values.Length > 8 ? ", …" : "");
}

/// <summary>K-fold cross-validation splits.</summary>
public static class Folds
{
    /// <summary>
    /// The test rows of each of <paramref name="k"/> folds. With <paramref name="labels"/> the folds are stratified:
    /// each class's rows are shuffled and dealt round-robin, so every fold has nearly the class proportions of the whole.
    /// </summary>
    public static int[][] Split(int rows, int k, ulong seed, int[]? labels = null)
    {
        if (k < 2 || k > rows) throw new ArgumentOutOfRangeException(nameof(k), $"{k} folds of {rows} rows: need 2 ≤ k ≤ rows.");
        var rng = new Rng(seed);
        var folds = Enumerable.Range(0, k).Select(_ => new List<int>()).ToArray();
        var groups = labels is null
            ? [Enumerable.Range(0, rows).ToArray()]
            : Enumerable.Range(0, rows).GroupBy(r => labels[r]).OrderBy(g => g.Key).Select(g => g.ToArray()).ToArray();
        int next = 0;
        foreach (var group in groups)
        {
            rng.Shuffle(group.AsSpan());
            foreach (int r in group) folds[next++ % k].Add(r);
        }
        return folds.Select(f => f.Order().ToArray()).ToArray();
    }

    /// <summary>
    /// The test rows of one train/test split, ascending: a share <paramref name="fraction"/> (0 to 0.5) of the rows,
    /// drawn at random. With <paramref name="labels"/> the split is stratified: each class gives round(fraction·count)
    /// of its rows, but always leaves at least one for training, so the training rows still hold every class.
    /// </summary>
    public static int[] Holdout(int rows, double fraction, ulong seed, int[]? labels = null)
    {
        if (!(fraction >= 0 && fraction <= 0.5)) throw new ArgumentOutOfRangeException(nameof(fraction), $"a test fraction must be in [0, 0.5], got {fraction}.");
        if (labels is not null && labels.Length != rows) throw new ArgumentException($"{labels.Length} labels for {rows} rows.", nameof(labels));
        var rng = new Rng(seed);
        var test = new List<int>();
        var groups = labels is null
            ? [Enumerable.Range(0, rows).ToArray()]
            : Enumerable.Range(0, rows).GroupBy(r => labels[r]).OrderBy(g => g.Key).Select(g => g.ToArray()).ToArray();
        foreach (var group in groups)
        {
            rng.Shuffle(group.AsSpan());
            int take = (int)Math.Round(fraction * group.Length, MidpointRounding.AwayFromZero);
            if (labels is not null) take = Math.Min(take, group.Length - 1);
            test.AddRange(group.AsSpan(0, take));
        }
        return test.Order().ToArray();
    }

    /// <summary>The rows not in <paramref name="test"/>, ascending.</summary>
    public static int[] Complement(int rows, int[] test)
    {
        var inTest = new bool[rows];
        foreach (int r in test) inTest[r] = true;
        return Enumerable.Range(0, rows).Where(r => !inTest[r]).ToArray();
    }
}
