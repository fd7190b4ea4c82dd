
namespace MoeSharp.Kernels;

/// <summary>
/// RMSNorm and LayerNorm over the last dimension D of x [N,D]. Forwards save the per-row statistics the backwards
/// need ([N] each); backwards add into dx, dweight and dbias.
/// </summary>
internal static class Norms
{
    /// <summary>y = x · rstd · w, rstd = 1/sqrt(mean(x²) + eps).</summary>
    public static void RmsForward(ReadOnlySpan<float> x, ReadOnlySpan<float> w, Span<float> y, Span<float> rstd, int d, float eps)
    {
        for (int r = 0; r < rstd.Length; r++)
        {
            var xr = x.Slice(r * d, d);
            float s = 1f / MathF.Sqrt(TensorPrimitives.SumOfSquares(xr) / d + eps);
            rstd[r] = s;
            var yr = y.Slice(r * d, d);
            TensorPrimitives.Multiply(xr, s, yr);
            TensorPrimitives.Multiply(yr, w, yr);
        }
    }

    /// <summary>
    /// With x̂ = x·rstd: dw += Σ_rows dy·x̂; dx += rstd·(dy·w − x̂·mean(dy·w·x̂)), or dx = … when not
    /// <paramref name="accumulate"/> (dx's old contents are then never read). <paramref name="scratch"/> holds two rows [2D].
    /// </summary>
    public static void RmsBackward(ReadOnlySpan<float> dy, ReadOnlySpan<float> x, ReadOnlySpan<float> w, ReadOnlySpan<float> rstd,
        Span<float> dx, Span<float> dw, Span<float> scratch, int d, bool accumulate = true)
    {
        var g = scratch[..d];          // [D] dy·w
        var t = scratch.Slice(d, d);   // [D] dy·x
        for (int r = 0; r < rstd.Length; r++)
        {
            var xr = x.Slice(r * d, d);
            var dyr = dy.Slice(r * d, d);
            float s = rstd[r];
            TensorPrimitives.Multiply(dyr, w, g);
            float dot = TensorPrimitives.Dot(g, xr) * s / d; // mean(dy·w·x̂)
            TensorPrimitives.Multiply(dyr, xr, t);
            TensorPrimitives.MultiplyAdd(t, s, dw, dw); // dw += dy·x̂
            // dx += s·(g − x̂·dot) = s·g − x·(s²·dot)
            var dxr = dx.Slice(r * d, d);
            if (accumulate) TensorPrimitives.MultiplyAdd(g, s, dxr, dxr);
            else TensorPrimitives.Multiply(g, s, dxr);
            TensorPrimitives.MultiplyAdd(xr, -(s * s * dot), dxr, dxr);
        }
    }

    /// <summary>y = (x − mean)·rstd·w + b.</summary>
    public static void LayerForward(ReadOnlySpan<float> x, ReadOnlySpan<float> w, ReadOnlySpan<float> b, Span<float> y,
        Span<float> mean, Span<float> rstd, int d, float eps)
    {
        for (int r = 0; r < rstd.Length; r++)
        {
            var xr = x.Slice(r * d, d);
            float m = TensorPrimitives.Sum(xr) / d;
            var yr = y.Slice(r * d, d);
            TensorPrimitives.Subtract(xr, m, yr);
            float s = 1f / MathF.Sqrt(TensorPrimitives.SumOfSquares(yr) / d + eps);
            mean[r] = m;
            rstd[r] = s;
            TensorPrimitives.Multiply(yr, s, yr);
            TensorPrimitives.FusedMultiplyAdd(yr, w, b, yr);
        }
    }

    /// <summary>
    /// With x̂ = (x − mean)·rstd and g = dy·w: dx += rstd·(g − mean(g) − x̂·mean(g·x̂)); dw += Σ dy·x̂; db += Σ dy.
    /// <paramref name="scratch"/> holds two rows [2D].
    /// </summary>
    public static void LayerBackward(ReadOnlySpan<float> dy, ReadOnlySpan<float> x, ReadOnlySpan<float> w, ReadOnlySpan<float> mean,
        ReadOnlySpan<float> rstd, Span<float> dx, Span<float> dw, Span<float> db, Span<float> scratch, int d)
    {
        var g = scratch[..d];       // [D] dy·w
        var xh = scratch.Slice(d, d); // [D] x̂
        for (int r = 0; r < rstd.Length; r++)
        {
            var dyr = dy.Slice(r * d, d);
            TensorPrimitives.Subtract(x.Slice(r * d, d), mean[r], xh);
            TensorPrimitives.Multiply(xh, rstd[r], xh);
            TensorPrimitives.Multiply(dyr, w, g);
            float gMean = TensorPrimitives.Sum(g) / d;
            float gxMean = TensorPrimitives.Dot(g, xh) / d;
            // dx += rstd·g − rstd·gMean − x̂·(rstd·gxMean); dw += dy·x̂; db += dy
            var dxr = dx.Slice(r * d, d);
            TensorPrimitives.MultiplyAdd(g, rstd[r], dxr, dxr);
            TensorPrimitives.Subtract(dxr, rstd[r] * gMean, dxr);
            TensorPrimitives.MultiplyAdd(xh, -rstd[r] * gxMean, dxr, dxr);
            TensorPrimitives.Multiply(dyr, xh, g);
            TensorPrimitives.Add(dw, g, dw);
            TensorPrimitives.Add(db, dyr, db);
        }
    }

    /// <summary>Scalar twin of <see cref="RmsForward"/> in double.</summary>
    public static void RmsForwardReference(ReadOnlySpan<float> x, ReadOnlySpan<float> w, Span<float> y, int d, float eps)
    {
        for (int r = 0; d > 0 && r < x.Length / d; r++)
        {
            double ss = 0;
            for (int j = 0; j < d; j++) ss += (double)x[r * d + j] * x[r * d + j];
            double s = 1 / Math.Sqrt(ss / d + eps);
            for (int j = 0; j < d; j++) y[r * d + j] = (float)(x[r * d + j] * s * w[j]);
        }
    }

    /// <summary>Scalar twin of <see cref="LayerForward"/> in double.</summary>
    public static void LayerForwardReference(ReadOnlySpan<float> x, ReadOnlySpan<float> w, ReadOnlySpan<float> b, Span<float> y, int d, float eps)
    {
        for (int r = 0; d > 0 && r < x.Length / d; r++)
        {
            double m = 0, v = 0;
            for (int j = 0; j < d; j++) m += x[r * d + j];
            m /= d;
            for (int j = 0; j < d; j++) v += (x[r * d + j] - m) * (x[r * d + j] - m);
            double s = 1 / Math.Sqrt(v / d + eps);
            for (int j = 0; j < d; j++) y[r * d + j] = (float)((x[r * d + j] - m) * s * w[j] + b[j]);
        }
    }
}
