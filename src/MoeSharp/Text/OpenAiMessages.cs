using System.Text;
using System.Text.Json;

namespace MoeSharp.Text;

/// <summary>A chat request in the OpenAI shape: its messages and its function tools (empty when it has none).</summary>
public sealed record OpenAiChatRequest(IReadOnlyList<ChatMessage> Messages, IReadOnlyList<JsonElement> Tools);

/// <summary>
/// Reads chat messages in the OpenAI chat format: a JSON array of messages, or a request object with a
/// <c>messages</c> array. A message has <c>role</c> and <c>content</c> (a string, null, or a list of parts whose
/// <c>text</c> is joined), and optionally <c>reasoning_content</c>, <c>tool_calls</c>, <c>tool_call_id</c> and
/// <c>name</c>; a request object may also carry <c>tools</c> (<see cref="ParseRequest"/>). Anything else of the
/// wrong kind is an <see cref="InvalidDataException"/> naming the file and field.
/// </summary>
public static class OpenAiMessages
{
    /// <summary>The messages of the JSON file at <paramref name="path"/>.</summary>
    public static IReadOnlyList<ChatMessage> Read(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"messages file '{path}' does not exist.", path);
        return Parse(File.ReadAllText(path), path);
    }

    /// <summary>The messages of <paramref name="json"/>; <paramref name="source"/> names it in errors.</summary>
    public static IReadOnlyList<ChatMessage> Parse(string json, string source) => ParseRequest(json, source).Messages;

    /// <summary>The messages and tools of the JSON file at <paramref name="path"/>.</summary>
    public static OpenAiChatRequest ReadRequest(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"messages file '{path}' does not exist.", path);
        return ParseRequest(File.ReadAllText(path), path);
    }

    /// <summary>The messages of <paramref name="json"/> and, when it is a request object, its <c>tools</c> (function
    /// tools: <c>{"type": "function", "function": {"name", "description", "parameters"}}</c>), as
    /// <see cref="ChatTemplate.Render(IReadOnlyList{ChatMessage}, bool, string?, string?, IReadOnlyList{JsonElement}?, IReadOnlyDictionary{string, object?}?, TimeProvider?)"/>
    /// and <see cref="HarmonyFormat.Render"/> take them.</summary>
    public static OpenAiChatRequest ParseRequest(string json, string source)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(json);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{source}: not valid JSON: {e.Message}", e);
        }
        using (doc)
        {
            JsonElement list = doc.RootElement;
            var tools = new List<JsonElement>();
            if (list.ValueKind == JsonValueKind.Object)
            {
                if (list.TryGetProperty("tools", out JsonElement t) && t.ValueKind != JsonValueKind.Null) Tools(t, source, tools);
                if (list.TryGetProperty("messages", out JsonElement m)) list = m;
            }
            if (list.ValueKind != JsonValueKind.Array)
                throw new InvalidDataException($"{source}: expected a JSON array of messages or an object with \"messages\", got {doc.RootElement.ValueKind}.");
            var messages = new List<ChatMessage>();
            int i = 0;
            foreach (JsonElement e in list.EnumerateArray())
            {
                messages.Add(Message(e, $"{source}: messages[{i}]"));
                i++;
            }
            return new OpenAiChatRequest(messages, tools);
        }
    }

    private static void Tools(JsonElement tools, string source, List<JsonElement> into)
    {
        if (tools.ValueKind != JsonValueKind.Array) throw new InvalidDataException($"{source}: tools is {tools.ValueKind}; expected a list of function tools.");
        int k = 0;
        foreach (JsonElement tool in tools.EnumerateArray())
        {
            string at = $"{source}: tools[{k++}]";
            if (tool.ValueKind != JsonValueKind.Object) throw new InvalidDataException($"{at} is {tool.ValueKind}; expected {{\"type\": \"function\", \"function\": {{...}}}}.");
            string? type = OptionalString(tool, "type", at);
            if (type is not (null or "function")) throw new InvalidDataException($"{at}.type is '{type}'; only \"function\" tools are supported.");
            if (!tool.TryGetProperty("function", out JsonElement f) || f.ValueKind != JsonValueKind.Object)
                throw new InvalidDataException($"{at}.function is missing; expected an object with name, description and parameters.");
            if (OptionalString(f, "name", at + ".function") is null) throw new InvalidDataException($"{at}.function.name is missing; expected a string.");
            OptionalString(f, "description", at + ".function");
            if (f.TryGetProperty("parameters", out JsonElement p) && p.ValueKind is not (JsonValueKind.Object or JsonValueKind.Null))
                throw new InvalidDataException($"{at}.function.parameters is {p.ValueKind}; expected a JSON schema object.");
            into.Add(tool.Clone());
        }
    }

    private static ChatMessage Message(JsonElement e, string where)
    {
        if (e.ValueKind != JsonValueKind.Object) throw new InvalidDataException($"{where} is {e.ValueKind}; expected an object with role and content.");
        string role = OptionalString(e, "role", where) ?? throw new InvalidDataException($"{where}.role is missing; expected a string such as \"user\".");
        return new ChatMessage(role, Content(e, where))
        {
            ReasoningContent = OptionalString(e, "reasoning_content", where),
            ToolCallId = OptionalString(e, "tool_call_id", where),
            Name = OptionalString(e, "name", where),
            ToolCalls = ToolCalls(e, where),
        };
    }

    private static string? Content(JsonElement e, string where)
    {
        if (!e.TryGetProperty("content", out JsonElement c) || c.ValueKind == JsonValueKind.Null) return null;
        if (c.ValueKind == JsonValueKind.String) return c.GetString();
        if (c.ValueKind != JsonValueKind.Array) throw new InvalidDataException($"{where}.content is {c.ValueKind}; expected a string, null or a list of text parts.");
        var text = new StringBuilder();
        int k = 0;
        foreach (JsonElement part in c.EnumerateArray())
        {
            string at = $"{where}.content[{k++}]";
            if (part.ValueKind != JsonValueKind.Object || OptionalString(part, "type", at) != "text")
                throw new InvalidDataException($"{at} is not a text part; expected {{\"type\": \"text\", \"text\": ...}} (only text is supported).");
            text.Append(OptionalString(part, "text", at) ?? throw new InvalidDataException($"{at}.text is missing; expected a string."));
        }
        return text.ToString();
    }

    private static List<ChatToolCall>? ToolCalls(JsonElement e, string where)
    {
        if (!e.TryGetProperty("tool_calls", out JsonElement calls) || calls.ValueKind == JsonValueKind.Null) return null;
        if (calls.ValueKind != JsonValueKind.Array) throw new InvalidDataException($"{where}.tool_calls is {calls.ValueKind}; expected a list.");
        var list = new List<ChatToolCall>();
        int k = 0;
        foreach (JsonElement call in calls.EnumerateArray())
        {
            string at = $"{where}.tool_calls[{k++}]";
            if (call.ValueKind != JsonValueKind.Object || !call.TryGetProperty("function", out JsonElement f) || f.ValueKind != JsonValueKind.Object)
                throw new InvalidDataException($"{at} has no function object; expected {{\"function\": {{\"name\", \"arguments\"}}}}.");
            string name = OptionalString(f, "name", at + ".function") ?? throw new InvalidDataException($"{at}.function.name is missing; expected a string.");
            // The API carries arguments as JSON text; an object written inline is taken as that text.
            string arguments = f.TryGetProperty("arguments", out JsonElement a)
                ? a.ValueKind == JsonValueKind.String ? a.GetString()! : a.GetRawText()
                : "{}";
            list.Add(new ChatToolCall(name, arguments, OptionalString(call, "id", at)));
        }
        return list;
    }

    private static string? OptionalString(JsonElement e, string name, string where)
    {
        if (!e.TryGetProperty(name, out JsonElement v) || v.ValueKind == JsonValueKind.Null) return null;
        return v.ValueKind == JsonValueKind.String ? v.GetString() : throw new InvalidDataException($"{where}.{name} is {v.ValueKind}; expected a string.");
    }
}
