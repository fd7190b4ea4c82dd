using System.Runtime.CompilerServices;
using MoeSharp.Models;
using MoeSharp.Server.Engine;
using MoeSharp.Text;

namespace MoeSharp.Server.Generation;

/// <summary>
/// One completion streamed as text from an engine: tokens decoded incrementally (a UTF-8 character split across
/// tokens comes out whole), cut before the first stop string, ended by an end-of-turn id, the limit or cancellation.
/// The counts and <see cref="Stop"/> are final once the text has been read to its end.
/// </summary>
public sealed class Completion
{
    private readonly ServedModel _model;
    private readonly IGenerationEngine _engine;
    private readonly int[] _prompt; // [P]
    private readonly SamplingOptions _sampling;
    private readonly StopText _stop;

    internal Completion(ServedModel model, IGenerationEngine engine, int[] prompt, int maxTokens, SamplingOptions sampling, StopText stop)
    {
        _model = model;
        _engine = engine;
        _prompt = prompt;
        MaxTokens = maxTokens;
        _sampling = sampling;
        _stop = stop;
    }

    /// <summary>Tokens in the prompt.</summary>
    public int PromptTokens => _prompt.Length;

    /// <summary>The most tokens the completion may have.</summary>
    public int MaxTokens { get; }

    /// <summary>Tokens generated so far, an end-of-turn token included.</summary>
    public int CompletionTokens { get; private set; }

    /// <summary>Why the completion ended: <see cref="ChatStop.Length"/> until it has.</summary>
    public ChatStop Stop { get; private set; } = ChatStop.Length;

    /// <summary>
    /// The text, piece by piece. The first <c>MoveNextAsync</c> waits for the engine to take the request, so a full
    /// queue (<see cref="QueueFullException"/>) or a prompt the model refuses (<see cref="ArgumentException"/>)
    /// surfaces there, before any text.
    /// </summary>
    public async IAsyncEnumerable<string> Text([EnumeratorCancellation] CancellationToken ct = default)
    {
        var stopIds = new HashSet<int>(_model.Tokenizer.StopTokenIds);
        var decoder = new IncrementalDecoder(_model.Tokenizer);
        await foreach (GeneratedToken token in _engine.Generate(_prompt, MaxTokens, _sampling, ct).ConfigureAwait(false))
        {
            CompletionTokens++;
            _model.Load.Add(token.Experts);
            if (stopIds.Contains(token.Id))
            {
                Stop = ChatStop.EndOfTurn;
                break;
            }
            string shown = _stop.Push(decoder.Push(token.Id));
            if (shown.Length > 0) yield return shown;
            if (_stop.Stopped)
            {
                Stop = ChatStop.StopString;
                yield break;
            }
        }
        string rest = _stop.Push(decoder.Flush()) + _stop.Flush();
        if (_stop.Stopped) Stop = ChatStop.StopString;
        if (rest.Length > 0) yield return rest;
    }
}
