using MoeSharp.Dispatch;

namespace MoeSharp.Tests.Dispatch;

public class AssignmentTests
{
    /// <summary>
    /// Loads 1100, 530, 3 and 0 rows (top-1): every expert's rows are covered once by items of one expert each, an
    /// expert's items differ by at most a row and hold at most RowBlock rows (1100 → 367, 367, 366; 530 → 265, 265,
    /// not 512 and 18), the empty expert has none, and the items come largest first.
    /// </summary>
    [Fact]
    public void RowItemsAreEqualBlocksLargestFirst()
    {
        int[] loads = [1100, 530, 3, 0];
        var experts = new List<int>();
        for (int e = 0; e < loads.Length; e++) experts.AddRange(Enumerable.Repeat(e, loads[e]));
        var rng = new Random(3);
        var pairExpert = experts.OrderBy(_ => rng.Next()).ToArray(); // tokens in random expert order
        var a = new Assignment(loads.Length, 1, pairExpert);

        var items = a.RowItems[..a.RowItemCount];
        Assert.Equal([367, 367, 366, 265, 265, 3], items.Select(i => i.Count).ToArray());
        var covered = new int[a.Placed];
        foreach (var (e, row, count) in items)
        {
            Assert.InRange(count, 1, ExpertFfnOp.RowBlock);
            Assert.InRange(row, a.ExpertOffsets[e], a.ExpertOffsets[e + 1] - count);
            for (int r = row; r < row + count; r++) covered[r]++;
        }
        Assert.All(covered, c => Assert.Equal(1, c));
    }
}
