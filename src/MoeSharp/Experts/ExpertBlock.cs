using System.Numerics.Tensors;
using MoeSharp.Kernels;

namespace MoeSharp.Experts;

/// <summary>
/// The fp32 arithmetic of one block of one expert's gathered rows: W1 (and W3) with their biases, the activation, W2
/// with its bias. Every fp32 expert path runs its blocks through here (the fused expert FFN op, the local runner a
/// cluster silo uses), so a row gets bitwise the same result on each of them.
/// </summary>
/// <remarks>Dimensions: n rows of the block, D model width, H expert width; pointers are to row r0 of each buffer's [R, ·].</remarks>
internal static unsafe class ExpertBlock
{
    /// <summary>
    /// Expert <paramref name="e"/> on rows <paramref name="xs"/> [n,D]: G [n,H] = Xs·W1ᵀ + B1, U [n,H] = Xs·W3ᵀ + B3
    /// (SwiGLU only; <paramref name="u"/> is ignored otherwise), Act [n,H], Ys [n,D] = Act·W2ᵀ + B2. The stacked weights
    /// and biases are the bank's whole [E, ·, ·] tensors; a null bias pointer means no bias.
    /// </summary>
    public static void Forward(int e, int n, int d, int h, ExpertActivation activation, SwiGluClamp? clamp,
        float* xs, float* g, float* u, float* act, float* ys, float* w1, float* w3, float* w2, float* b1, float* b3, float* b2)
    {
        long eh = (long)e * h * d;
        Gemm.MultiplyCore(xs, d, false, w1 + eh, d, true, g, h, n, h, d, false, false); // G = Xs·W1ᵀ
        AddRows(g, n, b1 == null ? null : b1 + (long)e * h, h);                         //   + B1[e]
        var gs = new ReadOnlySpan<float>(g, n * h);
        var acts = new Span<float>(act, n * h);
        if (activation == ExpertActivation.SwiGlu)
        {
            Gemm.MultiplyCore(xs, d, false, w3 + eh, d, true, u, h, n, h, d, false, false); // U = Xs·W3ᵀ
            AddRows(u, n, b3 == null ? null : b3 + (long)e * h, h);                         //   + B3[e]
            var us = new ReadOnlySpan<float>(u, n * h);
            if (clamp is { } c) Activations.ClampedSwiGluForward(gs, us, acts, c.Alpha, c.Limit);
            else Activations.SwiGluForward(gs, us, acts);
        }
        else
        {
            Activations.GeluForward(gs, acts);
        }
        Gemm.MultiplyCore(act, h, false, w2 + (long)e * d * h, h, true, ys, d, n, d, h, false, false); // Ys = Act·W2ᵀ
        AddRows(ys, n, b2 == null ? null : b2 + (long)e * d, d);                                      //    + B2[e]
    }

    /// <summary>Adds bias row <paramref name="bias"/> [width] to each of <paramref name="n"/> rows of <paramref name="rows"/>; nothing when null.</summary>
    private static void AddRows(float* rows, int n, float* bias, int width)
    {
        if (bias == null) return;
        var b = new ReadOnlySpan<float>(bias, width);
        for (int r = 0; r < n; r++)
        {
            var row = new Span<float>(rows + (long)r * width, width);
            TensorPrimitives.Add(row, b, row);
        }
    }
}
