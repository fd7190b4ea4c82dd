using System.Buffers;
using System.Numerics;

namespace MoeSharp.Kernels;

/// <summary>
/// RMSNorm and LayerNorm over the last dimension D of x [N,D]. Forwards save the per-row statistics the backwards
/// need ([N] each); backwards add into dx, dweight and dbias.
/// </summary>
internal static unsafe class Norms
{
    /// <summary>Elements below which a norm runs on the calling thread: a hand-off would cost more than the rows.</summary>
    private const int ParallelElements = 1 << 15;

    /// <summary>Rows per work item of the row-parallel passes.</summary>
    private const int RowsPerItem = 64;

    /// <summary>Columns per work item of dw's column pass: two 64-byte lines of each row.</summary>
    private const int ColumnsPerItem = 32;

    /// <summary>
    /// y = x · rstd · w, rstd = 1/sqrt(mean(x²) + eps). Rows are independent, so large inputs split over threads in
    /// row blocks without changing a bit.
    /// </summary>
    public static void RmsForward(ReadOnlySpan<float> x, ReadOnlySpan<float> w, Span<float> y, Span<float> rstd, int d, float eps)
    {
        int rows = rstd.Length;
        if ((long)rows * d < ParallelElements)
        {
            RmsForwardRows(x, w, y, rstd, d, eps, 0, rows);
            return;
        }
        fixed (float* px = x, pw = w, py = y, ps = rstd)
            Workers.For((rows + RowsPerItem - 1) / RowsPerItem, new RmsForwardItem(px, pw, py, ps, rows, d, eps));
    }

    private static void RmsForwardRows(ReadOnlySpan<float> x, ReadOnlySpan<float> w, Span<float> y, Span<float> rstd, int d, float eps, int from, int to)
    {
        for (int r = from; r < to; r++)
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
    /// <paramref name="accumulate"/> (dx's old contents are then never read). <paramref name="scratch"/> holds two rows [2D]
    /// for the serial path. Large inputs split dx over row blocks and dw over column blocks, each dw element still
    /// summed over the rows in order with the serial path's roundings, so every thread count gives the same bits.
    /// </summary>
    public static void RmsBackward(ReadOnlySpan<float> dy, ReadOnlySpan<float> x, ReadOnlySpan<float> w, ReadOnlySpan<float> rstd,
        Span<float> dx, Span<float> dw, Span<float> scratch, int d, bool accumulate = true)
    {
        int rows = rstd.Length;
        if ((long)rows * d < ParallelElements)
        {
            var g = scratch[..d];          // [D] dy·w
            RmsBackwardRows(dy, x, w, rstd, dx, g, d, accumulate, 0, rows);
            RmsWeightGradient(dy, x, rstd, dw, d, 0, d);
            return;
        }
        fixed (float* pdy = dy, px = x, pw = w, ps = rstd, pdx = dx, pdw = dw)
        {
            Workers.For((rows + RowsPerItem - 1) / RowsPerItem, new RmsBackwardItem(pdy, px, pw, ps, pdx, rows, d, accumulate));
            Workers.For((d + ColumnsPerItem - 1) / ColumnsPerItem, new RmsWeightItem(pdy, px, ps, pdw, rows, d));
        }
    }

    /// <summary>dx rows [from, to); <paramref name="g"/> [D] is scratch.</summary>
    private static void RmsBackwardRows(ReadOnlySpan<float> dy, ReadOnlySpan<float> x, ReadOnlySpan<float> w, ReadOnlySpan<float> rstd,
        Span<float> dx, Span<float> g, int d, bool accumulate, int from, int to)
    {
        for (int r = from; r < to; r++)
        {
            var xr = x.Slice(r * d, d);
            var dyr = dy.Slice(r * d, d);
            float s = rstd[r];
            TensorPrimitives.Multiply(dyr, w, g);
            float dot = TensorPrimitives.Dot(g, xr) * s / d; // mean(dy·w·x̂)
            // dx += s·(g − x̂·dot) = s·g − x·(s²·dot)
            var dxr = dx.Slice(r * d, d);
            if (accumulate) TensorPrimitives.MultiplyAdd(g, s, dxr, dxr);
            else TensorPrimitives.Multiply(g, s, dxr);
            TensorPrimitives.MultiplyAdd(xr, -(s * s * dot), dxr, dxr);
        }
    }

    /// <summary>
    /// dw[c] += Σ_r (dy[r,c]·x[r,c])·rstd[r] for columns [from, to), rows in order, each step two products then a sum
    /// (TensorPrimitives.MultiplyAdd's roundings, which the row-at-a-time form used); a vector of dw stays in a
    /// register over all rows.
    /// </summary>
    private static void RmsWeightGradient(ReadOnlySpan<float> dy, ReadOnlySpan<float> x, ReadOnlySpan<float> rstd, Span<float> dw,
        int d, int from, int to)
    {
        int rows = rstd.Length, c = from;
        for (; c <= to - Vector<float>.Count; c += Vector<float>.Count)
        {
            var acc = new Vector<float>(dw.Slice(c));
            for (int r = 0; r < rows; r++)
                acc = new Vector<float>(dy.Slice(r * d + c)) * new Vector<float>(x.Slice(r * d + c)) * rstd[r] + acc;
            acc.CopyTo(dw.Slice(c));
        }
        for (; c < to; c++)
        {
            float acc = dw[c];
            for (int r = 0; r < rows; r++) acc = dy[r * d + c] * x[r * d + c] * rstd[r] + acc;
            dw[c] = acc;
        }
    }

    private readonly struct RmsForwardItem(float* x, float* w, float* y, float* rstd, int rows, int d, float eps) : IWorkItem
    {
        public void Invoke(int index)
        {
            int from = index * RowsPerItem, to = Math.Min(rows, from + RowsPerItem);
            RmsForwardRows(new ReadOnlySpan<float>(x, rows * d), new ReadOnlySpan<float>(w, d), new Span<float>(y, rows * d),
                new Span<float>(rstd, rows), d, eps, from, to);
        }
    }

    private readonly struct RmsBackwardItem(float* dy, float* x, float* w, float* rstd, float* dx, int rows, int d, bool accumulate) : IWorkItem
    {
        public void Invoke(int index)
        {
            int from = index * RowsPerItem, to = Math.Min(rows, from + RowsPerItem);
            float[] g = ArrayPool<float>.Shared.Rent(d); // [D] dy·w
            RmsBackwardRows(new ReadOnlySpan<float>(dy, rows * d), new ReadOnlySpan<float>(x, rows * d), new ReadOnlySpan<float>(w, d),
                new ReadOnlySpan<float>(rstd, rows), new Span<float>(dx, rows * d), g.AsSpan(0, d), d, accumulate, from, to);
            ArrayPool<float>.Shared.Return(g);
        }
    }

    private readonly struct RmsWeightItem(float* dy, float* x, float* rstd, float* dw, int rows, int d) : IWorkItem
    {
        public void Invoke(int index)
        {
            int from = index * ColumnsPerItem, to = Math.Min(d, from + ColumnsPerItem);
            RmsWeightGradient(new ReadOnlySpan<float>(dy, rows * d), new ReadOnlySpan<float>(x, rows * d), new ReadOnlySpan<float>(rstd, rows),
                new Span<float>(dw, d), d, from, to);
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
