using System.Text;
using System.Text.Json;

namespace MoeSharp.Text;

/// <summary>The system-message settings of the harmony format.</summary>
public sealed class HarmonyOptions
{
    /// <summary>The first line of the system message: who the model is.</summary>
    public string ModelIdentity { get; init; } = "You are ChatGPT, a large language model trained by OpenAI.";

    /// <summary>The "Knowledge cutoff:" line, as year-month.</summary>
    public string KnowledgeCutoff { get; init; } = "2024-06";

    /// <summary>The "Current date:" line, e.g. 2025-06-28; left out when null so a rendering is reproducible.</summary>
    public string? CurrentDate { get; init; }

    /// <summary>low, medium or high.</summary>
    public string ReasoningEffort { get; init; } = "medium";
}

/// <summary>
/// OpenAI's published harmony chat format, which GPT-OSS was trained on and whose <c>tokenizer_config.json</c>
/// carries no template: a system message (identity, dates, reasoning effort, channels), the system prompt as the
/// developer message's instructions, then <c>&lt;|start|&gt;{role}&lt;|message|&gt;{content}&lt;|end|&gt;</c> per
/// message. Assistant answers go to the final channel; earlier reasoning is dropped, except in the turn still
/// calling tools, where it is kept on the analysis channel. Function tools are declared in the developer message's
/// <c># Tools</c> section (see <see cref="HarmonyTools"/>); a call is an assistant message on the commentary channel
/// to <c>functions.NAME</c> ending in <c>&lt;|call|&gt;</c>, and its result a <c>functions.NAME to=assistant</c>
/// message, as openai/harmony's <c>docs/format.md</c> shows them.
/// </summary>
public static class HarmonyFormat
{
    /// <summary>The prompt text of <paramref name="messages"/>; with <paramref name="addGenerationPrompt"/> it ends with <c>&lt;|start|&gt;assistant</c> so the model answers next.</summary>
    /// <param name="tools">Function tools in the OpenAI shape (<c>{"type": "function", "function": {"name",
    /// "description", "parameters"}}</c>); declared after the first system message's instructions.</param>
    public static string Render(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt, HarmonyOptions? options = null,
        IReadOnlyList<JsonElement>? tools = null)
    {
        ArgumentNullException.ThrowIfNull(messages);
        options ??= new HarmonyOptions();
        if (options.ReasoningEffort is not ("low" or "medium" or "high"))
            throw new ArgumentException($"ReasoningEffort '{options.ReasoningEffort}' is not low, medium or high.", nameof(options));
        List<HarmonyTools.FunctionTool> functions = tools is null ? [] : HarmonyTools.Read(tools);
        var sb = new StringBuilder();
        bool callsTools = functions.Count > 0;
        foreach (ChatMessage m in messages) callsTools |= m.ToolCalls is { Count: > 0 };
        sb.Append("<|start|>system<|message|>").Append(options.ModelIdentity).Append('\n')
          .Append("Knowledge cutoff: ").Append(options.KnowledgeCutoff).Append('\n');
        if (options.CurrentDate is not null) sb.Append("Current date: ").Append(options.CurrentDate).Append('\n');
        sb.Append("\nReasoning: ").Append(options.ReasoningEffort).Append("\n\n")
          .Append("# Valid channels: analysis, commentary, final. Channel must be included for every message.");
        if (callsTools) sb.Append("\nCalls to these tools must go to the commentary channel: 'functions'.");
        sb.Append("<|end|>");

        // The first system prompt and the tools share one developer message: "# Instructions", its text, "# Tools".
        int first = messages.Count > 0 && messages[0].Role is "system" or "developer" ? 1 : 0;
        var developer = new List<string>();
        if (first == 1) developer.AddRange(["# Instructions", messages[0].Content ?? ""]);
        if (functions.Count > 0) developer.Add(HarmonyTools.Section(functions));
        if (developer.Count > 0) sb.Append("<|start|>developer<|message|>").AppendJoin("\n\n", developer).Append("<|end|>");

        int lastUser = -1;
        for (int i = 0; i < messages.Count; i++) if (messages[i].Role == "user") lastUser = i;
        var toolNames = new Dictionary<string, string>(StringComparer.Ordinal);
        for (int i = first; i < messages.Count; i++)
        {
            ChatMessage m = messages[i];
            switch (m.Role)
            {
                case "system" or "developer":
                    sb.Append("<|start|>developer<|message|># Instructions\n\n").Append(m.Content).Append("<|end|>");
                    break;
                case "user":
                    sb.Append("<|start|>user<|message|>").Append(m.Content).Append("<|end|>");
                    break;
                case "assistant":
                    // Reasoning stays only in the turn under way (after the last user message) and only while it calls tools.
                    if (m.ReasoningContent is { Length: > 0 } reasoning && i > lastUser && callsTools)
                        sb.Append("<|start|>assistant<|channel|>analysis<|message|>").Append(reasoning).Append("<|end|>");
                    if (m.Content is { Length: > 0 } content)
                        sb.Append("<|start|>assistant<|channel|>final<|message|>").Append(content).Append("<|end|>");
                    foreach (ChatToolCall call in m.ToolCalls ?? [])
                    {
                        if (call.Id is not null) toolNames[call.Id] = call.Name;
                        sb.Append("<|start|>assistant<|channel|>commentary to=functions.").Append(call.Name)
                          .Append(" <|constrain|>json<|message|>").Append(call.Arguments).Append("<|call|>");
                    }
                    break;
                case "tool":
                    string name = m.Name ?? (m.ToolCallId is not null && toolNames.TryGetValue(m.ToolCallId, out string? n) ? n
                        : throw new ArgumentException($"messages[{i}]: a tool message needs Name or the ToolCallId of an earlier call.", nameof(messages)));
                    sb.Append("<|start|>functions.").Append(name).Append(" to=assistant<|channel|>commentary<|message|>").Append(m.Content).Append("<|end|>");
                    break;
                default:
                    throw new ArgumentException($"messages[{i}]: role '{m.Role}' is not system, developer, user, assistant or tool.", nameof(messages));
            }
        }
        if (addGenerationPrompt) sb.Append("<|start|>assistant");
        return sb.ToString();
    }
}
