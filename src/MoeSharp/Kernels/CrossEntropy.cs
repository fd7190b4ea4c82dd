
namespace MoeSharp.Kernels;

/// <summary>
/// Mean cross-entropy of logits [N,V] against integer targets [N], fused with the softmax. Rows whose target equals
/// the ignore index count neither in the sum nor in the mean.
/// </summary>
internal static class CrossEntropy
{
    /// <summary>Returns the mean loss; fills <paramref name="lse"/> [N] with each row's logsumexp for the backward.</summary>
    public static float Forward(ReadOnlySpan<float> logits, ReadOnlySpan<int> targets, int vocab, Span<float> lse, int ignoreIndex = -100)
    {
        double total = 0;
        int counted = 0;
        for (int r = 0; r < targets.Length; r++)
        {
            var row = logits.Slice(r * vocab, vocab);
            float max = TensorPrimitives.Max(row), logSum = Softmax.ShiftedLogSum(row, max);
            lse[r] = max + logSum;
            int t = targets[r];
            if (t == ignoreIndex) continue;
            if ((uint)t >= (uint)vocab)
                throw new ArgumentOutOfRangeException(nameof(targets), $"Target {t} at row {r} is outside the vocabulary [0, {vocab}).");
            // (max − x_t) + log Σ exp(x − max): no cancellation between two large numbers.
            total += (max - row[t]) + logSum;
            counted++;
        }
        return counted == 0 ? 0f : (float)(total / counted);
    }

    /// <summary>dlogits += scale · (softmax(logits) - onehot(target)) / counted, for rows that are not ignored.</summary>
    public static void Backward(ReadOnlySpan<float> logits, ReadOnlySpan<int> targets, int vocab, ReadOnlySpan<float> lse,
        float dloss, Span<float> dlogits, int ignoreIndex = -100)
    {
        int counted = 0;
        foreach (int t in targets) if (t != ignoreIndex) counted++;
        if (counted == 0) return;
        float scale = dloss / counted;
        for (int r = 0; r < targets.Length; r++)
        {
            int t = targets[r];
            if (t == ignoreIndex) continue;
            var row = logits.Slice(r * vocab, vocab);
            var drow = dlogits.Slice(r * vocab, vocab);
            for (int j = 0; j < vocab; j++) drow[j] += scale * MathF.Exp(row[j] - lse[r]);
            drow[t] -= scale;
        }
    }

    /// <summary>Scalar twin of <see cref="Forward"/> via a double-precision log-softmax.</summary>
    public static float ForwardReference(ReadOnlySpan<float> logits, ReadOnlySpan<int> targets, int vocab, int ignoreIndex = -100)
    {
        double total = 0;
        int counted = 0;
        var logp = new float[vocab];
        for (int r = 0; r < targets.Length; r++)
        {
            if (targets[r] == ignoreIndex) continue;
            Softmax.LogRowsReference(logits.Slice(r * vocab, vocab), logp, vocab);
            total -= logp[targets[r]];
            counted++;
        }
        return counted == 0 ? 0f : (float)(total / counted);
    }
}
