using System.Text.Json;

namespace MoeSharp.Text;

/// <summary>One tool call of an assistant message, in the OpenAI chat shape.</summary>
/// <param name="Arguments">The arguments as JSON text, as the OpenAI API carries them.</param>
public sealed record ChatToolCall(string Name, string Arguments, string? Id = null);

/// <summary>One chat message in the OpenAI shape; optional fields reach the template only when set.</summary>
public sealed record ChatMessage(string Role, string? Content)
{
    /// <summary>The model's reasoning before its answer (Qwen3's and DeepSeek-R1's <c>reasoning_content</c>).</summary>
    public string? ReasoningContent { get; init; }

    /// <summary>For an <c>assistant</c> message: the function calls it made, in order.</summary>
    public IReadOnlyList<ChatToolCall>? ToolCalls { get; init; }

    /// <summary>For a <c>tool</c> message: the call it answers.</summary>
    public string? ToolCallId { get; init; }

    /// <summary>For a <c>tool</c> message: the function that answered.</summary>
    public string? Name { get; init; }

    /// <summary>The message as the template sees it: <c>role</c> and <c>content</c> always (content may be none),
    /// other fields only when set, so <c>is defined</c> tells them apart.</summary>
    internal Dictionary<string, object?> ToTemplateValue()
    {
        var d = new Dictionary<string, object?>(StringComparer.Ordinal) { ["role"] = Role, ["content"] = Content };
        if (ReasoningContent is not null) d["reasoning_content"] = ReasoningContent;
        if (ToolCallId is not null) d["tool_call_id"] = ToolCallId;
        if (Name is not null) d["name"] = Name;
        if (ToolCalls is not null)
        {
            var calls = new List<object?>();
            foreach (ChatToolCall c in ToolCalls)
            {
                var call = new Dictionary<string, object?>(StringComparer.Ordinal);
                if (c.Id is not null) call["id"] = c.Id;
                call["type"] = "function";
                call["function"] = new Dictionary<string, object?>(StringComparer.Ordinal) { ["name"] = c.Name, ["arguments"] = c.Arguments };
                calls.Add(call);
            }
            d["tool_calls"] = calls;
        }
        return d;
    }
}

/// <summary>
/// A Jinja chat template (<c>chat_template</c> of <c>tokenizer_config.json</c>) parsed once and rendered as
/// Hugging Face renders it (trim_blocks and lstrip_blocks on). The interpreter covers what real templates use:
/// for loops with <c>loop</c>, <c>break</c> and <c>continue</c>, if/elif/else, set (and set blocks) and namespace,
/// macros and call blocks, Hugging Face's generation blocks, string methods, slicing, the common filters and tests, <c>raise_exception</c>, <c>strftime_now</c> and
/// whitespace control; anything else is a <see cref="ChatTemplateException"/>
/// naming the construct and its line when the template is parsed or run.
/// </summary>
public sealed class ChatTemplate
{
    private readonly List<JinjaNode> _nodes;

    private ChatTemplate(List<JinjaNode> nodes) => _nodes = nodes;

    /// <summary>Parses <paramref name="source"/>; a syntax error or unsupported statement throws here.</summary>
    public static ChatTemplate Parse(string source)
    {
        ArgumentNullException.ThrowIfNull(source);
        return new ChatTemplate(JinjaParser.Parse(source));
    }

    /// <summary>Renders with the variables chat templates expect: <c>messages</c>, <c>add_generation_prompt</c>,
    /// <c>bos_token</c> / <c>eos_token</c> when given, <c>tools</c> when given (JSON schemas), and any
    /// <paramref name="extra"/> ones (<c>enable_thinking</c>). <paramref name="clock"/> is what <c>strftime_now</c>
    /// reads (the system clock when null); fix it to make a dated template reproducible.</summary>
    public string Render(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt, string? bosToken = null, string? eosToken = null,
        IReadOnlyList<JsonElement>? tools = null, IReadOnlyDictionary<string, object?>? extra = null, TimeProvider? clock = null)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var list = new List<object?>(messages.Count);
        foreach (ChatMessage m in messages) list.Add(m.ToTemplateValue());
        var variables = new Dictionary<string, object?>(StringComparer.Ordinal)
        {
            ["messages"] = list,
            ["add_generation_prompt"] = addGenerationPrompt,
        };
        if (bosToken is not null) variables["bos_token"] = bosToken;
        if (eosToken is not null) variables["eos_token"] = eosToken;
        if (tools is not null) variables["tools"] = tools.Select(t => FromJson(t)).ToList();
        if (extra is not null) foreach (var (k, v) in extra) variables[k] = v;
        return Render(variables, clock);
    }

    /// <summary>Renders with plain variables: null, bool, long, double, string, lists and string-keyed
    /// dictionaries of those (<see cref="FromJson"/> makes them from JSON). <paramref name="clock"/> is what
    /// <c>strftime_now</c> reads (the system clock when null).</summary>
    public string Render(IReadOnlyDictionary<string, object?> variables, TimeProvider? clock = null)
    {
        ArgumentNullException.ThrowIfNull(variables);
        return new JinjaRenderer(variables, clock ?? TimeProvider.System).Render(_nodes);
    }

    /// <summary>A JSON value as a template value: objects keep their key order.</summary>
    public static object? FromJson(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.Null or JsonValueKind.Undefined => null,
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        JsonValueKind.String => e.GetString(),
        JsonValueKind.Number => e.TryGetInt64(out long l) ? (object)l : e.GetDouble(), // boxed apart: "? l : d" would make every integer a double
        JsonValueKind.Array => e.EnumerateArray().Select(FromJson).ToList(),
        _ => e.EnumerateObject().ToDictionary(p => p.Name, p => FromJson(p.Value), StringComparer.Ordinal),
    };
}
