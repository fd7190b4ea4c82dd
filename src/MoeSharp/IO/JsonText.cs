using System.Text.Json;

namespace MoeSharp.IO;

/// <summary>Reads strings out of a parsed JSON header, reporting undecodable ones as format errors.</summary>
internal static class JsonText
{
    // JsonDocument accepts a \u escape that is a lone surrogate (valid JSON, but not text) and only throws
    // InvalidOperationException when the string is read; a corrupt file must give a format error instead.
    public static string Name(JsonProperty property, string path)
    {
        try
        {
            return property.Name;
        }
        catch (InvalidOperationException e)
        {
            throw Invalid(path, e);
        }
    }

    /// <summary>The value of a string element (its kind already checked).</summary>
    public static string String(JsonElement element, string path)
    {
        try
        {
            return element.GetString()!;
        }
        catch (InvalidOperationException e)
        {
            throw Invalid(path, e);
        }
    }

    private static SafetensorsFormatException Invalid(string path, InvalidOperationException e) =>
        new(path, $"a JSON string is not valid UTF-16 text (lone surrogate escape): {e.Message}", e);
}
