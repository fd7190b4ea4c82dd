using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.AI;
using MoeSharp.Models;
using MoeSharp.Server.Engine;
using MoeSharp.Server.Generation;
using AiChatMessage = Microsoft.Extensions.AI.ChatMessage;
using AiChatOptions = Microsoft.Extensions.AI.ChatOptions;
using TemplateMessage = MoeSharp.Text.ChatMessage;

namespace MoeSharp.Server.Chat;

/// <summary>
/// A served model as a <c>Microsoft.Extensions.AI</c> <see cref="IChatClient"/>: messages rendered by the model's
/// chat template, decoded through an <see cref="IGenerationEngine"/>, replies streamed as text that never splits a
/// UTF-8 character. <see cref="AiChatOptions"/> maps to temperature, top-p, top-k (<see cref="AiChatOptions.TopK"/>,
/// or <c>"top_k"</c> in <see cref="AiChatOptions.AdditionalProperties"/>), seed, the output limit and stop sequences
/// (not shown); a reply also ends at the model's end-of-turn token. <see cref="GetService"/> gives the
/// <see cref="MoeTransformer"/>, the <see cref="ServedModel"/>, its <see cref="ExpertLoad"/> and the engine.
/// </summary>
public sealed class MoeChatClient : IChatClient
{
    private readonly IGenerationEngine _engine;
    private readonly bool _ownsEngine;
    private readonly ChatClientMetadata _metadata;

    /// <summary>A client of <paramref name="model"/> on <paramref name="engine"/>, which the caller keeps and disposes.</summary>
    /// <param name="sampling">What a request that sets no sampling option gets (<see cref="SamplingOptions.Default"/> when null), the seed aside: a request without one gets a fresh random seed.</param>
    public MoeChatClient(ServedModel model, IGenerationEngine engine, SamplingOptions? sampling = null)
        : this(model, engine, ownsEngine: false, sampling)
    {
    }

    /// <summary>A client of <paramref name="model"/> with a continuous-batching engine of its own (<see cref="BatchEngine"/>, default <see cref="BatchOptions"/>), disposed with it.</summary>
    public MoeChatClient(ServedModel model, SamplingOptions? sampling = null)
        : this(model, new BatchEngine(model?.Model ?? throw new ArgumentNullException(nameof(model)), new BatchOptions()), ownsEngine: true, sampling)
    {
    }

    private MoeChatClient(ServedModel model, IGenerationEngine engine, bool ownsEngine, SamplingOptions? sampling)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(engine);
        Model = model;
        _engine = engine;
        _ownsEngine = ownsEngine;
        Sampling = sampling ?? SamplingOptions.Default;
        Sampling.Validate();
        _metadata = new ChatClientMetadata("moesharp", providerUri: null, defaultModelId: model.Id);
    }

    /// <summary>The model served.</summary>
    public ServedModel Model { get; }

    /// <summary>Sampling for whatever a request leaves unset, but the seed.</summary>
    public SamplingOptions Sampling { get; }

    /// <inheritdoc />
    public async Task<ChatResponse> GetResponseAsync(IEnumerable<AiChatMessage> messages, AiChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        Completion completion = Start(messages, options);
        var text = new StringBuilder();
        await foreach (string piece in completion.Text(cancellationToken).ConfigureAwait(false)) text.Append(piece);
        return new ChatResponse(new AiChatMessage(ChatRole.Assistant, text.ToString()))
        {
            ResponseId = NewId(),
            ModelId = Model.Id,
            CreatedAt = DateTimeOffset.UtcNow,
            FinishReason = FinishReason(completion.Stop),
            Usage = Usage(completion),
        };
    }

    /// <inheritdoc />
    public IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<AiChatMessage> messages, AiChatOptions? options = null, CancellationToken cancellationToken = default) =>
        Stream(Start(messages, options), cancellationToken);

    private async IAsyncEnumerable<ChatResponseUpdate> Stream(Completion completion, [EnumeratorCancellation] CancellationToken ct)
    {
        string id = NewId();
        var created = DateTimeOffset.UtcNow;
        await foreach (string piece in completion.Text(ct).ConfigureAwait(false))
            yield return new ChatResponseUpdate(ChatRole.Assistant, piece) { ResponseId = id, MessageId = id, ModelId = Model.Id, CreatedAt = created };
        yield return new ChatResponseUpdate(ChatRole.Assistant, [new UsageContent(Usage(completion))])
        {
            ResponseId = id,
            MessageId = id,
            ModelId = Model.Id,
            CreatedAt = created,
            FinishReason = FinishReason(completion.Stop),
        };
    }

    /// <inheritdoc />
    public object? GetService(Type serviceType, object? serviceKey = null)
    {
        ArgumentNullException.ThrowIfNull(serviceType);
        if (serviceKey is not null) return null;
        if (serviceType == typeof(ChatClientMetadata)) return _metadata;
        if (serviceType == typeof(MoeTransformer)) return Model.Model;
        if (serviceType == typeof(ServedModel)) return Model;
        if (serviceType == typeof(ExpertLoad)) return Model.Load;
        if (serviceType == typeof(Text.HfTokenizer)) return Model.Tokenizer;
        if (serviceType.IsInstanceOfType(_engine)) return _engine;
        return serviceType.IsInstanceOfType(this) ? this : null;
    }

    /// <summary>Disposes the engine when the client made it (it drains first).</summary>
    public void Dispose()
    {
        if (_ownsEngine) _engine.DisposeAsync().AsTask().GetAwaiter().GetResult();
    }

    /// <summary>The completion of <paramref name="messages"/>: the template's prompt, the limit and the sampling <paramref name="options"/> ask for.</summary>
    private Completion Start(IEnumerable<AiChatMessage> messages, AiChatOptions? options)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var rendered = new List<TemplateMessage>();
        if (options?.Instructions is { Length: > 0 } instructions) rendered.Add(new TemplateMessage("system", instructions));
        foreach (AiChatMessage m in messages) rendered.Add(ToTemplate(m));
        if (rendered.Count == 0) throw new ArgumentException("there are no messages; a chat needs at least one.", nameof(messages));
        int[] prompt = Model.ChatPrompt(rendered);
        return Model.Complete(_engine, prompt, options?.MaxOutputTokens, ToSampling(options), options?.StopSequences is { } stops ? [.. stops] : null);
    }

    /// <summary>The sampling <paramref name="options"/> ask for, with <see cref="Sampling"/> for whatever they leave unset.</summary>
    public SamplingOptions ToSampling(AiChatOptions? options)
    {
        // As with OpenAI's API, a request without a seed samples differently each time.
        ulong seed = options?.Seed is { } given ? unchecked((ulong)given) : (ulong)Random.Shared.NextInt64(long.MinValue, long.MaxValue);
        if (options is null) return Sampling with { Seed = seed };
        int? topK = options.TopK;
        if (topK is null && options.AdditionalProperties?.TryGetValue("top_k", out object? k) == true && k is not null)
            topK = k switch
            {
                int i => i,
                long l when l is >= 0 and <= int.MaxValue => (int)l,
                JsonElement { ValueKind: JsonValueKind.Number } j when j.TryGetInt32(out int i) => i,
                string s when int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out int i) => i,
                _ => throw new ArgumentException($"top_k must be a non-negative integer, got {k}.", nameof(options)),
            };
        return Sampling with
        {
            Temperature = options.Temperature ?? Sampling.Temperature,
            TopP = options.TopP ?? Sampling.TopP,
            TopK = topK ?? Sampling.TopK,
            Seed = seed, // a negative seed is taken as its two's-complement bits
        };
    }

    /// <summary>A message as the chat template reads it: its text, reasoning, tool calls and tool result.</summary>
    private static TemplateMessage ToTemplate(AiChatMessage m)
    {
        var text = new StringBuilder();
        StringBuilder? reasoning = null;
        List<Text.ChatToolCall>? calls = null;
        string? toolCallId = null;
        foreach (AIContent c in m.Contents)
        {
            switch (c)
            {
                case TextContent t:
                    text.Append(t.Text);
                    break;
                case TextReasoningContent r:
                    (reasoning ??= new StringBuilder()).Append(r.Text);
                    break;
                case FunctionCallContent f:
                    (calls ??= []).Add(new Text.ChatToolCall(f.Name, JsonSerializer.Serialize(f.Arguments ?? new Dictionary<string, object?>()), f.CallId));
                    break;
                case FunctionResultContent r:
                    toolCallId = r.CallId;
                    text.Append(r.Result is string s ? s : JsonSerializer.Serialize(r.Result));
                    break;
            }
        }
        return new TemplateMessage(m.Role.Value, text.ToString())
        {
            ReasoningContent = reasoning?.ToString(),
            ToolCalls = calls,
            ToolCallId = toolCallId,
            Name = m.AuthorName,
        };
    }

    private static ChatFinishReason FinishReason(ChatStop stop) => stop == ChatStop.Length ? ChatFinishReason.Length : ChatFinishReason.Stop;

    private static UsageDetails Usage(Completion c) => new()
    {
        InputTokenCount = c.PromptTokens,
        OutputTokenCount = c.CompletionTokens,
        TotalTokenCount = c.PromptTokens + c.CompletionTokens,
    };

    private static string NewId() => "chatcmpl-" + Guid.NewGuid().ToString("N");
}
