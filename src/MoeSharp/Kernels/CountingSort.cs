namespace MoeSharp.Kernels;

/// <summary>
/// Stable counting sort of items by a small integer key: a histogram, an exclusive prefix sum, then a scatter in
/// item order. This is how (token, slot) pairs are grouped by expert; negative keys (dropped pairs) are left out.
/// </summary>
internal static class CountingSort
{
    /// <summary>
    /// offsets [buckets+1]: bucket b owns order[offsets[b] .. offsets[b+1]); order [≥ placed]: item indices.
    /// Returns the number of items placed.
    /// </summary>
    public static int Sort(ReadOnlySpan<int> keys, int buckets, Span<int> offsets, Span<int> order)
    {
        offsets[..(buckets + 1)].Clear();
        foreach (int key in keys)
        {
            if (key >= buckets) throw new ArgumentOutOfRangeException(nameof(keys), $"Key {key} is outside [0, {buckets}).");
            if (key >= 0) offsets[key + 1]++;
        }
        for (int b = 0; b < buckets; b++) offsets[b + 1] += offsets[b];
        // The prefix sums double as write cursors; walk a copy so offsets stay the bucket starts.
        Span<int> cursor = buckets <= 1024 ? stackalloc int[buckets] : new int[buckets];
        offsets[..buckets].CopyTo(cursor);
        for (int i = 0; i < keys.Length; i++)
            if (keys[i] >= 0) order[cursor[keys[i]]++] = i;
        return offsets[buckets];
    }

    /// <summary>Scalar twin: a stable LINQ ordering.</summary>
    public static int[] SortReference(ReadOnlySpan<int> keys) =>
        keys.ToArray().Select((k, i) => (k, i)).Where(p => p.k >= 0).OrderBy(p => p.k).Select(p => p.i).ToArray();
}
