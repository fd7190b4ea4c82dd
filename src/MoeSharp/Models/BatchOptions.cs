namespace MoeSharp.Models;

/// <summary>How a <see cref="BatchGenerator"/> shares the model between requests.</summary>
public sealed record BatchOptions
{
    /// <summary>Sequences decoded together in one forward pass; further admitted requests wait in the queue.</summary>
    public int MaxBatch { get; init; } = 16;

    /// <summary>Requests that may wait for a slot; one more makes <see cref="BatchGenerator.Generate"/> throw <see cref="QueueFullException"/>.</summary>
    public int MaxQueue { get; init; } = 64;

    /// <summary>
    /// Bytes the running requests' KV caches may take together. A request is admitted only when its cache (prompt
    /// plus generated tokens, within the context) fits beside the running ones; one whose cache alone exceeds the
    /// budget is refused at once.
    /// </summary>
    public long KvBudgetBytes { get; init; } = 1L << 30;

    /// <summary>Worker threads for the forward passes (each request's <see cref="SamplingOptions.Threads"/> is not used).</summary>
    public int Threads { get; init; } = Environment.ProcessorCount;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first field out of range.</summary>
    public void Validate()
    {
        if (MaxBatch < 1) throw new ArgumentException($"MaxBatch must be at least 1, got {MaxBatch}.", nameof(MaxBatch));
        if (MaxQueue < 0) throw new ArgumentException($"MaxQueue must be non-negative, got {MaxQueue}.", nameof(MaxQueue));
        if (KvBudgetBytes < 1) throw new ArgumentException($"KvBudgetBytes must be positive, got {KvBudgetBytes}.", nameof(KvBudgetBytes));
        if (Threads < 1) throw new ArgumentException($"Threads must be at least 1, got {Threads}.", nameof(Threads));
    }
}

/// <summary>A snapshot of a <see cref="BatchGenerator"/>'s work.</summary>
/// <param name="Queued">Requests waiting for a slot.</param>
/// <param name="Running">Requests holding a slot and a KV cache.</param>
/// <param name="LastBatchSize">Sequences in the last forward pass.</param>
/// <param name="TokensGenerated">Tokens produced since the generator started.</param>
/// <param name="Steps">Forward passes run since the generator started.</param>
/// <param name="KvBytes">Bytes the running requests' KV caches take.</param>
public sealed record BatchStats(int Queued, int Running, int LastBatchSize, long TokensGenerated, long Steps, long KvBytes);

/// <summary>Thrown by <see cref="BatchGenerator.Generate"/> when <see cref="BatchOptions.MaxQueue"/> requests already wait.</summary>
public sealed class QueueFullException(string message) : InvalidOperationException(message);
