using MoeSharp.Kernels;

namespace MoeSharp.Tests.Kernels;

[Trait("Category", "Kernel")]
public class RoutingKernelTests
{
    [Fact]
    public void TopKMatchesFullSortForAllLengths()
    {
        for (int cols = 1; cols <= 256; cols++)
            foreach (int k in new[] { 1, Math.Min(2, cols), Math.Min(8, cols), cols }.Distinct())
            {
                // Values rounded to tenths so ties occur often and must break by lower index.
                var x = Numerics.Random(4 * cols, (ulong)(cols * 31 + k)).Select(v => MathF.Round(v * 10) / 10).ToArray();
                var v1 = new float[4 * k];
                var v2 = new float[4 * k];
                var i1 = new int[4 * k];
                var i2 = new int[4 * k];
                TopK.Rows(x, cols, k, v1, i1);
                TopK.RowsReference(x, cols, k, v2, i2);
                Assert.Equal(i2, i1);
                Assert.Equal(v2, v1);
            }
    }

    [Fact]
    public void TopKTieKeepsLowerIndex()
    {
        var v = new float[2];
        var i = new int[2];
        TopK.Rows([1f, 3f, 3f, 3f], 4, 2, v, i);
        Assert.Equal([1, 2], i);
    }

    [Fact]
    public void CountingSortIsStableAndSkipsNegativeKeys()
    {
        int[] keys = [2, 0, 2, -1, 1, 0, 2];
        var offsets = new int[4];
        var order = new int[keys.Length];
        int placed = CountingSort.Sort(keys, 3, offsets, order);
        Assert.Equal(6, placed);
        Assert.Equal([0, 2, 3, 6], offsets);
        Assert.Equal([1, 5, 4, 0, 2, 6], order[..placed]);
    }

    [Fact]
    public void CountingSortMatchesTwin()
    {
        var rng = new MoeSharp.Tensors.Rng(3);
        for (int n = 0; n <= 256; n++)
        {
            int buckets = 1 + n % 17;
            var keys = Enumerable.Range(0, n).Select(_ => rng.NextInt(buckets + 1) - 1).ToArray();
            var offsets = new int[buckets + 1];
            var order = new int[n];
            int placed = CountingSort.Sort(keys, buckets, offsets, order);
            Assert.Equal(CountingSort.SortReference(keys), order[..placed]);
        }
    }
}
