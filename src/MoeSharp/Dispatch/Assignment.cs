using MoeSharp.Kernels;

namespace MoeSharp.Dispatch;

/// <summary>
/// Which experts each token goes to, as (token, expert) pairs in token-major order: token t owns pairs
/// [TokenOffsets[t], TokenOffsets[t+1]). A pair whose expert is −1 was dropped (over capacity) and costs nothing.
/// <see cref="Plan"/> counting-sorts the pairs by expert, so each expert's rows are contiguous.
/// </summary>
public sealed class Assignment
{
    /// <summary>An assignment of exactly <paramref name="k"/> pairs per token, from expert indices [T, K].</summary>
    public Assignment(int experts, int k, int[] expertIndices)
    {
        if (k <= 0 || expertIndices.Length % k != 0)
            throw new ArgumentException($"{expertIndices.Length} expert indices do not split into rows of {k}.");
        Experts = experts;
        Tokens = expertIndices.Length / k;
        PairExpert = expertIndices;
        TokenOffsets = new int[Tokens + 1];
        for (int t = 0; t <= Tokens; t++) TokenOffsets[t] = t * k;
        Plan();
    }

    /// <summary>A ragged assignment: token t owns pairs [tokenOffsets[t], tokenOffsets[t+1]).</summary>
    public Assignment(int experts, int[] tokenOffsets, int[] pairExpert)
    {
        if (tokenOffsets.Length == 0 || tokenOffsets[0] != 0 || tokenOffsets[^1] != pairExpert.Length)
            throw new ArgumentException("Token offsets must start at 0 and end at the number of pairs.");
        Experts = experts;
        Tokens = tokenOffsets.Length - 1;
        TokenOffsets = tokenOffsets;
        PairExpert = pairExpert;
        Plan();
    }

    public int Experts { get; }
    public int Tokens { get; }
    public int Pairs => PairExpert.Length;

    /// <summary>[P] expert of each pair, −1 when dropped.</summary>
    public int[] PairExpert { get; }

    /// <summary>[T+1] first pair of each token.</summary>
    public int[] TokenOffsets { get; }

    /// <summary>[E+1] expert e owns sorted rows [ExpertOffsets[e], ExpertOffsets[e+1]).</summary>
    public int[] ExpertOffsets { get; private set; } = [];

    /// <summary>[Placed] the pair at each sorted row; within an expert, pairs keep token order.</summary>
    public int[] RowPair { get; private set; } = [];

    /// <summary>[P] the sorted row of each pair, −1 when dropped.</summary>
    public int[] PairRow { get; private set; } = [];

    /// <summary>[Placed] the token of each sorted row.</summary>
    public int[] RowToken { get; private set; } = [];

    /// <summary>Pairs that reached an expert.</summary>
    public int Placed { get; private set; }

    public int Dropped => Pairs - Placed;

    /// <summary>Rows routed to expert e.</summary>
    public int Load(int e) => ExpertOffsets[e + 1] - ExpertOffsets[e];

    private void Plan()
    {
        foreach (int e in PairExpert)
            if (e < -1 || e >= Experts) throw new ArgumentOutOfRangeException(nameof(PairExpert), $"Expert index {e} is outside [0, {Experts}).");
        ExpertOffsets = new int[Experts + 1];
        RowPair = new int[Pairs];
        Placed = CountingSort.Sort(PairExpert, Experts, ExpertOffsets, RowPair);
        PairRow = new int[Pairs];
        Array.Fill(PairRow, -1);
        RowToken = new int[Placed];
        for (int r = 0; r < Placed; r++) PairRow[RowPair[r]] = r;
        for (int t = 0; t < Tokens; t++)
            for (int p = TokenOffsets[t]; p < TokenOffsets[t + 1]; p++)
                if (PairRow[p] >= 0) RowToken[PairRow[p]] = t;
    }
}
