using MoeSharp.Tensors;

namespace MoeSharp.Tests.Tensors;

public class RngTests
{
    [Fact]
    public void ASeedFixesTheSequenceAndAnotherSeedChangesIt()
    {
        var a = new Rng(7);
        var b = new Rng(7);
        var c = new Rng(8);
        var sa = Enumerable.Range(0, 100).Select(_ => a.NextUInt64()).ToArray();
        Assert.Equal(sa, Enumerable.Range(0, 100).Select(_ => b.NextUInt64()).ToArray());
        Assert.NotEqual(sa, Enumerable.Range(0, 100).Select(_ => c.NextUInt64()).ToArray());
    }

    [Fact]
    public void RestoringTheStateContinuesExactly()
    {
        var a = new Rng(3);
        for (int i = 0; i < 17; i++) a.NextUInt64();
        var b = new Rng(99) { State = a.State };
        Assert.Equal(Enumerable.Range(0, 50).Select(_ => a.NextUInt64()), Enumerable.Range(0, 50).Select(_ => b.NextUInt64()));
        Assert.Throws<ArgumentException>(() => b.State = [1, 2, 3]);
    }

    [Fact]
    public void NextIntIsUniformOverItsRange()
    {
        var rng = new Rng(1);
        const int draws = 100_000, bins = 10;
        var counts = new int[bins];
        for (int i = 0; i < draws; i++) counts[rng.NextInt(bins)]++;
        double expected = (double)draws / bins;
        double chi2 = counts.Sum(c => (c - expected) * (c - expected) / expected);
        // χ² with 9 degrees of freedom exceeds 27.88 with probability 0.001.
        Assert.True(chi2 < 27.88, $"χ² = {chi2:F1} for counts {string.Join(", ", counts)}");
        Assert.Throws<ArgumentOutOfRangeException>(() => rng.NextInt(0));
    }

    [Fact]
    public void NormalsHaveZeroMeanAndUnitVariance()
    {
        var rng = new Rng(2);
        const int n = 200_000;
        var x = new float[n];
        rng.FillNormal(x, 0, 1);
        double mean = x.Average(v => (double)v);
        double variance = x.Sum(v => (v - mean) * (v - mean)) / (n - 1);
        // Five standard errors: 5/√n for the mean, 5·√(2/n) for the variance of a normal sample.
        Assert.InRange(mean, -5 / Math.Sqrt(n), 5 / Math.Sqrt(n));
        Assert.InRange(variance, 1 - 5 * Math.Sqrt(2.0 / n), 1 + 5 * Math.Sqrt(2.0 / n));
        var shifted = new float[n];
        new Rng(2).FillNormal(shifted, 3, 2);
        for (int i = 0; i < n; i += 997) Assert.Equal(3 + 2 * x[i], shifted[i], 1e-5f);
    }

    [Fact]
    public void ShuffleIsFisherYatesOverTheSameDraws()
    {
        var items = Enumerable.Range(0, 50).ToArray();
        new Rng(5).Shuffle(items.AsSpan());
        // Reference: the textbook loop, swapping position i with a uniform j ≤ i, from the last position down.
        var expected = Enumerable.Range(0, 50).ToArray();
        var draws = new Rng(5);
        for (int i = expected.Length - 1; i > 0; i--)
        {
            int j = draws.NextInt(i + 1);
            (expected[i], expected[j]) = (expected[j], expected[i]);
        }
        Assert.Equal(expected, items);
        Assert.Equal(Enumerable.Range(0, 50), items.Order());
        Assert.NotEqual(Enumerable.Range(0, 50), items);
    }

    [Fact]
    public void UniformsStayInTheUnitInterval()
    {
        var rng = new Rng(4);
        for (int i = 0; i < 10_000; i++)
        {
            Assert.InRange(rng.NextFloat(), 0f, 0.99999994f);
            Assert.InRange(rng.NextDouble(), 0.0, 0.9999999999999999);
        }
    }
}
