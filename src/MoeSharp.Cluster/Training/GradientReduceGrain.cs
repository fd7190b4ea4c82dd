using System.Numerics.Tensors;

namespace MoeSharp.Cluster.Training;

/// <summary>
/// The all-reduce of a data-parallel group's dense gradients, one grain per training run: each worker contributes its
/// gradients for a step, then each fetches their sum, taken in worker order so every worker and every run gets the
/// same bits whatever order the contributions arrived in.
/// </summary>
/// <remarks>Dimensions: G the dense (trainable, replicated) gradient elements.</remarks>
public interface IGradientReduceGrain : IGrainWithGuidKey
{
    /// <summary>Worker <paramref name="worker"/> of <paramref name="workers"/> adds its gradients [G] for step <paramref name="step"/>.</summary>
    Task Contribute(long step, int worker, int workers, float[] gradients);

    /// <summary>[G] Σ over the workers, in worker order, of their gradients for <paramref name="step"/>; every worker must have contributed.</summary>
    Task<float[]> Sum(long step);
}

/// <inheritdoc cref="IGradientReduceGrain"/>
public sealed class GradientReduceGrain : Grain, IGradientReduceGrain
{
    private long _step = -1;
    private float[]?[] _parts = [];
    private float[]? _sum;

    /// <inheritdoc/>
    public Task Contribute(long step, int worker, int workers, float[] gradients)
    {
        if (workers < 1 || worker < 0 || worker >= workers)
            throw new ArgumentException($"Gradient reduce: worker {worker} of {workers}; expected 0 ≤ worker < workers.");
        if (step != _step)
        {
            if (step < _step) throw new ArgumentException($"Gradient reduce: worker {worker} contributed to step {step} after step {_step} began.");
            _step = step;
            _parts = new float[workers][];
            _sum = null;
        }
        if (_parts.Length != workers)
            throw new ArgumentException($"Gradient reduce: worker {worker} says step {step} has {workers} workers; the first contribution said {_parts.Length}.");
        if (_parts[worker] is not null) throw new ArgumentException($"Gradient reduce: worker {worker} contributed to step {step} twice.");
        if (_parts[0] is { } first && first.Length != gradients.Length)
            throw new ArgumentException($"Gradient reduce: worker {worker} sent {gradients.Length} gradients for step {step}; worker 0 sent {first.Length}.");
        _parts[worker] = gradients;
        return Task.CompletedTask;
    }

    /// <inheritdoc/>
    public Task<float[]> Sum(long step)
    {
        if (step != _step) throw new ArgumentException($"Gradient reduce: the sum of step {step} was asked for; the contributions are for step {_step}.");
        if (_sum is null)
        {
            for (int w = 0; w < _parts.Length; w++)
                if (_parts[w] is null) throw new InvalidOperationException($"Gradient reduce: worker {w} has not contributed to step {step}.");
            var sum = (float[])_parts[0]!.Clone(); // [G]
            for (int w = 1; w < _parts.Length; w++) TensorPrimitives.Add(sum, _parts[w]!, sum);
            _sum = sum;
        }
        return Task.FromResult(_sum);
    }
}
