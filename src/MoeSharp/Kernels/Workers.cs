using System.Diagnostics;

namespace MoeSharp.Kernels;

/// <summary>
/// The worker-thread setting shared by every kernel, and the pool that runs their parallel loops. Kernels split
/// work over output tiles or rows, never over a reduction axis, so a run with 1 thread and a run with N threads
/// produce bitwise-identical results.
/// </summary>
/// <remarks>
/// A training step issues hundreds of parallel loops of tens of microseconds each, so dispatch latency matters
/// more than anything: the pool's threads spin briefly after each loop and pick up the next one within about a
/// microsecond, then sleep on a semaphore when idle. A loop started while another is running (from a work item, or
/// from a second caller thread) runs serially on its own thread instead of waiting.
/// </remarks>
public static class Workers
{
    private static Pool s_pool = new(Environment.ProcessorCount);

    /// <summary>Number of threads kernels may use, the caller's included; defaults to the number of cores.</summary>
    public static int Threads
    {
        get => s_pool.Threads;
        set
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, 1, nameof(Threads));
            if (value == s_pool.Threads) return;
            var old = s_pool;
            s_pool = new Pool(value);
            old.Stop();
        }
    }

    /// <summary>
    /// Runs <paramref name="op"/> for every item in [0, count). Items must be independent; each runs exactly once,
    /// on some thread, so per-item results never depend on the thread count.
    /// </summary>
    public static void For<TOp>(int count, TOp op) where TOp : struct, IWorkItem
    {
        if (count <= 0) return;
        var pool = s_pool;
        if (pool.Threads == 1 || count == 1 || !pool.TryEnter())
        {
            // Serial path: one thread, one item, or the pool is busy (nested or concurrent loop).
            for (int i = 0; i < count; i++) op.Invoke(i);
            return;
        }
        try
        {
            pool.Run(new Job<TOp>(op, count));
        }
        finally
        {
            pool.Exit();
        }
    }

    private abstract class JobBase(int count)
    {
        private int _next, _done;
        private Exception? _error;

        public bool Finished => Volatile.Read(ref _done) >= count;

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

    private sealed class Job<TOp>(TOp op, int count) : JobBase(count) where TOp : struct, IWorkItem
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
        private volatile bool _stopped;
        [ThreadStatic] private static bool t_isWorker;

        public Pool(int threads)
        {
            Threads = threads;
            for (int i = 1; i < threads; i++)
                new Thread(Loop) { IsBackground = true, Name = $"MoeSharp worker {i}" }.Start();
        }

        public int Threads { get; }

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
            var spin = new SpinWait();
            while (!job.Finished) spin.SpinOnce(sleep1Threshold: -1);
            job.ThrowIfFailed();
        }

        public void Stop()
        {
            _stopped = true;
            Interlocked.Increment(ref _generation);
            _wake.Release(Threads);
        }

        private void Loop()
        {
            t_isWorker = true;
            long seen = 0;
            while (!_stopped)
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
                if (_stopped) return;
                Volatile.Read(ref _job)?.Work();
            }
        }
    }
}

/// <summary>One unit of parallel work; implemented by small structs so hot loops stay free of closures.</summary>
public interface IWorkItem
{
    void Invoke(int index);
}
