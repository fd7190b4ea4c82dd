using MoeSharp.Models;
using MoeSharp.Server.Engine;

namespace MoeSharp.Server.Tests.Engine;

/// <summary>
/// <see cref="SequentialEngine"/> over a counting token source held by a <see cref="Gate"/>: the queue bound, a
/// cancelled request dropped at the next step, draining on dispose. The source yields ids 0, 1, 2, … so every
/// stream's content is known exactly.
/// </summary>
public sealed class SequentialEngineTests
{
    private static IEnumerable<GeneratedToken> Count(int[] prompt, int maxTokens)
    {
        for (int i = 0; i < maxTokens; i++) yield return new GeneratedToken(prompt[0] * 1000 + i, []);
    }

    private static readonly SamplingOptions Sampling = new() { Temperature = 0, Threads = 1 };

    private static async Task Until(Func<bool> condition)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        while (!condition()) await Task.Delay(5, timeout.Token);
    }

    private static async Task<List<int>> Read(IAsyncEnumerator<GeneratedToken> e, List<int>? ids = null)
    {
        ids ??= [];
        while (await e.MoveNextAsync()) ids.Add(e.Current.Id);
        return ids;
    }

    [Fact]
    public async Task OneMoreRequestThanTheQueueHoldsIsRefusedAndTheRestComplete()
    {
        using var gate = new Gate();
        await using var engine = new SequentialEngine((p, n, _) => gate.Hold(Count(p, n)), maxQueue: 1);
        await using var a = engine.Generate([1], 3, Sampling, default).GetAsyncEnumerator();
        var firstA = a.MoveNextAsync().AsTask();
        await Until(() => engine.Stats.Running == 1);
        await using var b = engine.Generate([2], 2, Sampling, default).GetAsyncEnumerator();
        var firstB = b.MoveNextAsync().AsTask();
        await Until(() => engine.Stats.QueueLength == 1);

        await using var c = engine.Generate([3], 2, Sampling, default).GetAsyncEnumerator();
        var full = await Assert.ThrowsAsync<QueueFullException>(async () => await c.MoveNextAsync());
        Assert.Contains("(1 waiting)", full.Message);
        Assert.Equal(new EngineStats(1, 1, 1, 0, 0), engine.Stats);

        gate.Open();
        Assert.True(await firstA);
        Assert.Equal([1000, 1001, 1002], await Read(a, [a.Current.Id]));
        Assert.True(await firstB);
        Assert.Equal([2000, 2001], await Read(b, [b.Current.Id]));
        await Until(() => engine.Stats.Running == 0);
        Assert.Equal(new EngineStats(0, 0, 0, 5, 5), engine.Stats);
    }

    [Fact]
    public async Task ACancelledRequestStopsAtTheNextStepAndTheQueuedOneStarts()
    {
        using var gate = new Gate();
        await using var engine = new SequentialEngine((p, n, _) => gate.Hold(Count(p, n)), maxQueue: 4);
        using var cancel = new CancellationTokenSource();
        await using var a = engine.Generate([1], 1000, Sampling, cancel.Token).GetAsyncEnumerator();
        var firstA = a.MoveNextAsync().AsTask();
        gate.Release();
        Assert.True(await firstA);
        await using var b = engine.Generate([2], 2, Sampling, default).GetAsyncEnumerator();
        var firstB = b.MoveNextAsync().AsTask();

        cancel.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await a.MoveNextAsync());
        gate.Open();
        Assert.True(await firstB);
        Assert.Equal([2000, 2001], await Read(b, [b.Current.Id]));
        // The request in flight may finish the step it was in (2 tokens), never more.
        Assert.InRange(gate.Produced - 2, 1, 2);
    }

    [Fact]
    public async Task AConsumerThatStopsReadingFreesTheSlot()
    {
        using var gate = new Gate();
        await using var engine = new SequentialEngine((p, n, _) => gate.Hold(Count(p, n)), maxQueue: 4);
        gate.Release(3);
        await foreach (var token in engine.Generate([1], 100_000, Sampling, default))
            if (token.Id == 1002) break;
        gate.Open();
        Assert.Equal([3000, 3001], await Read(engine.Generate([3], 2, Sampling, default).GetAsyncEnumerator()));
        Assert.InRange(gate.Produced, 5, 6);
    }

    [Fact]
    public async Task DisposingDrainsTheQueueAndRefusesNewRequests()
    {
        using var gate = new Gate();
        var engine = new SequentialEngine((p, n, _) => gate.Hold(Count(p, n)), maxQueue: 4);
        var a = Read(engine.Generate([1], 3, Sampling, default).GetAsyncEnumerator());
        await Until(() => engine.Stats.Running == 1);
        var b = Read(engine.Generate([2], 3, Sampling, default).GetAsyncEnumerator());
        await Until(() => engine.Stats.QueueLength == 1);
        var disposed = engine.DisposeAsync().AsTask();
        await Assert.ThrowsAsync<ObjectDisposedException>(async () => await engine.Generate([3], 1, Sampling, default).GetAsyncEnumerator().MoveNextAsync());
        Assert.False(disposed.IsCompleted);
        gate.Open();
        await disposed;
        Assert.Equal([1000, 1001, 1002], await a);
        Assert.Equal([2000, 2001, 2002], await b);
    }

    [Fact]
    public async Task AFailingRequestReachesItsConsumerAndTheEngineServesOn()
    {
        await using var engine = new SequentialEngine((p, n, _) => p[0] < 0 ? throw new ArgumentException("bad prompt") : Count(p, n), maxQueue: 4);
        var e = await Assert.ThrowsAsync<ArgumentException>(() => Read(engine.Generate([-1], 3, Sampling, default).GetAsyncEnumerator()));
        Assert.Equal("bad prompt", e.Message);
        Assert.Equal([4000], await Read(engine.Generate([4], 1, Sampling, default).GetAsyncEnumerator()));
    }
}
