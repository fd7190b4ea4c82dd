using MoeSharp.Formats;
using MoeSharp.Nn;

namespace MoeSharp.Tests.Nn;

public sealed class StoredParameterTests
{
    /// <summary>
    /// Five stacked expert weights of 8 × [8192, 8192] are 2³¹ + 2²⁹ elements, more than one float[] holds; stored
    /// (all five over one Q4_K matrix, 37.7 MB) they take no arena space, and the arena holds only the norm.
    /// </summary>
    [Fact]
    public void StoredParametersTakeNoArenaSpaceSoAModelBeyondTwoToThe31WeightsBuilds()
    {
        var arena = new ParameterArena();
        var norm = arena.Add("norm.weight", [8192], Init.Ones);
        var matrix = new QuantizedMatrix(new byte[8192 * WeightFormat.Q4_K.RowBytes(8192)], WeightFormat.Q4_K, 8192, 8192);
        var shared = new StoredWeight(Enumerable.Repeat(matrix, 8).ToArray());
        for (int i = 0; i < 5; i++) arena.Store(arena.Add($"experts.{i}", [8, 8192, 8192], Init.Normal(0.02f)), shared);
        arena.Build(seed: 1);
        Assert.Equal(5L * 8 * 8192 * 8192 + 8192, arena.TotalElements);
        Assert.True(arena.TotalElements > int.MaxValue);
        Assert.Equal(8192, arena.Length);
        Assert.Equal(0, norm.Offset);
        Assert.Equal(-1, arena["experts.3"].Offset);
        Assert.Equal(4L * 8192 + 5 * 8 * 8192 * matrix.RowBytes, arena.WeightBytes);
        Assert.All(norm.Value.Span.ToArray(), v => Assert.Equal(1f, v));
    }

    [Fact]
    public void AStoredWeightOfAnotherShapeIsRefusedNamingBoth()
    {
        var arena = new ParameterArena();
        var p = arena.Add("w", [4, 64], Init.Zeros);
        var stored = new StoredWeight(new QuantizedMatrix(new byte[4 * 32 * 4], WeightFormat.F32, 4, 32));
        var ex = Assert.Throws<ArgumentException>(() => arena.Store(p, stored));
        Assert.StartsWith("Parameter 'w' has shape [4,64]; the stored weight is [4, 32] F32.", ex.Message);
    }
}
