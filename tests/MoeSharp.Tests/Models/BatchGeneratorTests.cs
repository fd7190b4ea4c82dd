using MoeSharp.Autograd;
using MoeSharp.Models;
using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;

namespace MoeSharp.Tests.Models;

/// <summary>
/// Continuous batching on the tiny Qwen3-MoE of the golden tests (context capped at 32, so the longest request
/// below also slides its window): batched requests against the same requests run one at a time by
/// <see cref="Generator"/>, and the scheduler's promises (slots, queue, KV budget, cancellation, drain).
/// </summary>
public class BatchGeneratorTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);
    private static readonly MoeTransformer Model = BatchForwardTests.Load("qwen3_moe");

    /// <summary>Request i: a prompt of 1 + i mod 6 tokens and 6 + 3i tokens to make (the eighth, 27 after 2, slides past the context of 32).</summary>
    private static (int[] Prompt, int MaxTokens) Request(int i)
    {
        int[] prompt = new int[1 + (i * 5 + 1) % 6];
        for (int j = 0; j < prompt.Length; j++) prompt[j] = (i * 37 + j * 11 + 3) % Model.Config.Vocab;
        return (prompt, i == 7 ? 40 : 6 + 3 * i);
    }

    /// <summary>
    /// The smallest gap between the best and the second-best logit along the greedy path of a request run alone,
    /// relative to that step's largest |logit|: the rounding a batch adds (see BatchForwardTests) must stay below it
    /// for the greedy ids to be the same.
    /// </summary>
    internal static float GreedyMargin(MoeTransformer model, int[] prompt, int maxTokens)
    {
        var cache = model.NewCache(Generator.CacheCapacity(model, prompt.Length, maxTokens));
        var history = new List<int>(prompt);
        var tape = new Tape();
        using var _ = tape.NoGrad();
        int[] input = prompt;
        float margin = float.PositiveInfinity;
        for (int i = 0; i < maxTokens; i++)
        {
            var logits = model.ForwardBatch(tape, [input], [cache]).Logits.ToArray(); // [1, V]
            tape.Reset();
            int best = TensorPrimitives.IndexOfMax(logits);
            float top = logits[best], scale = TensorPrimitives.MaxMagnitude(logits);
            logits[best] = float.NegativeInfinity;
            margin = Math.Min(margin, (top - TensorPrimitives.Max(logits)) / Math.Abs(scale));
            history.Add(best);
            if (i < maxTokens - 1) input = Generator.NextInput(cache, history, best);
        }
        return margin;
    }

    private static async Task<int[]> Collect(IAsyncEnumerable<GeneratedToken> tokens)
    {
        var ids = new List<int>();
        await foreach (var t in tokens.ConfigureAwait(false)) ids.Add(t.Id);
        return [.. ids];
    }

    public static TheoryData<int, bool> Concurrency() => new() { { 2, false }, { 8, false }, { 2, true }, { 8, true } };

    /// <summary>
    /// 2 and 8 requests queued before the first step, greedy and sampled (temperature 0.9, top-k 40, top-p 0.9, a
    /// seed per request), give exactly the ids each gets alone from <see cref="Generator.Stream"/>, and share steps.
    /// Greedy equality needs each step's best logit ahead of the second by more than a batch's rounding (2e-6 of
    /// the largest logit at most, BatchForwardTests): these requests keep a gap of at least 1e-4 of it.
    /// </summary>
    [Theory]
    [MemberData(nameof(Concurrency))]
    public async Task ConcurrentRequestsGetTheirSequentialOutputs(int concurrent, bool sampled)
    {
        SamplingOptions Sampling(int i) => sampled
            ? new SamplingOptions { Temperature = 0.9f, TopK = 40, TopP = 0.9f, Seed = (ulong)(100 + i) }
            : new SamplingOptions { Temperature = 0 };
        var expected = new int[concurrent][];
        for (int i = 0; i < concurrent; i++)
        {
            var (prompt, max) = Request(i);
            expected[i] = Generator.Stream(Model, prompt, max, Sampling(i)).Select(t => t.Id).ToArray();
            if (!sampled) Assert.InRange(GreedyMargin(Model, prompt, max), 1e-4f, float.PositiveInfinity);
        }
        await using var batch = new BatchGenerator(Model, new BatchOptions { MaxBatch = 8, Threads = 2 }, start: false);
        var tokens = new IAsyncEnumerable<GeneratedToken>[concurrent];
        for (int i = 0; i < concurrent; i++)
        {
            var (prompt, max) = Request(i);
            tokens[i] = batch.Generate(prompt, max, Sampling(i));
        }
        batch.Start();
        var streams = new Task<int[]>[concurrent];
        for (int i = 0; i < concurrent; i++)
        {
            var stream = tokens[i];
            streams[i] = Task.Run(() => Collect(stream));
        }
        var actual = await Task.WhenAll(streams).WaitAsync(Patience);
        for (int i = 0; i < concurrent; i++) Assert.True(expected[i].SequenceEqual(actual[i]), $"request {i}: batched [{string.Join(",", actual[i])}], alone [{string.Join(",", expected[i])}]");
        var stats = batch.Stats;
        long total = expected.Sum(e => e.Length);
        Assert.Equal(total, stats.TokensGenerated);
        Assert.True(stats.Steps < total, $"{stats.Steps} steps for {total} tokens: the requests never shared a step");
        Assert.Equal(0, stats.Running);
        Assert.Equal(0L, stats.KvBytes);
    }

    /// <summary>With one slot, a request cancelled after 2 tokens ends in OperationCanceledException and the queued one runs to completion.</summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task ACancelledOrAbandonedRequestFreesItsSlot(bool cancel)
    {
        var (waitingPrompt, waitingMax) = Request(1);
        int[] expected = Generator.Greedy(Model, waitingPrompt, waitingMax); // before the generator: the model runs one pass at a time
        await using var batch = new BatchGenerator(Model, new BatchOptions { MaxBatch = 1, Threads = 2 });
        using var cts = new CancellationTokenSource();
        var (prompt, _) = Request(3);
        var first = batch.Generate(prompt, 30, new SamplingOptions { Temperature = 0 }, cts.Token).GetAsyncEnumerator();
        Assert.True(await first.MoveNextAsync().AsTask().WaitAsync(Patience));
        Assert.True(await first.MoveNextAsync().AsTask().WaitAsync(Patience));
        var waitingTokens = batch.Generate(waitingPrompt, waitingMax, new SamplingOptions { Temperature = 0 });
        var waiting = Task.Run(() => Collect(waitingTokens));
        // 30 tokens are more than the lookahead, so the first request cannot finish unread: the second must wait.
        Assert.Equal((1, 1), (batch.Stats.Running, batch.Stats.Queued));
        if (cancel)
        {
            await cts.CancelAsync();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
            {
                while (await first.MoveNextAsync()) { }
            });
        }
        await first.DisposeAsync();
        Assert.Equal(expected, await waiting.WaitAsync(Patience));
        Assert.Equal((0, 0, 0L), (batch.Stats.Running, batch.Stats.Queued, batch.Stats.KvBytes));
    }

    [Fact]
    public async Task AFullQueueRefusesTheNextRequest()
    {
        var batch = new BatchGenerator(Model, new BatchOptions { MaxBatch = 1, MaxQueue = 1, Threads = 2 });
        var greedy = new SamplingOptions { Temperature = 0 };
        var running = batch.Generate([1, 2], 30, greedy).GetAsyncEnumerator();
        Assert.True(await running.MoveNextAsync().AsTask().WaitAsync(Patience));
        var queued = batch.Generate([3], 5, greedy);
        var ex = Assert.Throws<QueueFullException>(() => batch.Generate([4], 5, greedy));
        Assert.Contains("MaxQueue 1", ex.Message);
        Assert.Equal((1, 1), (batch.Stats.Running, batch.Stats.Queued));
        // Neither consumer reads on, so only a stop without draining ends them.
        await batch.Stop(drain: false).WaitAsync(Patience);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await Collect(queued));
        await running.DisposeAsync();
    }

    /// <summary>
    /// A budget of one request's cache: the second request waits until the first finishes, then runs; a request
    /// whose cache alone is larger than the budget is refused at once, naming the sizes.
    /// </summary>
    [Fact]
    public async Task TheKvBudgetAdmitsWhatFitsAndRefusesWhatNeverWill()
    {
        long one = Model.CacheBytes(4 + 24 - 1);
        int[] a = [5, 6, 7, 8], b = [9, 10, 11, 12];
        int[] expectedA = Generator.Greedy(Model, a, 24), expectedB = Generator.Greedy(Model, b, 24);
        await using var batch = new BatchGenerator(Model, new BatchOptions { MaxBatch = 8, KvBudgetBytes = one, Threads = 2 });
        var greedy = new SamplingOptions { Temperature = 0 };
        var ex = Assert.Throws<ArgumentException>(() => batch.Generate([.. a, 1], 24, greedy));
        Assert.Contains($"{Model.CacheBytes(28)} bytes (28 positions", ex.Message);
        Assert.Contains($"budget (KvBudgetBytes) is {one} bytes", ex.Message);
        var first = batch.Generate(a, 24, greedy).GetAsyncEnumerator();
        Assert.True(await first.MoveNextAsync().AsTask().WaitAsync(Patience));
        var secondTokens = batch.Generate(b, 24, greedy);
        var second = Task.Run(() => Collect(secondTokens));
        // 24 tokens are more than the lookahead, so the first holds the budget until it is read.
        Assert.Equal((1, 1, one), (batch.Stats.Running, batch.Stats.Queued, batch.Stats.KvBytes));
        var ids = new List<int> { first.Current.Id };
        while (await first.MoveNextAsync()) ids.Add(first.Current.Id);
        await first.DisposeAsync();
        Assert.Equal(expectedA, ids.ToArray());
        Assert.Equal(expectedB, await second.WaitAsync(Patience));
    }

    /// <summary>Disposing drains: every accepted request (running and queued) finishes whole, and new requests are refused.</summary>
    [Fact]
    public async Task DisposingDrainsAcceptedRequests()
    {
        var expected = new int[4][];
        for (int i = 0; i < 4; i++)
        {
            var (prompt, max) = Request(i);
            expected[i] = Generator.Greedy(Model, prompt, max);
        }
        var batch = new BatchGenerator(Model, new BatchOptions { MaxBatch = 2, Threads = 2 });
        var streams = new Task<int[]>[4];
        for (int i = 0; i < 4; i++)
        {
            var (prompt, max) = Request(i);
            var tokens = batch.Generate(prompt, max, new SamplingOptions { Temperature = 0 });
            streams[i] = Task.Run(() => Collect(tokens));
        }
        var drained = batch.DisposeAsync().AsTask();
        Assert.Throws<InvalidOperationException>(() => batch.Generate([1], 3, new SamplingOptions { Temperature = 0 }));
        await drained.WaitAsync(Patience);
        for (int i = 0; i < 4; i++) Assert.Equal(expected[i], await streams[i].WaitAsync(Patience));
    }
}
