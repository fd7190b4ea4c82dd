namespace MoeSharp.Kernels;

/// <summary>
/// The worker-thread setting shared by every kernel. Kernels split work over output tiles or rows, never over a
/// reduction axis, so a run with 1 thread and a run with N threads produce bitwise-identical results.
/// </summary>
public static class Workers
{
    private static int s_threads = Environment.ProcessorCount;
    private static ParallelOptions s_options = new() { MaxDegreeOfParallelism = Environment.ProcessorCount };

    /// <summary>Number of threads kernels may use; defaults to the number of cores.</summary>
    public static int Threads
    {
        get => s_threads;
        set
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, 1, nameof(Threads));
            s_threads = value;
            s_options = new ParallelOptions { MaxDegreeOfParallelism = value };
        }
    }

    /// <summary>
    /// Runs <paramref name="op"/> for every item in [0, count). Items must be independent; each runs exactly once,
    /// on some thread, so per-item results never depend on the thread count.
    /// </summary>
    public static void For<TOp>(int count, TOp op) where TOp : struct, IWorkItem
    {
        if (count <= 0) return;
        if (s_threads == 1 || count == 1)
        {
            // Single-chunk fast path: no delegate, no scheduling.
            for (int i = 0; i < count; i++) op.Invoke(i);
            return;
        }
        Parallel.For(0, count, s_options, i => op.Invoke(i));
    }
}

/// <summary>One unit of parallel work; implemented by small structs so hot loops stay free of closures.</summary>
public interface IWorkItem
{
    void Invoke(int index);
}
