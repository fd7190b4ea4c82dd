using System.Numerics.Tensors;
using MoeSharp.Kernels;

namespace MoeSharp.Tests.Kernels;

[Trait("Category", "Kernel")]
public class AdamWUpdateTests
{
    private static readonly AdamWStep Step = new(0.9f, 0.999f, 1e-8f, 1e-3f / 0.271f, 1 / MathF.Sqrt(0.003f), 1 - 1e-3f * 0.1f);

    private static (float[] P, float[] G, float[] M, float[] V) State(int n, ulong seed)
    {
        var v = Numerics.Random(n, seed + 3);
        TensorPrimitives.Abs(v, v); // a second moment is never negative
        return (Numerics.Random(n, seed), Numerics.Random(n, seed + 1), Numerics.Random(n, seed + 2, 0.1f), v);
    }

    /// <summary>The fused vector pass against its scalar twin, bitwise (tolerance 0), for every length 0..256 and a few odd longer ones.</summary>
    [Fact]
    public void FusedPassEqualsScalarTwinBitwise()
    {
        foreach (int n in Enumerable.Range(0, 257).Concat([1000, 4099]))
        {
            var (p, g, m, v) = State(n, (ulong)n);
            var (p2, m2, v2) = ((float[])p.Clone(), (float[])m.Clone(), (float[])v.Clone());
            AdamWUpdate.Apply(p, g, m, v, Step);
            AdamWUpdate.Reference(p2, g, m2, v2, Step);
            Numerics.BitwiseEqual(p2, p, $"p, n={n}");
            Numerics.BitwiseEqual(m2, m, $"m, n={n}");
            Numerics.BitwiseEqual(v2, v, $"v, n={n}");
        }
    }

    /// <summary>
    /// The fused pass against the op-by-op TensorPrimitives composition it replaced (AdamW.Step before the fusion),
    /// bitwise: it keeps that composition's roundings, so training runs and checkpoints resume unchanged.
    /// </summary>
    [Fact]
    public void FusedPassEqualsTheUnfusedComposition()
    {
        const int n = 1000;
        var (p, g, m, v) = State(n, 5);
        var (p2, m2, v2) = ((float[])p.Clone(), (float[])m.Clone(), (float[])v.Clone());
        AdamWUpdate.Apply(p, g, m, v, Step);
        var t = new float[n]; // [n] scratch
        TensorPrimitives.Multiply(m2, Step.Beta1, m2);
        TensorPrimitives.MultiplyAdd(g, 1 - Step.Beta1, m2, m2);
        TensorPrimitives.Multiply(g, g, t);
        TensorPrimitives.Multiply(v2, Step.Beta2, v2);
        TensorPrimitives.MultiplyAdd(t, 1 - Step.Beta2, v2, v2);
        TensorPrimitives.Sqrt(v2, t);
        TensorPrimitives.Multiply(t, Step.InvSqrtBc2, t);
        TensorPrimitives.Add(t, Step.Eps, t);
        TensorPrimitives.Divide(m2, t, t);
        TensorPrimitives.Multiply(t, -Step.StepSize, t);
        TensorPrimitives.FusedMultiplyAdd(p2, Step.Keep, t, p2);
        Numerics.BitwiseEqual(m2, m, "m");
        Numerics.BitwiseEqual(v2, v, "v");
        Numerics.BitwiseEqual(p2, p, "p");
    }
}
