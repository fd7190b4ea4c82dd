namespace MoeSharp.Routing;

/// <summary>Per-expert capacity for token-choice routers: which of the chosen pairs an expert can take.</summary>
public static class Capacity
{
    /// <summary>
    /// kept [P] = the router's PairExpert with the pairs beyond each expert's capacity ⌈factor·P/E⌉ (at least
    /// MinCapacity) set to −1: by token position, or keeping the highest gate weights. <paramref name="order"/> [≥ P]
    /// and <paramref name="used"/> [≥ E] are scratch.
    /// </summary>
    public static void Apply(RouterOutput r, RouterOptions o, Span<int> kept, Span<int> order, Span<int> used)
    {
        int e = o.Experts, pairs = r.PairExpert.Length;
        int capacity = Math.Max(o.MinCapacity, (int)Math.Ceiling(o.CapacityFactor * pairs / e));
        r.PairExpert.CopyTo(kept);
        used[..e].Clear();
        if (o.DropPolicy == DropPolicy.Position)
        {
            for (int p = 0; p < pairs; p++)
                if (used[kept[p]]++ >= capacity) kept[p] = -1;
            return;
        }
        var byWeight = order[..pairs];
        for (int p = 0; p < pairs; p++) byWeight[p] = p;
        // A total order (ties by index), so any sorting algorithm yields this one permutation.
        byWeight.Sort(new HigherWeightFirst(r.Weights.Storage, r.Weights.Offset));
        foreach (int p in byWeight)
            if (used[kept[p]]++ >= capacity) kept[p] = -1;
    }

    /// <summary>Highest gate weight first; equal weights keep token order.</summary>
    private readonly struct HigherWeightFirst(float[] weights, int offset) : IComparer<int>
    {
        public int Compare(int a, int b)
        {
            float wa = weights[offset + a], wb = weights[offset + b];
            return wa != wb ? wb.CompareTo(wa) : a.CompareTo(b);
        }
    }
}
