using MoeSharp.Formats;
using MoeSharp.Kernels;

namespace MoeSharp.Tests.Formats;

/// <summary>
/// <see cref="MatVecGroup"/>: a group of products in one parallel loop gives each matrix bitwise its own
/// <see cref="QuantizedMatrix.MatVec(ReadOnlySpan{float}, Span{float})"/>, on every kernel path, at 1 and 2 threads,
/// with the formats mixed in one group (both block sizes of the quantized x), row counts that are not whole work items
/// or whole groups of four, and an empty matrix.
/// </summary>
[Trait("Category", "Kernel")]
public sealed class MatVecGroupTests
{
    private const int Cols = 512;
    private static readonly int[] RowCounts = [70, 5, 130, 0, 64, 3, 257]; // cycled over the formats

    private static QuantizedMatrix[] Matrices()
    {
        var formats = WeightFormats.All;
        var matrices = new QuantizedMatrix[formats.Length + 2];
        for (int i = 0; i < matrices.Length; i++)
            matrices[i] = RowKernelTests.RandomMatrix(formats[i % formats.Length], RowCounts[i % RowCounts.Length], Cols, (ulong)(40 + i));
        return matrices;
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(1, 2)]
    [InlineData(0, 1)]
    [InlineData(0, 2)]
    public void EachOutputIsBitwiseItsMatrixsMatVec(int shared, int threads)
    {
        var matrices = Matrices();
        int inputs = shared == 1 ? 1 : matrices.Length;
        float[] x = Numerics.Random(inputs * Cols, 7, 2f); // [inputs, cols]
        int total = 0;
        foreach (var m in matrices) total += m.Rows;
        foreach (var path in MatVecKernelTests.Paths)
        {
            var expected = new float[total]; // [Σ rows]
            var actual = new float[total]; // [Σ rows]
            using (Workers.Limit(threads))
            {
                int offset = 0;
                for (int i = 0; i < matrices.Length; i++)
                {
                    var xi = x.AsSpan(inputs == 1 ? 0 : i * Cols, Cols);
                    matrices[i].MatVec(xi, expected.AsSpan(offset, matrices[i].Rows), path);
                    offset += matrices[i].Rows;
                }
                MatVecGroup.MatVec(matrices, x, inputs, actual, path);
            }
            Numerics.BitwiseEqual(expected, actual, $"path={path} threads={threads} inputs={inputs}");
        }
    }

    [Fact]
    public void TheSameGroupTwiceReusesTheQuantizedXAndAgrees()
    {
        var matrices = Matrices();
        float[] x = Numerics.Random(Cols, 8, 1f); // [cols]
        int total = 0;
        foreach (var m in matrices) total += m.Rows;
        var first = new float[total]; // [Σ rows]
        var second = new float[total]; // [Σ rows]
        MatVecGroup.MatVec(matrices, x, 1, first);
        MatVecGroup.MatVec(matrices, x, 1, second);
        Numerics.BitwiseEqual(first, second, "second call");
        x[3] += 1f; // in place: the quantized x must be recomputed, not reused
        MatVecGroup.MatVec(matrices, x, 1, second);
        var expected = new float[matrices[0].Rows]; // [rows of matrix 0]
        matrices[0].MatVec(x, expected);
        Numerics.BitwiseEqual(expected, second.AsSpan(0, expected.Length), "after an in-place change of x");
    }

    [Fact]
    public void BadShapesAreOneLineNamingTheMismatch()
    {
        var a = RowKernelTests.RandomMatrix(WeightFormat.Q8_0, 4, 64, 1);
        var b = RowKernelTests.RandomMatrix(WeightFormat.Q8_0, 4, 32, 2);
        var e = Assert.Throws<ArgumentException>(() => MatVecGroup.MatVec([a, b], new float[64], 1, new float[8]));
        Assert.Contains("matrix 1 has 32 columns; matrix 0 has 64", e.Message);
        e = Assert.Throws<ArgumentException>(() => MatVecGroup.MatVec([a, a, a], new float[128], 2, new float[12]));
        Assert.Contains("2 inputs for 3 matrices", e.Message);
        e = Assert.Throws<ArgumentException>(() => MatVecGroup.MatVec([a, a], new float[64], 1, new float[7]));
        Assert.Contains("y has 7 elements; the matrices have 8 rows", e.Message);
        e = Assert.Throws<ArgumentException>(() => MatVecGroup.MatVec([a], new float[63], 1, new float[4]));
        Assert.Contains("x has 63 elements; [1, 64] needs 64", e.Message);
    }
}
