using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Threading.Channels;
using MoeSharp.Models;

namespace MoeSharp.Server.Engine;

/// <summary>
/// Serves one request at a time through <see cref="Generator.Stream"/> on a thread of its own, so decoding never
/// holds a thread-pool thread that Kestrel needs. Waiting requests form a bounded queue; one more is refused with
/// <see cref="QueueFullException"/>. A request whose consumer cancels or stops reading is dropped before the next
/// forward pass. <see cref="DisposeAsync"/> drains: no new requests, the queued and running ones finish.
/// </summary>
public sealed class SequentialEngine : IGenerationEngine
{
    private readonly Func<int[], int, SamplingOptions, IEnumerable<GeneratedToken>> _decode;
    private readonly BlockingCollection<Job> _queue; // waiting requests, at most MaxQueue
    private readonly TaskCompletionSource _stopped = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _running;
    private long _tokens;

    /// <summary>An engine over <paramref name="model"/> with room for <paramref name="maxQueue"/> waiting requests.</summary>
    public SequentialEngine(MoeTransformer model, int maxQueue = 64)
        : this((prompt, maxTokens, sampling) => Generator.Stream(model, prompt, maxTokens, sampling), maxQueue)
    {
        ArgumentNullException.ThrowIfNull(model);
    }

    /// <summary>An engine over any token source with <see cref="Generator.Stream"/>'s contract (tests slow it down or hold it).</summary>
    internal SequentialEngine(Func<int[], int, SamplingOptions, IEnumerable<GeneratedToken>> decode, int maxQueue)
    {
        if (maxQueue < 1) throw new ArgumentOutOfRangeException(nameof(maxQueue), $"the queue must hold at least 1 request, got {maxQueue}.");
        _decode = decode;
        MaxQueue = maxQueue;
        _queue = new BlockingCollection<Job>(maxQueue);
        new Thread(Work) { IsBackground = true, Name = "moe-sequential-engine" }.Start();
    }

    /// <summary>Requests that may wait while one runs.</summary>
    public int MaxQueue { get; }

    /// <inheritdoc />
    public EngineStats Stats
    {
        get
        {
            int running = Volatile.Read(ref _running);
            long tokens = Interlocked.Read(ref _tokens);
            // One sequence per forward pass: steps and tokens are the same count.
            return new EngineStats(_queue.Count, running, running, tokens, tokens);
        }
    }

    /// <inheritdoc />
    public async IAsyncEnumerable<GeneratedToken> Generate(int[] prompt, int maxTokens, SamplingOptions sampling, [EnumeratorCancellation] CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        ArgumentNullException.ThrowIfNull(sampling);
        var job = new Job(prompt, maxTokens, sampling, ct);
        bool queued;
        try
        {
            queued = _queue.TryAdd(job);
        }
        catch (InvalidOperationException)
        {
            throw new ObjectDisposedException(nameof(SequentialEngine), "the engine is shutting down and takes no new requests.");
        }
        if (!queued) throw new QueueFullException($"the request queue is full ({MaxQueue} waiting); try again later.");
        try
        {
            await foreach (GeneratedToken token in job.Output.Reader.ReadAllAsync(ct)) yield return token;
        }
        finally
        {
            job.Abandon();
        }
    }

    private void Work()
    {
        foreach (Job job in _queue.GetConsumingEnumerable())
        {
            if (job.Stopped)
            {
                job.Output.Writer.TryComplete();
                continue;
            }
            Volatile.Write(ref _running, 1);
            try
            {
                foreach (GeneratedToken token in _decode(job.Prompt, job.MaxTokens, job.Sampling))
                {
                    Interlocked.Increment(ref _tokens);
                    job.Output.Writer.TryWrite(token);
                    // Checked between tokens, before the next forward pass is computed.
                    if (job.Stopped) break;
                }
                job.Output.Writer.TryComplete();
            }
            catch (Exception e)
            {
                // The request's own failure (a bad prompt, activations that overflow) goes to its consumer; the engine serves on.
                job.Output.Writer.TryComplete(e);
            }
            finally
            {
                Volatile.Write(ref _running, 0);
            }
        }
        _stopped.TrySetResult();
    }

    /// <summary>Takes no new requests, lets the queued and running ones finish, then ends the engine's thread.</summary>
    public async ValueTask DisposeAsync()
    {
        _queue.CompleteAdding();
        // The queue stays undisposed: Stats may still be read, and it owns no handle unless one is asked for.
        await _stopped.Task.ConfigureAwait(false);
    }

    private sealed class Job(int[] prompt, int maxTokens, SamplingOptions sampling, CancellationToken ct)
    {
        public int[] Prompt { get; } = prompt;
        public int MaxTokens { get; } = maxTokens;
        public SamplingOptions Sampling { get; } = sampling;
        public Channel<GeneratedToken> Output { get; } = Channel.CreateUnbounded<GeneratedToken>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
        private volatile bool _abandoned;

        /// <summary>The consumer stopped reading (it finished, broke off, or failed).</summary>
        public void Abandon() => _abandoned = true;

        /// <summary>Nobody wants more tokens of this request.</summary>
        public bool Stopped => _abandoned || ct.IsCancellationRequested;
    }
}
