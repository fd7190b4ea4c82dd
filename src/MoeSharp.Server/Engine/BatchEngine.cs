using System.Runtime.CompilerServices;
using MoeSharp.Models;

namespace MoeSharp.Server.Engine;

/// <summary>
/// The server's engine over the core's continuous batching (<see cref="BatchGenerator"/>): requests join and leave
/// the running batch between decode steps, and every step is one forward pass for all of them, so each selected
/// expert's weights are read once for all the rows routed to it.
/// </summary>
public sealed class BatchEngine : IGenerationEngine
{
    private readonly BatchGenerator _batch;

    /// <summary>An engine over <paramref name="model"/> with <paramref name="options"/> (batch size, queue, KV budget, threads).</summary>
    public BatchEngine(MoeTransformer model, BatchOptions options)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(options);
        _batch = new BatchGenerator(model, options);
    }

    /// <inheritdoc />
    public EngineStats Stats
    {
        get
        {
            var s = _batch.Stats;
            return new EngineStats(s.Queued, s.Running, s.LastBatchSize, s.TokensGenerated, s.Steps);
        }
    }

    /// <inheritdoc />
    public async IAsyncEnumerable<GeneratedToken> Generate(int[] prompt, int maxTokens, SamplingOptions sampling, [EnumeratorCancellation] CancellationToken ct)
    {
        // BatchGenerator refuses a full queue or a bad request as it is called; inside this iterator that surfaces on
        // the first MoveNextAsync, as the interface promises.
        await foreach (var token in _batch.Generate(prompt, maxTokens, sampling, ct).WithCancellation(ct).ConfigureAwait(false))
            yield return token;
    }

    /// <inheritdoc />
    public ValueTask DisposeAsync() => _batch.DisposeAsync();
}
