using MoeSharp.Models;

namespace MoeSharp.Server.Engine;

/// <summary>
/// What the server needs from a decoding engine: a queued request streamed token by token, and the figures
/// <c>/metrics</c> shows. It has the shape of the core's continuous-batching <c>BatchGenerator</c>, so that engine
/// plugs in through <see cref="BatchEngine"/>; <see cref="SequentialEngine"/> serves one request at a time.
/// </summary>
public interface IGenerationEngine : IAsyncDisposable
{
    /// <summary>
    /// Queues a request and streams up to <paramref name="maxTokens"/> tokens after <paramref name="prompt"/>. The first
    /// <c>MoveNextAsync</c> throws <see cref="QueueFullException"/> when the queue is full and
    /// <see cref="ArgumentException"/> for a request the model cannot run. Cancelling <paramref name="ct"/>, or
    /// abandoning the enumeration, frees the request's slot at the engine's next step.
    /// </summary>
    IAsyncEnumerable<GeneratedToken> Generate(int[] prompt, int maxTokens, SamplingOptions sampling, CancellationToken ct);

    /// <summary>The engine's state now.</summary>
    EngineStats Stats { get; }
}

/// <summary>A snapshot of an engine.</summary>
/// <param name="QueueLength">Requests waiting to start.</param>
/// <param name="Running">Requests being decoded.</param>
/// <param name="BatchSize">Sequences in the last decode step.</param>
/// <param name="TokensGenerated">Tokens produced since the engine started.</param>
/// <param name="Steps">Forward passes since the engine started.</param>
public readonly record struct EngineStats(int QueueLength, int Running, int BatchSize, long TokensGenerated, long Steps);
