using MoeSharp.Tensors;

namespace MoeSharp.Tests;

/// <summary>Random inputs and tolerance checks shared by the numerical tests.</summary>
internal static class Numerics
{
    public static float[] Random(int n, ulong seed, float scale = 1f)
    {
        var rng = new Rng(seed);
        var x = new float[n];
        for (int i = 0; i < n; i++) x[i] = scale * (2 * rng.NextFloat() - 1);
        return x;
    }

    public static Tensor RandomTensor(ulong seed, float scale, params int[] shape) =>
        Tensor.FromArray(Random(Shapes.Count(shape), seed, scale), shape);

    /// <summary>|actual − expected| ≤ rtol·|expected| + atol element-wise, reporting the worst element.</summary>
    public static void Close(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, float rtol, float atol, string what = "")
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            float e = expected[i], a = actual[i];
            if (!(Math.Abs(a - e) <= rtol * Math.Abs(e) + atol))
                Assert.Fail($"{what} element {i}: expected {e:R}, got {a:R} (|diff| {Math.Abs(a - e):G3}, rtol {rtol}, atol {atol}).");
        }
    }

    public static void BitwiseEqual(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, string what = "")
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            if (BitConverter.SingleToInt32Bits(expected[i]) != BitConverter.SingleToInt32Bits(actual[i]))
                Assert.Fail($"{what} element {i}: {expected[i]:R} vs {actual[i]:R} differ bitwise.");
    }
}
