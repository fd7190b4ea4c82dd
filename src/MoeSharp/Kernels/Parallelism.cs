namespace MoeSharp.Kernels;

/// <summary>
/// The public handle on how many threads the library's parallel loops may use. The options records of the trainer,
/// the evaluator and the generator carry their own <c>Threads</c>; this is for everything else a program calls (a
/// bare forward pass, the classic mixtures, a benchmark). Results are bitwise the same for any count, because the
/// loops split work over output rows or tiles, never over a reduction.
/// </summary>
public static class Parallelism
{
    /// <summary>
    /// Caps the threads of every parallel loop started in this flow (this thread and the tasks it starts) until the
    /// returned scope is disposed. Scopes nest, and disposing one restores the limit before it; other threads and
    /// flows keep their own limit. A count above the number of cores is honoured.
    /// </summary>
    /// <param name="threads">Threads a loop may use, the caller's included; at least 1.</param>
    public static ThreadLimit Limit(int threads) => new(Workers.Limit(threads));

    /// <summary>Threads a parallel loop started here may use now: the innermost <see cref="Limit"/>, else the number of cores.</summary>
    public static int Threads => Workers.Threads;
}

/// <summary>A thread limit in force until it is disposed (<see cref="Parallelism.Limit"/>).</summary>
public readonly struct ThreadLimit : IDisposable
{
    private readonly Workers.LimitScope _scope;

    internal ThreadLimit(Workers.LimitScope scope) => _scope = scope;

    /// <summary>Restores the limit that was in force before this one.</summary>
    public void Dispose() => _scope.Dispose();
}
