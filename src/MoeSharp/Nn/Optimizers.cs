using MoeSharp.Kernels;

namespace MoeSharp.Nn;

/// <summary>Updates an arena's trainable parameters from its gradients, walking the flat buffers.</summary>
public interface IOptimizer
{
    /// <summary>One update at learning rate <paramref name="lr"/>.</summary>
    void Step(float lr);

    /// <summary>Moment buffers, aligned with the arena, for checkpoints.</summary>
    IReadOnlyList<float[]> State { get; }

    /// <summary>Number of steps taken (bias correction depends on it).</summary>
    long Steps { get; set; }
}

/// <summary>
/// AdamW with decoupled weight decay, with PyTorch's semantics:
/// p ← p·(1 − lr·λ); m ← β₁m + (1−β₁)g; v ← β₂v + (1−β₂)g²;
/// p ← p − lr/(1−β₁ᵗ) · m / (√v/√(1−β₂ᵗ) + ε).
/// </summary>
public sealed class AdamW : IOptimizer
{
    private readonly ParameterArena _arena;
    private readonly float[] _m, _v; // [total] first and second moments
    private readonly bool[] _decay;  // per parameter
    private readonly Segment[] _chunks; // the trainable parameters cut into work items, refilled each step

    /// <param name="decayAll">Decay every parameter (as torch.optim.AdamW over model.parameters()); otherwise only matrices, as nanoGPT does.</param>
    public AdamW(ParameterArena arena, float beta1 = 0.9f, float beta2 = 0.999f, float eps = 1e-8f, float weightDecay = 0.1f, bool decayAll = false)
    {
        if (!arena.IsBuilt) throw new InvalidOperationException("Build the parameter arena before creating its optimizer.");
        if (beta1 is < 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(beta1), $"beta1 must be in [0,1), got {beta1}.");
        if (beta2 is < 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(beta2), $"beta2 must be in [0,1), got {beta2}.");
        _arena = arena;
        Beta1 = beta1;
        Beta2 = beta2;
        Eps = eps;
        WeightDecay = weightDecay;
        _m = new float[arena.Length];
        _v = new float[arena.Length];
        _decay = arena.Parameters.Select(p => decayAll || p.Shape.Length >= 2).ToArray();
        int chunks = 0;
        foreach (var p in arena.Parameters) chunks += (p.Length + Chunk - 1) / Chunk;
        _chunks = new Segment[chunks];
    }

    /// <summary>First-moment decay β₁.</summary>
    public float Beta1 { get; }
    /// <summary>Second-moment decay β₂.</summary>
    public float Beta2 { get; }
    /// <summary>ε added to √v̂ in the denominator.</summary>
    public float Eps { get; }
    /// <summary>Decoupled weight decay λ, applied as p·(1 − lr·λ) to matrices (or to every parameter with decayAll).</summary>
    public float WeightDecay { get; }
    /// <inheritdoc/>
    public long Steps { get; set; }
    /// <inheritdoc/>
    public IReadOnlyList<float[]> State => [_m, _v];

    /// <summary>[total] first moments, aligned with the arena (for checkpoints).</summary>
    public float[] FirstMoment => _m;

    /// <summary>[total] second moments, aligned with the arena (for checkpoints).</summary>
    public float[] SecondMoment => _v;

    /// <inheritdoc/>
    public void Step(float lr)
    {
        Steps++;
        double bc1 = 1 - Math.Pow(Beta1, Steps), bc2 = 1 - Math.Pow(Beta2, Steps);
        float stepSize = (float)(lr / bc1), sqrtBc2 = (float)Math.Sqrt(bc2);
        var decayed = new AdamWStep(Beta1, Beta2, Eps, stepSize, 1 / sqrtBc2, 1 - lr * WeightDecay);
        var plain = decayed with { Keep = 1 };
        var values = _arena.Values;
        var grads = _arena.Grads;
        var parameters = _arena.Parameters;
        int chunks = 0;
        for (int pi = 0; pi < parameters.Count; pi++)
        {
            var p = parameters[pi];
            if (!p.Trainable) continue;
            for (int at = 0; at < p.Length; at += Chunk)
                _chunks[chunks++] = new Segment(p.Offset + at, Math.Min(Chunk, p.Length - at), _decay[pi]);
        }
        // Elementwise, so the split over threads cannot change a single bit.
        Workers.For(chunks, new UpdateItem(values, grads, _m, _v, _chunks, decayed, plain));
    }

    /// <summary>Elements per work item: four 64 KiB streams (p, g, m, v), a few hundred items for a small LM.</summary>
    private const int Chunk = 16384;

    private readonly record struct Segment(int Offset, int Length, bool Decay);

    private readonly struct UpdateItem(float[] values, float[] grads, float[] m, float[] v, Segment[] chunks, AdamWStep decayed, AdamWStep plain) : IWorkItem
    {
        public void Invoke(int index)
        {
            var c = chunks[index];
            AdamWUpdate.Apply(values.AsSpan(c.Offset, c.Length), grads.AsSpan(c.Offset, c.Length), m.AsSpan(c.Offset, c.Length),
                v.AsSpan(c.Offset, c.Length), c.Decay ? decayed : plain);
        }
    }
}

/// <summary>SGD with momentum and L2 weight decay, PyTorch semantics: b ← μb + (g + λp); p ← p − lr·b.</summary>
public sealed class Sgd : IOptimizer
{
    private readonly ParameterArena _arena;
    private readonly float[] _buffer; // [total] momentum

    /// <summary>Plain SGD over the trainable parameters of a built <paramref name="arena"/>; <paramref name="momentum"/> in [0, 1).</summary>
    public Sgd(ParameterArena arena, float momentum = 0.9f, float weightDecay = 0f)
    {
        if (!arena.IsBuilt) throw new InvalidOperationException("Build the parameter arena before creating its optimizer.");
        if (momentum is < 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(momentum), $"momentum must be in [0,1), got {momentum}.");
        _arena = arena;
        Momentum = momentum;
        WeightDecay = weightDecay;
        _buffer = new float[arena.Length];
    }

    /// <summary>Momentum μ: the share of the previous update kept.</summary>
    public float Momentum { get; }
    /// <summary>L2 weight decay λ, added to the gradient as λp.</summary>
    public float WeightDecay { get; }
    /// <inheritdoc/>
    public long Steps { get; set; }
    /// <inheritdoc/>
    public IReadOnlyList<float[]> State => [_buffer];

    /// <inheritdoc/>
    public void Step(float lr)
    {
        bool first = Steps++ == 0;
        var values = _arena.Values;
        var grads = _arena.Grads;
        foreach (var p in _arena.Parameters)
        {
            if (!p.Trainable) continue;
            for (int i = p.Offset, end = p.Offset + p.Length; i < end; i++)
            {
                float g = grads[i] + WeightDecay * values[i];
                // PyTorch starts the momentum buffer at the first gradient rather than at zero.
                float b = _buffer[i] = first ? g : Momentum * _buffer[i] + g;
                values[i] -= lr * b;
            }
        }
    }
}
