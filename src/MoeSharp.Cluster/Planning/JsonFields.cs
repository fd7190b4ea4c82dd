using System.Text.Json;

namespace MoeSharp.Cluster.Planning;

/// <summary>
/// Typed reads of a JSON object's fields, each failure an <see cref="InvalidDataException"/> of one line naming the
/// field by its path (<c>cluster.json: silos[1].port</c>) and what was expected, so that a bad configuration file is
/// reported like any other bad input.
/// </summary>
internal static class JsonFields
{
    /// <summary>Parses <paramref name="json"/>; a syntax error names <paramref name="source"/>, the line and the column.</summary>
    public static JsonDocument Parse(string json, string source)
    {
        try
        {
            return JsonDocument.Parse(json, new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{source}: not valid JSON at line {(e.LineNumber ?? 0) + 1}, column {(e.BytePositionInLine ?? 0) + 1}: {FirstSentence(e.Message)}", e);
        }
    }

    /// <summary>The field <paramref name="name"/> of the object at <paramref name="path"/>, which must exist.</summary>
    public static JsonElement Required(JsonElement obj, string name, string path)
    {
        if (obj.ValueKind != JsonValueKind.Object) throw new InvalidDataException($"{path}: expected a JSON object, got {Kind(obj)}.");
        if (!obj.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
            throw new InvalidDataException($"{path}: the field \"{name}\" is missing.");
        return value;
    }

    /// <summary>The field if present and not null.</summary>
    public static JsonElement? Optional(JsonElement obj, string name, string path)
    {
        if (obj.ValueKind != JsonValueKind.Object) throw new InvalidDataException($"{path}: expected a JSON object, got {Kind(obj)}.");
        return obj.TryGetProperty(name, out var value) && value.ValueKind != JsonValueKind.Null ? value : null;
    }

    public static int Int(JsonElement obj, string name, string path, int min = 0, int max = int.MaxValue) =>
        AsInt(Required(obj, name, path), $"{path}.{name}", min, max);

    public static int OptionalInt(JsonElement obj, string name, string path, int fallback, int min = 0, int max = int.MaxValue) =>
        Optional(obj, name, path) is { } v ? AsInt(v, $"{path}.{name}", min, max) : fallback;

    public static string String(JsonElement obj, string name, string path) => AsString(Required(obj, name, path), $"{path}.{name}");

    public static string? OptionalString(JsonElement obj, string name, string path) =>
        Optional(obj, name, path) is { } v ? AsString(v, $"{path}.{name}") : null;

    /// <summary>The elements of an array field.</summary>
    public static JsonElement.ArrayEnumerator Array(JsonElement obj, string name, string path)
    {
        var value = Required(obj, name, path);
        if (value.ValueKind != JsonValueKind.Array) throw new InvalidDataException($"{path}.{name}: expected an array, got {Kind(value)}.");
        return value.EnumerateArray();
    }

    /// <summary>An array of non-negative integers.</summary>
    public static int[] Ints(JsonElement obj, string name, string path)
    {
        var list = new List<int>();
        int i = 0;
        foreach (var v in Array(obj, name, path)) list.Add(AsInt(v, $"{path}.{name}[{i++}]", 0, int.MaxValue));
        return list.ToArray();
    }

    public static int AsInt(JsonElement v, string path, int min, int max)
    {
        if (v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int n) && n >= min && n <= max) return n;
        string range = max == int.MaxValue ? $"an integer of at least {min}" : $"an integer from {min} to {max}";
        throw new InvalidDataException($"{path}: expected {range}, got {v.GetRawText()}.");
    }

    public static string AsString(JsonElement v, string path)
    {
        if (v.ValueKind != JsonValueKind.String) throw new InvalidDataException($"{path}: expected a string, got {Kind(v)}.");
        try
        {
            return v.GetString()!;
        }
        catch (InvalidOperationException e)
        {
            throw new InvalidDataException($"{path}: not valid text (a lone surrogate escape).", e);
        }
    }

    private static string Kind(JsonElement v) => v.ValueKind switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "an array",
        JsonValueKind.String => $"the string {v.GetRawText()}",
        JsonValueKind.Number => $"the number {v.GetRawText()}",
        JsonValueKind.True or JsonValueKind.False => v.GetRawText(),
        _ => "null",
    };

    private static string FirstSentence(string message)
    {
        int dot = message.IndexOf(". ", StringComparison.Ordinal);
        return (dot < 0 ? message : message[..(dot + 1)]).ReplaceLineEndings(" ");
    }
}
