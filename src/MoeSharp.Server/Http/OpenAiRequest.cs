using System.Text.Json;
using MoeSharp.Models;
using MoeSharp.Server.Generation;
using MoeSharp.Text;

namespace MoeSharp.Server.Http;

/// <summary>What a completion request asks for, whichever endpoint it came to.</summary>
internal sealed record CompletionParameters(int? MaxTokens, SamplingOptions Sampling, IReadOnlyList<string> Stop, bool Stream, bool IncludeUsage);

/// <summary>
/// Reads the fields of OpenAI's chat and text completion requests. A field of the wrong kind or out of range is an
/// <see cref="ApiError"/> (400) naming it; fields the server has no use for (penalties, logit bias, tools) are ignored,
/// as clients send them by default.
/// </summary>
internal static class OpenAiRequest
{
    /// <summary>The body as JSON; anything else is a 400.</summary>
    public static JsonElement Object(JsonDocument body)
    {
        JsonElement root = body.RootElement;
        if (root.ValueKind != JsonValueKind.Object)
            throw ApiError.BadRequest($"the request body is a JSON {Kind(root)}; expected an object.");
        return root;
    }

    /// <summary>Checks that the request names <paramref name="model"/> (or no model); another name is a 404.</summary>
    public static void CheckModel(JsonElement root, ServedModel model)
    {
        string? id = OptionalString(root, "model");
        if (id is not null && id != model.Id)
            throw new ApiError(404, $"the model '{id}' does not exist; this server serves '{model.Id}'.", "model", "model_not_found");
    }

    /// <summary>The chat messages, read as <see cref="OpenAiMessages"/> reads a messages file.</summary>
    public static IReadOnlyList<ChatMessage> Messages(JsonElement root)
    {
        if (!root.TryGetProperty("messages", out JsonElement list) || list.ValueKind != JsonValueKind.Array)
            throw ApiError.BadRequest("messages is missing or not a list; expected [{\"role\": ..., \"content\": ...}, ...].", "messages");
        if (list.GetArrayLength() == 0) throw ApiError.BadRequest("messages is empty; a chat needs at least one message.", "messages");
        try
        {
            return OpenAiMessages.Parse(list.GetRawText(), "request");
        }
        catch (InvalidDataException e)
        {
            throw ApiError.BadRequest(e.Message.Replace("request: ", "", StringComparison.Ordinal), "messages");
        }
    }

    /// <summary>The prompt of a text completion: a string, a list holding one string, or a list of token ids.</summary>
    public static int[] Prompt(JsonElement root, ServedModel model)
    {
        if (!root.TryGetProperty("prompt", out JsonElement p)) throw ApiError.BadRequest("prompt is missing; expected a string or a list of token ids.", "prompt");
        if (p.ValueKind == JsonValueKind.String) return model.TextPrompt(p.GetString()!);
        if (p.ValueKind != JsonValueKind.Array) throw ApiError.BadRequest($"prompt is a JSON {Kind(p)}; expected a string or a list of token ids.", "prompt");
        int n = p.GetArrayLength();
        if (n == 1 && p[0].ValueKind == JsonValueKind.String) return model.TextPrompt(p[0].GetString()!);
        var ids = new int[n];
        for (int i = 0; i < n; i++)
        {
            if (p[i].ValueKind == JsonValueKind.String) throw ApiError.BadRequest("prompt has several texts; this server completes one prompt per request.", "prompt");
            if (p[i].ValueKind != JsonValueKind.Number || !p[i].TryGetInt32(out ids[i]) || (uint)ids[i] >= (uint)model.Model.Config.Vocab)
                throw ApiError.BadRequest($"prompt[{i}] is {p[i].GetRawText()}; expected a token id in [0, {model.Model.Config.Vocab}).", "prompt");
        }
        return ids;
    }

    /// <summary>The limit, sampling, stop sequences and streaming of a request, over the server's <paramref name="defaults"/>.</summary>
    public static CompletionParameters Parameters(JsonElement root, SamplingOptions defaults, int? defaultMaxTokens)
    {
        if (OptionalInt(root, "n", 1, int.MaxValue) is > 1) throw ApiError.BadRequest("n must be 1; this server makes one choice per request.", "n");
        int? maxTokens = OptionalInt(root, "max_completion_tokens", 1, int.MaxValue) ?? OptionalInt(root, "max_tokens", 1, int.MaxValue) ?? defaultMaxTokens;
        var sampling = defaults with
        {
            Temperature = OptionalFloat(root, "temperature", 0, float.MaxValue, minExcluded: false) ?? defaults.Temperature,
            TopP = OptionalFloat(root, "top_p", 0, 1, minExcluded: true) ?? defaults.TopP,
            TopK = OptionalInt(root, "top_k", 0, int.MaxValue) ?? defaults.TopK,
            // As with OpenAI, a request without a seed samples differently each time.
            Seed = OptionalSeed(root) ?? (ulong)Random.Shared.NextInt64(long.MinValue, long.MaxValue),
        };
        bool stream = OptionalBool(root, "stream") ?? false;
        bool includeUsage = false;
        if (root.TryGetProperty("stream_options", out JsonElement so) && so.ValueKind != JsonValueKind.Null)
        {
            if (so.ValueKind != JsonValueKind.Object) throw ApiError.BadRequest($"stream_options is a JSON {Kind(so)}; expected an object.", "stream_options");
            includeUsage = OptionalBool(so, "include_usage", "stream_options.include_usage") ?? false;
        }
        return new CompletionParameters(maxTokens, sampling, Stop(root), stream, includeUsage);
    }

    private static List<string> Stop(JsonElement root)
    {
        if (!root.TryGetProperty("stop", out JsonElement s) || s.ValueKind == JsonValueKind.Null) return [];
        if (s.ValueKind == JsonValueKind.String) return NonEmpty([s.GetString()!]);
        if (s.ValueKind != JsonValueKind.Array) throw ApiError.BadRequest($"stop is a JSON {Kind(s)}; expected a string or a list of strings.", "stop");
        var stops = new List<string>();
        foreach (JsonElement e in s.EnumerateArray())
        {
            if (e.ValueKind != JsonValueKind.String) throw ApiError.BadRequest($"stop[{stops.Count}] is a JSON {Kind(e)}; expected a string.", "stop");
            stops.Add(e.GetString()!);
        }
        return NonEmpty(stops);
    }

    private static List<string> NonEmpty(List<string> stops) =>
        stops.Exists(s => s.Length == 0) ? throw ApiError.BadRequest("stop holds an empty string; every stop sequence needs at least one character.", "stop") : stops;

    private static string? OptionalString(JsonElement e, string name)
    {
        if (!e.TryGetProperty(name, out JsonElement v) || v.ValueKind == JsonValueKind.Null) return null;
        return v.ValueKind == JsonValueKind.String ? v.GetString() : throw ApiError.BadRequest($"{name} is a JSON {Kind(v)}; expected a string.", name);
    }

    private static bool? OptionalBool(JsonElement e, string name, string? shown = null)
    {
        if (!e.TryGetProperty(name, out JsonElement v) || v.ValueKind == JsonValueKind.Null) return null;
        return v.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw ApiError.BadRequest($"{shown ?? name} is {v.GetRawText()}; expected true or false.", shown ?? name),
        };
    }

    private static int? OptionalInt(JsonElement e, string name, int min, int max)
    {
        if (!e.TryGetProperty(name, out JsonElement v) || v.ValueKind == JsonValueKind.Null) return null;
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt64(out long x) || x < min || x > max)
            throw ApiError.BadRequest($"{name} is {v.GetRawText()}; expected an integer {(max == int.MaxValue ? $"of at least {min}" : $"in [{min}, {max}]")}.", name);
        return (int)x;
    }

    private static float? OptionalFloat(JsonElement e, string name, float min, float max, bool minExcluded)
    {
        if (!e.TryGetProperty(name, out JsonElement v) || v.ValueKind == JsonValueKind.Null) return null;
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetDouble(out double x) || !double.IsFinite(x) || x > max || x < min || (minExcluded && x == min))
            throw ApiError.BadRequest($"{name} is {v.GetRawText()}; expected a number in {(minExcluded ? "(" : "[")}{min}, {(max == float.MaxValue ? "∞)" : max + "]")}.", name);
        return (float)x;
    }

    private static ulong? OptionalSeed(JsonElement e)
    {
        if (!e.TryGetProperty("seed", out JsonElement v) || v.ValueKind == JsonValueKind.Null) return null;
        if (v.ValueKind == JsonValueKind.Number && v.TryGetInt64(out long signed)) return unchecked((ulong)signed);
        if (v.ValueKind == JsonValueKind.Number && v.TryGetUInt64(out ulong seed)) return seed;
        throw ApiError.BadRequest($"seed is {v.GetRawText()}; expected an integer.", "seed");
    }

    private static string Kind(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.Object => "object",
        JsonValueKind.Array => "array",
        JsonValueKind.String => "string",
        JsonValueKind.Number => "number",
        JsonValueKind.True or JsonValueKind.False => "boolean",
        _ => "null",
    };
}
