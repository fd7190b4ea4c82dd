
namespace MoeSharp.Kernels;

/// <summary>
/// SiLU, GELU (tanh approximation, as GPT-2 and nanoGPT's "gelu_new"), and SwiGLU = silu(a)·b, with backwards that
/// add into their gradients.
/// </summary>
public static class Activations
{
    private const float GeluC = 0.7978845608028654f; // sqrt(2/π)
    private const float GeluA = 0.044715f;

    /// <summary>y = a·σ(a)·b. <paramref name="y"/> may alias neither input.</summary>
    public static void SwiGluForward(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> y)
    {
        SiluForward(a, y);
        TensorPrimitives.Multiply(y, b, y);
    }

    /// <summary>da += dy·b·silu'(a); db += dy·silu(a), with silu'(a) = σ(a)(1 + a(1 − σ(a))).</summary>
    public static void SwiGluBackward(ReadOnlySpan<float> dy, ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> da, Span<float> db)
    {
        for (int i = 0; i < dy.Length; i++)
        {
            float s = 1f / (1f + MathF.Exp(-a[i]));
            float silu = a[i] * s;
            da[i] += dy[i] * b[i] * s * (1f + a[i] * (1f - s));
            db[i] += dy[i] * silu;
        }
    }

    /// <summary>y = a·σ(a).</summary>
    public static void SiluForward(ReadOnlySpan<float> a, Span<float> y)
    {
        if (a.IsEmpty) return; // TensorPrimitives rejects empty spans in some ops
        TensorPrimitives.Sigmoid(a, y);
        TensorPrimitives.Multiply(y, a, y);
    }

    /// <summary>da += dy·σ(a)(1 + a(1 − σ(a))).</summary>
    public static void SiluBackward(ReadOnlySpan<float> dy, ReadOnlySpan<float> a, Span<float> da)
    {
        for (int i = 0; i < dy.Length; i++)
        {
            float s = 1f / (1f + MathF.Exp(-a[i]));
            da[i] += dy[i] * s * (1f + a[i] * (1f - s));
        }
    }

    /// <summary>y = ½a(1 + tanh(√(2/π)(a + 0.044715a³))).</summary>
    public static void GeluForward(ReadOnlySpan<float> a, Span<float> y)
    {
        for (int i = 0; i < a.Length; i++)
        {
            float x = a[i];
            y[i] = 0.5f * x * (1f + MathF.Tanh(GeluC * (x + GeluA * x * x * x)));
        }
    }

    /// <summary>da += dy·gelu'(a).</summary>
    public static void GeluBackward(ReadOnlySpan<float> dy, ReadOnlySpan<float> a, Span<float> da)
    {
        for (int i = 0; i < dy.Length; i++)
        {
            float x = a[i];
            float u = GeluC * (x + GeluA * x * x * x);
            float t = MathF.Tanh(u);
            float du = GeluC * (1f + 3f * GeluA * x * x);
            da[i] += dy[i] * (0.5f * (1f + t) + 0.5f * x * (1f - t * t) * du);
        }
    }

    /// <summary>Scalar twin of <see cref="SwiGluForward"/> in double.</summary>
    public static void SwiGluReference(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> y)
    {
        for (int i = 0; i < a.Length; i++) y[i] = (float)(a[i] / (1 + Math.Exp(-(double)a[i])) * b[i]);
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
