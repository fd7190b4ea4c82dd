
namespace MoeSharp.Kernels;

/// <summary>Row-wise softmax and log-softmax over [rows, cols], shifted by the row maximum so large inputs stay finite.</summary>
internal static class Softmax
{
    /// <summary>y[r,:] = exp(x[r,:] - max) / Σ exp(x[r,:] - max). In place when x and y are the same span.</summary>
    public static void Rows(ReadOnlySpan<float> x, Span<float> y, int cols)
    {
        if (cols == 0) return;
        for (int r = 0; r < x.Length / cols; r++)
        {
            var xr = x.Slice(r * cols, cols);
            var yr = y.Slice(r * cols, cols);
            float max = TensorPrimitives.Max(xr);
            TensorPrimitives.Subtract(xr, max, yr);
            TensorPrimitives.Exp(yr, yr);
            TensorPrimitives.Divide(yr, TensorPrimitives.Sum(yr), yr);
        }
    }

    /// <summary>
    /// y[r,:] = (x[r,:] − max) − log Σ exp(x[r,:] − max). Subtracting the max first keeps the result exact for
    /// large logits, where x − logsumexp(x) would cancel two nearly equal large numbers.
    /// </summary>
    public static void LogRows(ReadOnlySpan<float> x, Span<float> y, int cols)
    {
        if (cols == 0) return;
        for (int r = 0; r < x.Length / cols; r++)
        {
            var yr = y.Slice(r * cols, cols);
            TensorPrimitives.Subtract(x.Slice(r * cols, cols), TensorPrimitives.Max(x.Slice(r * cols, cols)), yr);
            float logSum = ShiftedLogSum(yr, 0f);
            TensorPrimitives.Subtract(yr, logSum, yr);
        }
    }

    /// <summary>log Σ exp(x), computed as max + log Σ exp(x − max).</summary>
    public static float LogSumExp(ReadOnlySpan<float> x)
    {
        float max = x.IsEmpty ? float.NegativeInfinity : TensorPrimitives.Max(x);
        return float.IsNegativeInfinity(max) ? max : max + ShiftedLogSum(x, max);
    }

    /// <summary>log Σ exp(x − max), kept apart from max so callers can subtract max exactly first.</summary>
    internal static float ShiftedLogSum(ReadOnlySpan<float> x, float max)
    {
        float sum = 0;
        // No scratch buffer: the rows here are vocabularies or expert counts.
        foreach (float v in x) sum += MathF.Exp(v - max);
        return MathF.Log(sum);
    }

    /// <summary>Scalar twin of <see cref="Rows"/>, accumulating in double.</summary>
    public static void RowsReference(ReadOnlySpan<float> x, Span<float> y, int cols)
    {
        for (int r = 0; cols > 0 && r < x.Length / cols; r++)
        {
            double max = double.NegativeInfinity, sum = 0;
            for (int j = 0; j < cols; j++) max = Math.Max(max, x[r * cols + j]);
            for (int j = 0; j < cols; j++) sum += Math.Exp(x[r * cols + j] - max);
            for (int j = 0; j < cols; j++) y[r * cols + j] = (float)(Math.Exp(x[r * cols + j] - max) / sum);
        }
    }

    /// <summary>Scalar twin of <see cref="LogRows"/>, accumulating in double.</summary>
    public static void LogRowsReference(ReadOnlySpan<float> x, Span<float> y, int cols)
    {
        for (int r = 0; cols > 0 && r < x.Length / cols; r++)
        {
            double max = double.NegativeInfinity, sum = 0;
            for (int j = 0; j < cols; j++) max = Math.Max(max, x[r * cols + j]);
            for (int j = 0; j < cols; j++) sum += Math.Exp(x[r * cols + j] - max);
            double lse = max + Math.Log(sum);
            for (int j = 0; j < cols; j++) y[r * cols + j] = (float)(x[r * cols + j] - lse);
        }
    }
}
