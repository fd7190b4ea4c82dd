using System.Numerics.Tensors;
using MoeSharp.Kernels;

namespace MoeSharp.Dispatch;

/// <summary>
/// Which experts each token goes to, as (token, expert) pairs in token-major order: token t owns pairs
/// [TokenOffsets[t], TokenOffsets[t+1]). A pair whose expert is −1 was dropped (over capacity) and costs nothing.
/// <see cref="Plan"/> counting-sorts the pairs by expert, so each expert's rows are contiguous, and cuts the rows
/// into the expert FFN's work items. An assignment held by an <see cref="MoeWorkspace"/> is planned again every
/// step into the same buffers, which is why the row buffers may be longer than <see cref="Placed"/>.
/// </summary>
internal sealed class Assignment
{
    /// <summary>An assignment of exactly <paramref name="k"/> pairs per token, from expert indices [T, K].</summary>
    public Assignment(int experts, int k, int[] expertIndices)
        : this(experts, expertIndices.Length)
    {
        Plan(UniformOffsets(k, expertIndices), expertIndices);
    }

    /// <summary>A ragged assignment: token t owns pairs [tokenOffsets[t], tokenOffsets[t+1]).</summary>
    public Assignment(int experts, int[] tokenOffsets, int[] pairExpert) : this(experts, pairExpert.Length)
    {
        Plan(tokenOffsets, pairExpert);
    }

    /// <summary>Buffers for up to <paramref name="pairs"/> pairs over <paramref name="experts"/> experts, planned later.</summary>
    internal Assignment(int experts, int pairs)
    {
        Experts = experts;
        ExpertOffsets = new int[experts + 1];
        RowPair = new int[pairs];
        PairRow = new int[pairs];
        RowToken = new int[pairs];
        // Each expert's rows split into ⌈load / RowBlock⌉ items, at most pairs / RowBlock + 1 of them per expert.
        RowItems = new (int, int, int)[pairs / ExpertFfnOp.RowBlock + experts];
    }

    private static int[] UniformOffsets(int k, int[] expertIndices)
    {
        if (k <= 0 || expertIndices.Length % k != 0)
            throw new ArgumentException($"{expertIndices.Length} expert indices do not split into rows of {k}.");
        var offsets = new int[expertIndices.Length / k + 1];
        for (int t = 0; t < offsets.Length; t++) offsets[t] = t * k;
        return offsets;
    }

    /// <summary>Experts the pairs may name.</summary>
    public int Experts { get; }

    /// <summary>Tokens T.</summary>
    public int Tokens => TokenOffsets.Length - 1;

    /// <summary>Pairs P, placed or dropped.</summary>
    public int Pairs => PairExpert.Length;

    /// <summary>[P] expert of each pair, −1 when dropped.</summary>
    public int[] PairExpert { get; private set; } = [];

    /// <summary>[T+1] first pair of each token.</summary>
    public int[] TokenOffsets { get; private set; } = [0];

    /// <summary>[E+1] expert e owns sorted rows [ExpertOffsets[e], ExpertOffsets[e+1]).</summary>
    public int[] ExpertOffsets { get; }

    /// <summary>[≥ Placed] the pair at each sorted row; within an expert, pairs keep token order.</summary>
    public int[] RowPair { get; }

    /// <summary>[≥ P] the sorted row of each pair, −1 when dropped.</summary>
    public int[] PairRow { get; }

    /// <summary>[≥ Placed] the token of each sorted row.</summary>
    public int[] RowToken { get; }

    /// <summary>[≥ RowItemCount] (expert, first row, row count): each expert's rows in equal blocks of at most <see cref="ExpertFfnOp.RowBlock"/>, largest first.</summary>
    internal (int Expert, int Row, int Count)[] RowItems { get; }

    /// <summary>Work items in <see cref="RowItems"/>.</summary>
    internal int RowItemCount { get; private set; }

    /// <summary>Pairs that reached an expert.</summary>
    public int Placed { get; private set; }

    /// <summary>Pairs dropped over capacity.</summary>
    public int Dropped => Pairs - Placed;

    /// <summary>Rows routed to expert e.</summary>
    public int Load(int e) => ExpertOffsets[e + 1] - ExpertOffsets[e];

    /// <summary>Sorts the pairs of <paramref name="pairExpert"/> [P] by expert into this assignment's buffers.</summary>
    internal void Plan(int[] tokenOffsets, int[] pairExpert)
    {
        if (tokenOffsets.Length == 0 || tokenOffsets[0] != 0 || tokenOffsets[^1] != pairExpert.Length)
            throw new ArgumentException("Token offsets must start at 0 and end at the number of pairs.");
        if (pairExpert.Length > RowPair.Length)
            throw new ArgumentException($"{pairExpert.Length} pairs exceed the {RowPair.Length} this assignment was sized for.");
        foreach (int e in pairExpert)
            if (e < -1 || e >= Experts) throw new ArgumentOutOfRangeException(nameof(pairExpert), $"Expert index {e} is outside [0, {Experts}).");
        TokenOffsets = tokenOffsets;
        PairExpert = pairExpert;
        int pairs = pairExpert.Length;
        Placed = CountingSort.Sort(pairExpert, Experts, ExpertOffsets, RowPair);
        Array.Fill(PairRow, -1, 0, pairs);
        for (int r = 0; r < Placed; r++) PairRow[RowPair[r]] = r;
        for (int t = 0; t < Tokens; t++)
            for (int p = tokenOffsets[t]; p < tokenOffsets[t + 1]; p++)
                if (PairRow[p] >= 0) RowToken[PairRow[p]] = t;
        int i = 0;
        for (int e = 0; e < Experts; e++)
        {
            // Equal blocks of at most RowBlock rows: 530 rows are two items of 265, not 512 and 18, so no item packs
            // the expert's weights for a handful of rows and the items stay near one size.
            int start = ExpertOffsets[e], load = ExpertOffsets[e + 1] - start;
            int blocks = (load + ExpertFfnOp.RowBlock - 1) / ExpertFfnOp.RowBlock;
            for (int b = 0; b < blocks; b++)
            {
                int r0 = start + (int)((long)load * b / blocks), r1 = start + (int)((long)load * (b + 1) / blocks);
                RowItems[i++] = (e, r0, r1 - r0);
            }
        }
        RowItemCount = i;
        // Largest first (stable): threads claim items in order, so the small ones fill in at the end and a thread is
        // not left with one big item while the other waits. Each row's result is the same in any item and order.
        for (int j = 1; j < i; j++)
        {
            var item = RowItems[j];
            int at = j;
            for (; at > 0 && RowItems[at - 1].Count < item.Count; at--) RowItems[at] = RowItems[at - 1];
            RowItems[at] = item;
        }
    }

    /// <summary>[≥ the count <see cref="PlanColumns"/> returned] (expert, first column, column count).</summary>
    internal (int Expert, int Column, int Count)[] ColumnItems { get; private set; } = [];

    /// <summary>
    /// Fills <see cref="ColumnItems"/> with <paramref name="width"/> columns in blocks of <paramref name="block"/>
    /// for each expert that received rows, and returns how many items there are; the buffer is sized on first use.
    /// </summary>
    internal int PlanColumns(int width, int block)
    {
        int perExpert = (width + block - 1) / block;
        if (ColumnItems.Length < Experts * perExpert) ColumnItems = new (int, int, int)[Experts * perExpert];
        int i = 0;
        for (int e = 0; e < Experts; e++)
            if (Load(e) > 0)
                for (int c = 0; c < width; c += block) ColumnItems[i++] = (e, c, Math.Min(block, width - c));
        return i;
    }

    /// <summary>
    /// y[t] [D] = Σ over token <paramref name="t"/>'s kept pairs, in pair order, of weight·ys[row]: the one combine
    /// order of every expert path (fused, stored, training, decode), so their outputs agree bitwise. ys is [R, D] by
    /// placed row, weights [P]; dropped pairs add nothing.
    /// </summary>
    public void CombineToken(int t, ReadOnlySpan<float> ys, ReadOnlySpan<float> weights, Span<float> yt)
    {
        int d = yt.Length;
        yt.Clear();
        for (int p = TokenOffsets[t]; p < TokenOffsets[t + 1]; p++)
        {
            int r = PairRow[p];
            if (r >= 0) TensorPrimitives.MultiplyAdd(ys.Slice(r * d, d), weights[p], yt, yt);
        }
    }

    /// <summary><see cref="CombineToken"/> for every token: y [T, D].</summary>
    public void Combine(ReadOnlySpan<float> ys, ReadOnlySpan<float> weights, Span<float> y, int d)
    {
        for (int t = 0; t < Tokens; t++) CombineToken(t, ys, weights, y.Slice(t * d, d));
    }
}
