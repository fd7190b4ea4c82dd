using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace MoeSharp.Kernels;

/// <summary>
/// The per-step constants of one AdamW update (the optimizer in the modules layer): moment decays β₁, β₂ and their complements,
/// 1/√(1−β₂ᵗ), ε, the step lr/(1−β₁ᵗ) and the decay factor keep = 1 − lr·λ (1 for parameters without decay).
/// </summary>
internal readonly record struct AdamWStep(float Beta1, float Beta2, float Eps, float StepSize, float InvSqrtBc2, float Keep);

/// <summary>
/// One fused pass of AdamW over flat spans: p, m and v are read and written once per element instead of once per
/// elementwise op. Every element is computed with exactly the roundings of the op-by-op composition
/// m ← m·β₁ + g·(1−β₁); v ← v·β₂ + g²·(1−β₂); p ← fma(p, keep, −step·m/(√v·(1/√bc₂) + ε)), unfused products and sums
/// except the last, so the fused pass, its scalar twin and that composition agree bitwise, on every vector path.
/// </summary>
internal static class AdamWUpdate
{
    /// <summary>Updates p, m, v in place from g.</summary>
    public static void Apply(Span<float> p, ReadOnlySpan<float> g, Span<float> m, Span<float> v, in AdamWStep s)
    {
        int n = p.Length;
        if (g.Length != n || m.Length != n || v.Length != n)
            throw new ArgumentException($"AdamW: parameter ({n}), gradient ({g.Length}) and moments ({m.Length}, {v.Length}) differ in length.");
        ref float rp = ref MemoryMarshal.GetReference(p);
        ref float rg = ref MemoryMarshal.GetReference(g);
        ref float rm = ref MemoryMarshal.GetReference(m);
        ref float rv = ref MemoryMarshal.GetReference(v);
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
            for (; i <= n - Vector512<float>.Count; i += Vector512<float>.Count)
                Step512(ref Unsafe.Add(ref rp, i), ref Unsafe.Add(ref rg, i), ref Unsafe.Add(ref rm, i), ref Unsafe.Add(ref rv, i), s);
        if (Vector256.IsHardwareAccelerated)
            for (; i <= n - Vector256<float>.Count; i += Vector256<float>.Count)
                Step256(ref Unsafe.Add(ref rp, i), ref Unsafe.Add(ref rg, i), ref Unsafe.Add(ref rm, i), ref Unsafe.Add(ref rv, i), s);
        // The tail (and the whole span without vector units) runs the scalar twin, which rounds lane by lane alike.
        Reference(p[i..], g[i..], m[i..], v[i..], s);
    }

    /// <summary>The scalar twin, element by element with the same roundings as the vector paths.</summary>
    public static void Reference(Span<float> p, ReadOnlySpan<float> g, Span<float> m, Span<float> v, in AdamWStep s)
    {
        float c1 = 1 - s.Beta1, c2 = 1 - s.Beta2;
        for (int i = 0; i < p.Length; i++)
        {
            float gi = g[i];
            float mi = gi * c1 + m[i] * s.Beta1;
            float vi = gi * gi * c2 + v[i] * s.Beta2;
            m[i] = mi;
            v[i] = vi;
            float denom = MathF.Sqrt(vi) * s.InvSqrtBc2 + s.Eps;
            p[i] = MathF.FusedMultiplyAdd(p[i], s.Keep, mi / denom * -s.StepSize);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Step512(ref float p, ref float g, ref float m, ref float v, in AdamWStep s)
    {
        var gi = Vector512.LoadUnsafe(ref g);
        var mi = gi * (1 - s.Beta1) + Vector512.LoadUnsafe(ref m) * s.Beta1;
        var vi = gi * gi * (1 - s.Beta2) + Vector512.LoadUnsafe(ref v) * s.Beta2;
        mi.StoreUnsafe(ref m);
        vi.StoreUnsafe(ref v);
        var denom = Vector512.Sqrt(vi) * s.InvSqrtBc2 + Vector512.Create(s.Eps);
        var pi = Vector512.LoadUnsafe(ref p);
        Vector512.FusedMultiplyAdd(pi, Vector512.Create(s.Keep), mi / denom * -s.StepSize).StoreUnsafe(ref p);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Step256(ref float p, ref float g, ref float m, ref float v, in AdamWStep s)
    {
        var gi = Vector256.LoadUnsafe(ref g);
        var mi = gi * (1 - s.Beta1) + Vector256.LoadUnsafe(ref m) * s.Beta1;
        var vi = gi * gi * (1 - s.Beta2) + Vector256.LoadUnsafe(ref v) * s.Beta2;
        mi.StoreUnsafe(ref m);
        vi.StoreUnsafe(ref v);
        var denom = Vector256.Sqrt(vi) * s.InvSqrtBc2 + Vector256.Create(s.Eps);
        var pi = Vector256.LoadUnsafe(ref p);
        Vector256.FusedMultiplyAdd(pi, Vector256.Create(s.Keep), mi / denom * -s.StepSize).StoreUnsafe(ref p);
    }
}
