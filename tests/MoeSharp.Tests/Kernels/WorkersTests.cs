using MoeSharp.Kernels;

namespace MoeSharp.Tests.Kernels;

public class WorkersTests
{
    /// <summary>Records which thread ran each item; each item spins briefly so that idle pool threads get a chance to join.</summary>
    private readonly struct RecordThread(int[] threadOf) : IWorkItem
    {
        public void Invoke(int index)
        {
            Thread.SpinWait(2000);
            threadOf[index] = Environment.CurrentManagedThreadId;
        }
    }

    private static int DistinctThreads(int limit)
    {
        var threadOf = new int[2000];
        using (Workers.Limit(limit)) Workers.For(threadOf.Length, new RecordThread(threadOf));
        Assert.DoesNotContain(0, threadOf);
        return threadOf.Distinct().Count();
    }

    [Fact]
    public void ALimitOfOneRunsEveryItemOnTheCaller()
    {
        var threadOf = new int[500];
        using (Workers.Limit(1)) Workers.For(threadOf.Length, new RecordThread(threadOf));
        Assert.All(threadOf, id => Assert.Equal(Environment.CurrentManagedThreadId, id));
    }

    [Fact]
    public void ALoopUsesNoMoreThreadsThanItsLimit()
    {
        // The pool has at least 3 threads after this, so a limit of 2 is the limit's doing, not the pool's size.
        using (Workers.Limit(3)) { }
        int used = DistinctThreads(2);
        // An upper bound only: how many pool threads join depends on the scheduler.
        Assert.True(used <= 2, $"limit 2, {used} threads ran items");
    }

    [Fact]
    public void LimitsNestAndRestore()
    {
        int outside = Workers.Threads;
        using (Workers.Limit(1))
        {
            Assert.Equal(1, Workers.Threads);
            using (Workers.Limit(3)) Assert.Equal(3, Workers.Threads);
            Assert.Equal(1, Workers.Threads);
        }
        Assert.Equal(outside, Workers.Threads);
    }

    [Fact]
    public async Task ALimitStaysInItsOwnFlow()
    {
        using var start = new Barrier(2);
        int seenElsewhere = 0;
        var limited = Task.Run(() =>
        {
            using (Workers.Limit(1))
            {
                start.SignalAndWait();
                start.SignalAndWait();
            }
        });
        var other = Task.Run(() =>
        {
            start.SignalAndWait();
            seenElsewhere = Workers.Threads;
            start.SignalAndWait();
        });
        await Task.WhenAll(limited, other);
        Assert.Equal(Environment.ProcessorCount, seenElsewhere);
    }

    [Fact]
    public void ALimitBelowOneIsRefused() => Assert.Throws<ArgumentOutOfRangeException>(() => Workers.Limit(0));
}
