using System.Runtime.CompilerServices;
using System.Threading.Channels;
using MoeSharp.Autograd;
using MoeSharp.Nn;
using MoeSharp.Tensors;

namespace MoeSharp.Models;

/// <summary>
/// Continuous batching: many requests share one model, and every step is one <see cref="MoeTransformer.ForwardBatch"/>
/// over all running sequences, so each selected expert's weights are read once per step for all the rows routed to
/// it. Requests wait in a queue until a slot (<see cref="BatchOptions.MaxBatch"/>) and room for their KV cache
/// (<see cref="BatchOptions.KvBudgetBytes"/>) are free, join the batch between steps (their prompt is prefilled in
/// the step they join, beside the others' decode rows) and leave it when done, cancelled or abandoned. Each request
/// samples with its own generator seeded by its options, so it gets the tokens <see cref="Generator.Stream"/> gives
/// (greedy ones equal; the logits of a row in a batch may differ from its logits alone by float rounding, see
/// <see cref="MoeTransformer.ForwardBatch"/>).
/// </summary>
/// <remarks>
/// One background thread runs the steps. A sequence whose consumer has <see cref="Lookahead"/> tokens still unread
/// sits out the steps until it reads, so a slow reader keeps its slot without buffering without bound.
/// </remarks>
public sealed class BatchGenerator : IAsyncDisposable
{
    /// <summary>Tokens a sequence may produce ahead of its consumer.</summary>
    public const int Lookahead = 16;

    private readonly MoeTransformer _model;
    private readonly BatchOptions _options;
    private readonly object _gate = new();
    private readonly List<Request> _queue = []; // waiting, in arrival order
    private readonly List<Request> _running = []; // holding a slot and cache bytes
    private readonly Task _loop;
    private bool _closed; // no new requests
    private bool _abort; // end every request now
    private int _lastBatch;
    private long _tokens, _steps, _kvBytes;

    /// <summary>
    /// Starts the stepping thread for <paramref name="model"/> (options validated first). The model must run nothing
    /// else meanwhile: its MoE layers reuse their dispatch workspaces from one inference pass to the next.
    /// </summary>
    public BatchGenerator(MoeTransformer model, BatchOptions options) : this(model, options, start: true)
    {
    }

    /// <summary>With <paramref name="start"/> false the stepping thread waits for <see cref="Start"/>, so that a test can queue several requests before the first step.</summary>
    internal BatchGenerator(MoeTransformer model, BatchOptions options, bool start)
    {
        options.Validate();
        _model = model;
        _options = options;
        _loop = new Task(Loop, TaskCreationOptions.LongRunning);
        if (start) Start();
    }

    /// <summary>Starts the stepping thread of a generator made with start: false.</summary>
    internal void Start() => _loop.Start(TaskScheduler.Default);

    /// <summary>A snapshot of the queue, the batch and the counters.</summary>
    public BatchStats Stats
    {
        get
        {
            lock (_gate) return new BatchStats(_queue.Count, _running.Count, _lastBatch, _tokens, _steps, _kvBytes);
        }
    }

    /// <summary>
    /// Queues a request for up to <paramref name="maxTokens"/> tokens after <paramref name="prompt"/> and streams them
    /// as they are made. Throws at once: <see cref="ArgumentException"/> for a bad request or one whose KV cache can
    /// never fit the budget, <see cref="QueueFullException"/> when <see cref="BatchOptions.MaxQueue"/> requests wait,
    /// <see cref="InvalidOperationException"/> once stopping. Cancelling <paramref name="ct"/> (or the enumeration's
    /// token), or disposing the enumerator early, frees the request's slot and cache at the next step.
    /// </summary>
    public IAsyncEnumerable<GeneratedToken> Generate(int[] prompt, int maxTokens, SamplingOptions sampling, CancellationToken ct = default)
    {
        Generator.Check(_model, prompt, maxTokens, sampling);
        int capacity = Generator.CacheCapacity(_model, prompt.Length, maxTokens);
        long bytes = _model.CacheBytes(capacity);
        if (bytes > _options.KvBudgetBytes)
            throw new ArgumentException($"The request needs a KV cache of {bytes} bytes ({capacity} positions × {bytes / capacity} bytes); the budget (KvBudgetBytes) is {_options.KvBudgetBytes} bytes.", nameof(maxTokens));
        ct.ThrowIfCancellationRequested();
        var request = new Request(prompt, maxTokens, sampling, capacity, bytes);
        if (maxTokens == 0) request.End();
        else
            lock (_gate)
            {
                if (_closed) throw new InvalidOperationException("The batch generator is stopping and takes no new requests.");
                if (_queue.Count >= _options.MaxQueue)
                    throw new QueueFullException($"{_queue.Count} requests already wait for a slot (MaxQueue {_options.MaxQueue}); try again later.");
                _queue.Add(request);
                Monitor.Pulse(_gate);
            }
        return Read(request, ct);
    }

    /// <summary>
    /// Closes the queue to new requests and returns when the stepping thread has ended: after every accepted
    /// request (running or queued) has finished when <paramref name="drain"/>, or at the next step otherwise, each
    /// unfinished stream then ending with <see cref="OperationCanceledException"/>. A drain waits for consumers to
    /// read: a request whose consumer stopped reading without cancelling or disposing its enumerator sits at the
    /// <see cref="Lookahead"/> and keeps the drain waiting.
    /// </summary>
    public Task Stop(bool drain)
    {
        lock (_gate)
        {
            _closed = true;
            _abort |= !drain;
            Monitor.Pulse(_gate);
        }
        return _loop;
    }

    /// <summary>Drains: no new requests; running and queued ones finish.</summary>
    public async ValueTask DisposeAsync() => await Stop(drain: true).ConfigureAwait(false);

    private async IAsyncEnumerable<GeneratedToken> Read(Request request, CancellationToken requestToken, [EnumeratorCancellation] CancellationToken enumeratorToken = default)
    {
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(requestToken, enumeratorToken);
        using var registration = linked.Token.Register(() => Abandon(request));
        var reader = request.Tokens.Reader;
        try
        {
            while (await reader.WaitToReadAsync(linked.Token).ConfigureAwait(false))
                while (reader.TryRead(out var token))
                {
                    // The step loop may be waiting for this consumer to fall below the lookahead.
                    lock (_gate) Monitor.Pulse(_gate);
                    yield return token;
                }
        }
        finally
        {
            Abandon(request);
        }
    }

    /// <summary>Marks a request whose consumer left; the loop frees it at the next step (nothing to do once finished).</summary>
    private void Abandon(Request request)
    {
        lock (_gate)
        {
            if (request.Done) return;
            request.Abandoned = true;
            Monitor.Pulse(_gate);
        }
    }

    private void Loop()
    {
        var tape = new Tape();
        var batch = new List<Request>();
        var ids = new List<int[]>();
        var caches = new List<KvCache>();
        var probs = new float[_model.Config.Vocab]; // [V] sampling scratch, one request at a time
        try
        {
            while (Schedule(batch))
            {
                ids.Clear();
                caches.Clear();
                foreach (var r in batch)
                {
                    r.Cache ??= _model.NewCache(r.Capacity);
                    ids.Add(r.Input);
                    caches.Add(r.Cache);
                }
                Step(tape, batch, ids, caches, probs);
                lock (_gate)
                {
                    _steps++;
                    _lastBatch = batch.Count;
                    _tokens += batch.Count;
                    for (int i = _running.Count - 1; i >= 0; i--)
                        if (_running[i].Done) Release(i);
                }
            }
        }
        catch (Exception e)
        {
            // Not a model error (Step catches those): fail everything rather than leave streams hanging.
            lock (_gate)
            {
                _closed = true;
                foreach (var r in _queue.Concat(_running))
                {
                    r.Finish(e);
                    r.End();
                }
                _queue.Clear();
                _running.Clear();
                _kvBytes = 0;
            }
            throw;
        }
    }

    /// <summary>
    /// Under the lock: drops abandoned requests, admits queued ones in order while a slot and cache room are free,
    /// and fills <paramref name="batch"/> with the running ones that may step; waits while there are none. False
    /// when the generator has stopped and nothing is left.
    /// </summary>
    private bool Schedule(List<Request> batch)
    {
        batch.Clear();
        lock (_gate)
        {
            while (true)
            {
                if (_abort)
                {
                    var stopped = new OperationCanceledException("The batch generator was stopped before this request finished.");
                    foreach (var r in _queue)
                    {
                        r.Finish(stopped);
                        r.End();
                    }
                    _queue.Clear();
                    for (int i = _running.Count - 1; i >= 0; i--)
                    {
                        _running[i].Finish(stopped);
                        Release(i);
                    }
                }
                _queue.RemoveAll(static r => r.Abandoned);
                for (int i = _running.Count - 1; i >= 0; i--)
                    if (_running[i].Abandoned) Release(i);
                // First come, first served: a request that does not fit yet holds back the ones behind it.
                while (_queue.Count > 0 && _running.Count < _options.MaxBatch && _kvBytes + _queue[0].Bytes <= _options.KvBudgetBytes)
                {
                    var r = _queue[0];
                    _queue.RemoveAt(0);
                    _running.Add(r);
                    _kvBytes += r.Bytes;
                }
                foreach (var r in _running)
                    if (r.Tokens.Reader.Count < Lookahead) batch.Add(r);
                if (batch.Count > 0) return true;
                if (_closed && _queue.Count == 0 && _running.Count == 0) return false;
                Monitor.Wait(_gate);
            }
        }
    }

    /// <summary>
    /// Removes running request <paramref name="i"/>, returns its cache bytes to the budget and ends its stream, under
    /// the lock, so a consumer that sees its stream end sees the statistics without it.
    /// </summary>
    private void Release(int i)
    {
        var r = _running[i];
        r.Done = true;
        r.Cache = null;
        r.End();
        _kvBytes -= r.Bytes;
        _running.RemoveAt(i);
    }

    /// <summary>
    /// One forward pass over the batch and one sampled token per sequence. A failed pass (a non-finite activation,
    /// say) fails every request of the batch: the pass has no result for any of them.
    /// </summary>
    private void Step(Tape tape, List<Request> batch, List<int[]> ids, List<KvCache> caches, float[] probs)
    {
        int vocab = _model.Config.Vocab;
        try
        {
            using (Kernels.Workers.Limit(_options.Threads))
            using (tape.NoGrad())
            {
                var output = _model.ForwardBatch(tape, ids, caches);
                for (int i = 0; i < batch.Count; i++)
                {
                    var r = batch[i];
                    int next = Generator.Pick(output.Logits.Span.Slice(i * vocab, vocab), r.Sampling, r.Rng, probs);
                    r.History.Add(next);
                    r.Generated++;
                    r.Tokens.Writer.TryWrite(new GeneratedToken(next, output.Experts[i]));
                    if (r.Generated == r.MaxTokens) r.Finish(null);
                    else r.Input = Generator.NextInput(r.Cache!, r.History, next);
                }
            }
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            foreach (var r in batch)
                if (!r.Done) r.Finish(e);
        }
        finally
        {
            tape.Reset();
        }
    }

    /// <summary>One request: its sampling state, its cache once admitted, and the channel its tokens go through.</summary>
    private sealed class Request(int[] prompt, int maxTokens, SamplingOptions sampling, int capacity, long bytes)
    {
        public readonly int MaxTokens = maxTokens;
        public readonly SamplingOptions Sampling = sampling;
        public readonly int Capacity = capacity;
        public readonly long Bytes = bytes;
        public readonly Rng Rng = new(sampling.Seed);
        public readonly List<int> History = [.. prompt];
        // Bounded only by the scheduler's lookahead check, which keeps every write within capacity.
        public readonly Channel<GeneratedToken> Tokens = Channel.CreateBounded<GeneratedToken>(
            new BoundedChannelOptions(Lookahead) { SingleReader = true, SingleWriter = true });
        public int[] Input = prompt;
        public KvCache? Cache;
        public int Generated;
        public bool Abandoned;
        public bool Done;

        public Exception? Error;

        /// <summary>Marks the request finished (failed with <paramref name="error"/>, if any); <see cref="End"/> then ends its stream.</summary>
        public void Finish(Exception? error)
        {
            Done = true;
            Error = error;
        }

        /// <summary>Ends the stream, with the error if the request failed.</summary>
        public void End() => Tokens.Writer.TryComplete(Error);
    }
}
