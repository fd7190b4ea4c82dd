using MoeSharp.Nn;

namespace MoeSharp.Training;

/// <summary>Linear warm-up to the peak rate, then cosine decay to <see cref="MinLr"/> at <see cref="TotalSteps"/>.</summary>
public sealed record CosineSchedule(float PeakLr, int WarmupSteps, int TotalSteps, float MinLr)
{
    /// <summary>The rate for step <paramref name="step"/> (0-based).</summary>
    public float At(int step)
    {
        if (step < WarmupSteps) return PeakLr * (step + 1) / WarmupSteps;
        if (step >= TotalSteps) return MinLr;
        double progress = (double)(step - WarmupSteps) / Math.Max(1, TotalSteps - WarmupSteps);
        return (float)(MinLr + 0.5 * (1 + Math.Cos(Math.PI * progress)) * (PeakLr - MinLr));
    }
}

/// <summary>Global-norm gradient clipping over every trainable parameter of an arena, as <c>torch.nn.utils.clip_grad_norm_</c>.</summary>
public static class GradientClipping
{
    /// <summary>Scales all gradients so their global L2 norm is at most <paramref name="maxNorm"/>; returns the norm before clipping.</summary>
    public static float ClipGlobalNorm(ParameterArena arena, float maxNorm)
    {
        double sumSq = 0;
        foreach (var p in arena.Parameters)
            if (p.Trainable) sumSq += TensorPrimitives.SumOfSquares(arena.Grads.AsSpan(p.Offset, p.Length));
        float norm = (float)Math.Sqrt(sumSq);
        if (norm > maxNorm && maxNorm > 0)
        {
            float scale = maxNorm / (norm + 1e-6f);
            TensorPrimitives.Multiply(arena.Grads, scale, arena.Grads);
        }
        return norm;
    }
}
