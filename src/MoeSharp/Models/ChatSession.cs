using MoeSharp.Text;

namespace MoeSharp.Models;

/// <summary>How a <see cref="ChatSession"/> reply is generated and when it ends.</summary>
public sealed record ChatOptions
{
    /// <summary>The most tokens one reply may have (fewer when the model's context runs out first).</summary>
    public int MaxTokens { get; init; } = 512;

    /// <summary>Temperature, top-k, top-p, seed and threads.</summary>
    public SamplingOptions Sampling { get; init; } = SamplingOptions.Default;

    /// <summary>Texts that end a reply; the reply keeps the text before the first one found.</summary>
    public IReadOnlyList<string> StopStrings { get; init; } = [];

    /// <summary>Ids that end a reply (not part of it); null for the tokenizer's end-of-sequence and end-of-turn ids.</summary>
    public IReadOnlyList<int>? StopTokenIds { get; init; }

    /// <summary>Extra template variables, such as Qwen3's <c>enable_thinking</c>.</summary>
    public IReadOnlyDictionary<string, object?>? TemplateVariables { get; init; }
}

/// <summary>Why the last reply ended.</summary>
public enum ChatStop
{
    /// <summary>The model produced an end-of-sequence or end-of-turn token.</summary>
    EndOfTurn,
    /// <summary>The reply reached one of <see cref="ChatOptions.StopStrings"/>.</summary>
    StopString,
    /// <summary><see cref="ChatOptions.MaxTokens"/> or the model's context was reached.</summary>
    Length,
    /// <summary>The caller cancelled the reply.</summary>
    Cancelled,
}

/// <summary>
/// A conversation with a model: the history, rendered with the tokenizer's chat template
/// (<see cref="HfTokenizer.ApplyChatTemplate"/>) before every reply, and replies streamed as text that never splits
/// a UTF-8 character (<see cref="IncrementalDecoder"/>). A reply ends at an end-of-turn id, a stop string, the token
/// limit or cancellation; whatever text it had is added to the history as the assistant's message. Each reply
/// runs the whole rendered conversation through a fresh KV cache.
/// </summary>
public sealed class ChatSession
{
    private readonly MoeTransformer _model;
    private readonly HfTokenizer _tokenizer;
    private readonly List<ChatMessage> _history = [];

    /// <summary>A conversation with <paramref name="model"/> using <paramref name="tokenizer"/>'s vocabulary and template.</summary>
    public ChatSession(MoeTransformer model, HfTokenizer tokenizer)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(tokenizer);
        if (tokenizer.VocabSize > model.Config.Vocab)
            throw new ArgumentException($"the tokenizer has {tokenizer.VocabSize} ids; the model's vocabulary has only {model.Config.Vocab}.", nameof(tokenizer));
        _model = model;
        _tokenizer = tokenizer;
    }

    /// <summary>The system message put before the history; null for none. It survives <see cref="Reset"/>.</summary>
    public string? SystemPrompt { get; set; }

    /// <summary>The user and assistant messages so far.</summary>
    public IReadOnlyList<ChatMessage> History => _history;

    /// <summary>Why the last reply ended.</summary>
    public ChatStop LastStop { get; private set; }

    /// <summary>The ids the last reply generated, its stop token included.</summary>
    public IReadOnlyList<int> LastIds { get; private set; } = [];

    /// <summary>The routed experts of each MoE layer for each generated token of the last reply.</summary>
    public IReadOnlyList<IReadOnlyList<int[]>> LastExperts { get; private set; } = [];

    /// <summary>Forgets the history (the system prompt stays).</summary>
    public void Reset() => _history.Clear();

    /// <summary>The messages a reply to <paramref name="user"/> would render: the system prompt, the history, then the user message.</summary>
    public IReadOnlyList<ChatMessage> Messages(string? user = null)
    {
        var messages = new List<ChatMessage>(_history.Count + 2);
        if (SystemPrompt is not null) messages.Add(new ChatMessage("system", SystemPrompt));
        messages.AddRange(_history);
        if (user is not null) messages.Add(new ChatMessage("user", user));
        return messages;
    }

    /// <summary>The prompt text for a reply to <paramref name="user"/>, ending with the template's generation prompt.</summary>
    public string RenderPrompt(string user, ChatOptions? options = null) =>
        _tokenizer.ApplyChatTemplate(Messages(user), addGenerationPrompt: true, options?.TemplateVariables);

    /// <summary>
    /// Adds <paramref name="user"/> to the history and streams the reply's text; the reply joins the history when the
    /// enumeration ends (completed, stopped by the caller, or cancelled by <paramref name="cancel"/>).
    /// </summary>
    public IEnumerable<string> Reply(string user, ChatOptions? options = null, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(user);
        options ??= new ChatOptions();
        if (options.MaxTokens < 1) throw new ArgumentException($"MaxTokens must be at least 1, got {options.MaxTokens}.", nameof(options));
        foreach (string s in options.StopStrings)
            if (string.IsNullOrEmpty(s)) throw new ArgumentException("a stop string is empty; every stop string needs at least one character.", nameof(options));
        int[] prompt = _tokenizer.Encode(RenderPrompt(user, options), addSpecialTokens: false);
        int room = _model.Config.Context - prompt.Length;
        if (room < 1)
            throw new ArgumentException($"the conversation is {prompt.Length} tokens and the model's context is {_model.Config.Context}; reset it or start a shorter one.");
        return Stream(user, prompt, Math.Min(options.MaxTokens, room), options, cancel);
    }

    private IEnumerable<string> Stream(string user, int[] prompt, int maxTokens, ChatOptions options, CancellationToken cancel)
    {
        var stops = new HashSet<int>(options.StopTokenIds ?? _tokenizer.StopTokenIds);
        var decoder = new IncrementalDecoder(_tokenizer);
        var ids = new List<int>();
        var experts = new List<IReadOnlyList<int[]>>();
        var reply = new System.Text.StringBuilder();
        var pending = new System.Text.StringBuilder(); // decoded text not yet shown: it may begin a stop string
        LastStop = ChatStop.Length;
        _history.Add(new ChatMessage("user", user));
        try
        {
            foreach (GeneratedToken token in Generator.Stream(_model, prompt, maxTokens, options.Sampling))
            {
                ids.Add(token.Id);
                experts.Add(token.Experts);
                if (stops.Contains(token.Id))
                {
                    LastStop = ChatStop.EndOfTurn;
                    break;
                }
                pending.Append(decoder.Push(token.Id));
                var (shown, stopped) = Release(pending, options.StopStrings);
                if (shown.Length > 0)
                {
                    reply.Append(shown);
                    yield return shown;
                }
                if (stopped)
                {
                    LastStop = ChatStop.StopString;
                    break;
                }
                if (cancel.IsCancellationRequested)
                {
                    LastStop = ChatStop.Cancelled;
                    break;
                }
            }
            if (LastStop is not ChatStop.StopString)
            {
                pending.Append(decoder.Flush());
                string rest = Cut(pending.ToString(), options.StopStrings, out bool stopped);
                if (stopped && LastStop is ChatStop.Length) LastStop = ChatStop.StopString;
                if (rest.Length > 0)
                {
                    reply.Append(rest);
                    yield return rest;
                }
            }
        }
        finally
        {
            LastIds = ids;
            LastExperts = experts;
            _history.Add(new ChatMessage("assistant", reply.ToString()));
        }
    }

    /// <summary>
    /// The part of <paramref name="pending"/> that can be shown: all of it up to a stop string (then stopped), else
    /// all but the longest end that could still grow into a stop string, which stays pending.
    /// </summary>
    private static (string Shown, bool Stopped) Release(System.Text.StringBuilder pending, IReadOnlyList<string> stopStrings)
    {
        string text = pending.ToString();
        string before = Cut(text, stopStrings, out bool stopped);
        if (stopped)
        {
            pending.Clear();
            return (before, true);
        }
        int hold = 0;
        foreach (string s in stopStrings)
            for (int n = Math.Min(s.Length - 1, text.Length); n > hold; n--)
                if (text.AsSpan(text.Length - n).SequenceEqual(s.AsSpan(0, n)))
                {
                    hold = n;
                    break;
                }
        pending.Remove(0, text.Length - hold);
        return (text[..^hold], false);
    }

    /// <summary><paramref name="text"/> up to the earliest stop string in it.</summary>
    private static string Cut(string text, IReadOnlyList<string> stopStrings, out bool stopped)
    {
        int at = -1;
        foreach (string s in stopStrings)
        {
            int i = text.IndexOf(s, StringComparison.Ordinal);
            if (i >= 0 && (at < 0 || i < at)) at = i;
        }
        stopped = at >= 0;
        return stopped ? text[..at] : text;
    }
}
