using System.Diagnostics;

namespace MoeSharp.Kernels;

/// <summary>
/// The pool that runs the kernels' parallel loops, and the scoped limit on how many threads a loop may use. Kernels
/// split work over output tiles or rows, never over a reduction axis, so a run with 1 thread and a run with N threads
/// produce bitwise-identical results.
/// </summary>
/// <remarks>
/// The limit is ambient per logical flow (an <see cref="AsyncLocal{T}"/>), not process-wide, so two callers with
/// different limits (two trainers, a test next to a command) never change each other's thread count.
/// A training step issues hundreds of parallel loops of tens of microseconds each, so dispatch latency matters
/// more than anything: the pool's threads spin briefly after each loop and pick up the next one within about a
/// microsecond, then sleep on a semaphore when idle. A loop started while another is running (from a work item, or
/// from a second caller thread) runs serially on its own thread instead of waiting.
/// </remarks>
internal static class Workers
{
    private static readonly Pool s_pool = new(Environment.ProcessorCount);
    private static readonly AsyncLocal<int> s_limit = new(); // 0: no limit in this flow

    /// <summary>Threads a parallel loop started here may use, the caller's included: the innermost <see cref="Limit"/>, else the number of cores.</summary>
    public static int Threads => s_limit.Value is > 0 and int n ? n : Environment.ProcessorCount;

    /// <summary>
    /// Caps the threads of the parallel loops started in this flow (this thread and the tasks it starts) until the
    /// returned scope is disposed; scopes nest and restore the previous limit. A limit above the core count is
    /// honoured by adding pool threads.
    /// </summary>
    public static LimitScope Limit(int threads)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(threads, 1, nameof(threads));
        s_pool.EnsureThreads(threads);
        int previous = s_limit.Value;
        s_limit.Value = threads;
        return new LimitScope(previous);
    }

    /// <summary>Restores the limit that was in force before <see cref="Limit"/>.</summary>
    public readonly struct LimitScope : IDisposable
    {
        private readonly int _previous;

        internal LimitScope(int previous) => _previous = previous;

        public void Dispose() => s_limit.Value = _previous;
    }

    /// <summary>
    /// Runs <paramref name="op"/> for every item in [0, count). Items must be independent; each runs exactly once,
    /// on some thread, so per-item results never depend on the thread count.
    /// </summary>
    public static void For<TOp>(int count, TOp op) where TOp : struct, IWorkItem
    {
        if (count <= 0) return;
        int threads = Threads;
        var pool = s_pool;
        if (threads == 1 || count == 1 || !pool.TryEnter())
        {
            // Serial path: one thread, one item, or the pool is busy (nested or concurrent loop).
            for (int i = 0; i < count; i++) op.Invoke(i);
            return;
        }
        try
        {
            pool.Run(new Job<TOp>(op, count, helpers: threads - 1));
        }
        finally
        {
            pool.Exit();
        }
    }

    private abstract class JobBase(int count, int helpers)
    {
        private int _next, _done, _helpers = helpers;
        private Exception? _error;

        public bool Finished => Volatile.Read(ref _done) >= count;

        /// <summary>Whether a pool thread may help: the limit counts the caller, so at most threads − 1 join.</summary>
        public bool TryJoin() => Interlocked.Decrement(ref _helpers) >= 0;

        /// <summary>Claims and runs items until none are left.</summary>
        public void Work()
        {
            for (int i = Interlocked.Increment(ref _next) - 1; i < count; i = Interlocked.Increment(ref _next) - 1)
            {
                try { Invoke(i); }
                catch (Exception ex) { Interlocked.CompareExchange(ref _error, ex, null); }
                Interlocked.Increment(ref _done);
            }
        }

        public void ThrowIfFailed()
        {
            if (_error is not null) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(_error);
        }

        protected abstract void Invoke(int index);
    }

    private sealed class Job<TOp>(TOp op, int count, int helpers) : JobBase(count, helpers) where TOp : struct, IWorkItem
    {
        protected override void Invoke(int index) => op.Invoke(index);
    }

    private sealed class Pool
    {
        /// <summary>How long an idle worker spins before it sleeps: long enough to bridge the gap between a step's loops.</summary>
        private static readonly long SpinTicks = Stopwatch.Frequency / 5000; // 200 µs

        private readonly SemaphoreSlim _wake = new(0);
        private readonly Lock _gate = new();
        private JobBase? _job;
        private long _generation;
        private int _sleeping;
        private readonly Lock _growLock = new();
        private int _threads = 1;
        [ThreadStatic] private static bool t_isWorker;

        public Pool(int threads) => EnsureThreads(threads);

        /// <summary>Threads the pool can run a loop on, the caller's included; only grows.</summary>
        public int Threads => Volatile.Read(ref _threads);

        public void EnsureThreads(int threads)
        {
            if (threads <= Threads) return;
            lock (_growLock)
            {
                for (int i = _threads; i < threads; i++)
                {
                    long seen = Volatile.Read(ref _generation);
                    // UnsafeStart: a worker must not capture the starting flow's limit (or anything else ambient).
                    new Thread(() => Loop(seen)) { IsBackground = true, Name = $"MoeSharp worker {i}" }.UnsafeStart();
                }
                Volatile.Write(ref _threads, Math.Max(_threads, threads));
            }
        }

        public bool TryEnter() => !t_isWorker && _gate.TryEnter();

        public void Exit() => _gate.Exit();

        public void Run(JobBase job)
        {
            Volatile.Write(ref _job, job);
            Interlocked.Increment(ref _generation);
            // A worker counts itself as sleeping before it re-checks the generation, so none is missed here.
            int sleeping = Interlocked.Exchange(ref _sleeping, 0);
            if (sleeping > 0) _wake.Release(sleeping);
            job.Work();
            long waitStart = DecodeProfile.Enabled ? Stopwatch.GetTimestamp() : 0;
            var spin = new SpinWait();
            while (!job.Finished) spin.SpinOnce(sleep1Threshold: -1);
            if (DecodeProfile.Enabled) DecodeProfile.Loop(Stopwatch.GetTimestamp() - waitStart);
            job.ThrowIfFailed();
        }

        private void Loop(long seen)
        {
            t_isWorker = true;
            while (true)
            {
                long start = Stopwatch.GetTimestamp();
                while (Volatile.Read(ref _generation) == seen)
                {
                    if (Stopwatch.GetTimestamp() - start < SpinTicks)
                    {
                        Thread.SpinWait(20);
                        continue;
                    }
                    Interlocked.Increment(ref _sleeping);
                    // Spurious wake-ups (a stale permit) are harmless: the loop re-checks the generation.
                    if (Volatile.Read(ref _generation) == seen) _wake.Wait();
                    start = Stopwatch.GetTimestamp();
                }
                seen = Volatile.Read(ref _generation);
                if (Volatile.Read(ref _job) is { } job && job.TryJoin()) job.Work();
            }
        }
    }
}

/// <summary>One unit of parallel work; implemented by small structs so hot loops stay free of closures.</summary>
internal interface IWorkItem
{
    void Invoke(int index);
}
