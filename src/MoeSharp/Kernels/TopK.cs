namespace MoeSharp.Kernels;

/// <summary>
/// Row-wise top-k: the k largest values of each row and their column indices, largest first. Equal values keep
/// the lower index first, so routing ties break deterministically by expert index.
/// </summary>
internal static class TopK
{
    /// <summary>x [rows, cols] → values [rows, k], indices [rows, k].</summary>
    public static void Rows(ReadOnlySpan<float> x, int cols, int k, Span<float> values, Span<int> indices)
    {
        if (k > cols) throw new ArgumentOutOfRangeException(nameof(k), $"Top-k needs k ≤ columns, got k={k}, columns={cols}.");
        for (int r = 0; cols > 0 && r < x.Length / cols; r++)
        {
            var row = x.Slice(r * cols, cols);
            var v = values.Slice(r * k, k);
            var ix = indices.Slice(r * k, k);
            int count = 0;
            for (int j = 0; j < cols; j++)
            {
                float xj = row[j];
                // Strictly greater: an equal later value never displaces an earlier one.
                if (count == k && !(xj > v[k - 1])) continue;
                int pos = Math.Min(count, k - 1);
                while (pos > 0 && xj > v[pos - 1])
                {
                    v[pos] = v[pos - 1];
                    ix[pos] = ix[pos - 1];
                    pos--;
                }
                v[pos] = xj;
                ix[pos] = j;
                if (count < k) count++;
            }
        }
    }

    /// <summary>Scalar twin: a full stable sort of (−value, index) pairs per row.</summary>
    public static void RowsReference(ReadOnlySpan<float> x, int cols, int k, Span<float> values, Span<int> indices)
    {
        for (int r = 0; cols > 0 && r < x.Length / cols; r++)
        {
            var order = Enumerable.Range(0, cols).ToArray();
            var row = x.Slice(r * cols, cols).ToArray();
            Array.Sort(order, (a, b) => row[a] != row[b] ? row[b].CompareTo(row[a]) : a.CompareTo(b));
            for (int i = 0; i < k; i++)
            {
                values[r * k + i] = row[order[i]];
                indices[r * k + i] = order[i];
            }
        }
    }
}
