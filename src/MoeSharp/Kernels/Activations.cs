
namespace MoeSharp.Kernels;

/// <summary>
/// SiLU, GELU (tanh approximation, as GPT-2 and nanoGPT's "gelu_new"), and SwiGLU = silu(a)·b, with backwards that
/// add into their gradients.
/// </summary>
internal static class Activations
{
    private const float GeluC = 0.7978845608028654f; // sqrt(2/π)
    private const float GeluA = 0.044715f;

    /// <summary>y = a·σ(a)·b. <paramref name="y"/> may alias neither input.</summary>
    public static void SwiGluForward(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> y)
    {
        SiluForward(a, y);
        TensorPrimitives.Multiply(y, b, y);
    }

    /// <summary>Elements per vectorised chunk: the chunk's scratch rows live on the stack.</summary>
    private const int Chunk = 512;

    /// <summary>da += dy·b·silu'(a); db += dy·silu(a), with silu'(a) = σ(a)(1 + a(1 − σ(a))).</summary>
    public static void SwiGluBackward(ReadOnlySpan<float> dy, ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> da, Span<float> db)
    {
        Span<float> s = stackalloc float[Chunk]; // [chunk] σ(a)
        Span<float> g = stackalloc float[Chunk]; // [chunk] scratch
        for (int i = 0; i < dy.Length; i += Chunk)
        {
            int n = Math.Min(Chunk, dy.Length - i);
            ReadOnlySpan<float> dyc = dy.Slice(i, n), ac = a.Slice(i, n), bc = b.Slice(i, n);
            Span<float> sc = s[..n], gc = g[..n];
            TensorPrimitives.Sigmoid(ac, sc);
            TensorPrimitives.Multiply(ac, sc, gc);                                  // silu(a)
            TensorPrimitives.MultiplyAdd(dyc, gc, db.Slice(i, n), db.Slice(i, n)); // db += dy·silu(a)
            TensorPrimitives.Subtract(1f, sc, gc);                                  // 1 − σ
            TensorPrimitives.FusedMultiplyAdd(ac, gc, 1f, gc);                       // 1 + a(1 − σ)
            TensorPrimitives.Multiply(gc, sc, gc);                                  // silu'(a)
            TensorPrimitives.Multiply(gc, bc, gc);
            TensorPrimitives.MultiplyAdd(dyc, gc, da.Slice(i, n), da.Slice(i, n)); // da += dy·b·silu'(a)
        }
    }

    /// <summary>
    /// GPT-OSS's clamped SwiGLU: y = (clamp(b, −limit, limit) + 1)·g·σ(α·g), g = min(a, limit). <paramref name="y"/>
    /// may alias neither input.
    /// </summary>
    public static void ClampedSwiGluForward(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> y, float alpha, float limit)
    {
        for (int i = 0; i < a.Length; i++)
        {
            float g = MathF.Min(a[i], limit), u = Math.Clamp(b[i], -limit, limit);
            y[i] = (u + 1) * g / (1 + MathF.Exp(-alpha * g));
        }
    }

    /// <summary>
    /// da += dy·(u + 1)·σ(αg)(1 + αg(1 − σ(αg))) where a &lt; limit (the clamp passes nothing above it);
    /// db += dy·g·σ(αg) where |b| &lt; limit.
    /// </summary>
    public static void ClampedSwiGluBackward(ReadOnlySpan<float> dy, ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> da, Span<float> db,
        float alpha, float limit)
    {
        for (int i = 0; i < dy.Length; i++)
        {
            float g = MathF.Min(a[i], limit), u = Math.Clamp(b[i], -limit, limit);
            float s = 1 / (1 + MathF.Exp(-alpha * g));
            if (a[i] < limit) da[i] += dy[i] * (u + 1) * s * (1 + alpha * g * (1 - s));
            if (Math.Abs(b[i]) < limit) db[i] += dy[i] * g * s;
        }
    }

    /// <summary>y = a·σ(a).</summary>
    public static void SiluForward(ReadOnlySpan<float> a, Span<float> y)
    {
        if (a.IsEmpty) return; // TensorPrimitives rejects empty spans in some ops
        TensorPrimitives.Sigmoid(a, y);
        TensorPrimitives.Multiply(y, a, y);
    }

    /// <summary>
    /// y = ½a(1 + tanh(u)), u = √(2/π)(a + 0.044715a³), evaluated as a·σ(2u): the same value, without the
    /// cancellation 1 + tanh(u) suffers for negative a.
    /// </summary>
    public static void GeluForward(ReadOnlySpan<float> a, Span<float> y)
    {
        Span<float> s = stackalloc float[Chunk]; // [chunk] σ(2u)
        for (int i = 0; i < a.Length; i += Chunk)
        {
            int n = Math.Min(Chunk, a.Length - i);
            ReadOnlySpan<float> ac = a.Slice(i, n);
            Span<float> sc = s[..n];
            GeluGate(ac, sc);
            TensorPrimitives.Multiply(ac, sc, y.Slice(i, n));
        }
    }

    /// <summary>da += dy·(s + 2a·s(1 − s)·u'), s = σ(2u), u' = √(2/π)(1 + 3·0.044715a²).</summary>
    public static void GeluBackward(ReadOnlySpan<float> dy, ReadOnlySpan<float> a, Span<float> da)
    {
        Span<float> s = stackalloc float[Chunk]; // [chunk] σ(2u)
        Span<float> g = stackalloc float[Chunk]; // [chunk] gelu'(a)
        Span<float> h = stackalloc float[Chunk]; // [chunk] 1 − s
        for (int i = 0; i < a.Length; i += Chunk)
        {
            int n = Math.Min(Chunk, a.Length - i);
            ReadOnlySpan<float> ac = a.Slice(i, n);
            Span<float> sc = s[..n], gc = g[..n], hc = h[..n];
            GeluGate(ac, sc);
            TensorPrimitives.Multiply(ac, ac, gc);
            Affine(gc, 6f * GeluA * GeluC, 2f * GeluC); // 2u'
            TensorPrimitives.Multiply(gc, ac, gc);
            TensorPrimitives.Multiply(gc, sc, gc);
            TensorPrimitives.Subtract(1f, sc, hc);
            TensorPrimitives.Multiply(gc, hc, gc);      // 2a·s(1 − s)·u'
            TensorPrimitives.Add(gc, sc, gc);
            TensorPrimitives.MultiplyAdd(dy.Slice(i, n), gc, da.Slice(i, n), da.Slice(i, n));
        }
    }

    /// <summary>x ← c₁x + c₂.</summary>
    private static void Affine(Span<float> x, float c1, float c2)
    {
        TensorPrimitives.Multiply(x, c1, x);
        TensorPrimitives.Add(x, c2, x);
    }

    /// <summary>s = σ(2u) = σ(2√(2/π)(a + 0.044715a³)).</summary>
    private static void GeluGate(ReadOnlySpan<float> a, Span<float> s)
    {
        TensorPrimitives.Multiply(a, a, s);
        Affine(s, 2f * GeluA * GeluC, 2f * GeluC);
        TensorPrimitives.Multiply(s, a, s);
        TensorPrimitives.Sigmoid(s, s);
    }

    /// <summary>Scalar twin of <see cref="SwiGluForward"/> in double.</summary>
    public static void SwiGluReference(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> y)
    {
        for (int i = 0; i < a.Length; i++) y[i] = (float)(a[i] / (1 + Math.Exp(-(double)a[i])) * b[i]);
    }

    /// <summary>Scalar twin of <see cref="ClampedSwiGluForward"/> in double.</summary>
    public static void ClampedSwiGluReference(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> y, float alpha, float limit)
    {
        for (int i = 0; i < a.Length; i++)
        {
            double g = Math.Min(a[i], limit), u = Math.Min(Math.Max(b[i], -limit), limit);
            y[i] = (float)((u + 1) * g / (1 + Math.Exp(-alpha * g)));
        }
    }

    /// <summary>Scalar twin of <see cref="GeluForward"/> in double.</summary>
    public static void GeluReference(ReadOnlySpan<float> a, Span<float> y)
    {
        for (int i = 0; i < a.Length; i++)
        {
            double x = a[i];
            y[i] = (float)(0.5 * x * (1 + Math.Tanh(Math.Sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x))));
        }
    }
}
