using System.Globalization;
using System.Text;
using System.Text.Json;

namespace MoeSharp.Text;

/// <summary>
/// The <c># Tools</c> section of a harmony developer message: each function tool as a TypeScript-like
/// <c>type name = (_: {...}) =&gt; any;</c> inside <c>namespace functions { ... }</c>, its JSON-schema parameters
/// written as OpenAI's harmony renderer writes them (openai/harmony <c>src/encoding.rs</c>,
/// <c>json_schema_to_typescript</c> and <c>template_tools_section</c>): descriptions, titles and examples as
/// <c>//</c> comments above a field, defaults after it, <c>?</c> on optional fields, enums as string unions and
/// <c>oneOf</c> as a <c>|</c> list.
/// </summary>
internal static class HarmonyTools
{
    /// <summary>A tool in the OpenAI shape, <c>{"type": "function", "function": {name, description, parameters}}</c>
    /// (or the inner object alone).</summary>
    public readonly record struct FunctionTool(string Name, string? Description, JsonElement? Parameters);

    /// <summary>Reads the OpenAI tool list; a tool without a function name is an <see cref="ArgumentException"/>
    /// naming its index.</summary>
    public static List<FunctionTool> Read(IReadOnlyList<JsonElement> tools)
    {
        var list = new List<FunctionTool>(tools.Count);
        for (int i = 0; i < tools.Count; i++)
        {
            JsonElement t = tools[i];
            JsonElement f = t.ValueKind == JsonValueKind.Object && t.TryGetProperty("function", out JsonElement inner) ? inner : t;
            if (f.ValueKind != JsonValueKind.Object || !f.TryGetProperty("name", out JsonElement name) || name.ValueKind != JsonValueKind.String)
                throw new ArgumentException($"tools[{i}] has no function name; expected {{\"type\": \"function\", \"function\": {{\"name\": ...}}}}.", nameof(tools));
            string? description = f.TryGetProperty("description", out JsonElement d) && d.ValueKind == JsonValueKind.String ? d.GetString() : null;
            JsonElement? parameters = f.TryGetProperty("parameters", out JsonElement p) && p.ValueKind != JsonValueKind.Null ? p : null;
            list.Add(new FunctionTool(name.GetString()!, description, parameters));
        }
        return list;
    }

    /// <summary>The section, from <c># Tools</c> to <c>} // namespace functions</c>.</summary>
    public static string Section(List<FunctionTool> tools)
    {
        var sb = new StringBuilder("# Tools\n\n## functions\n\nnamespace functions {\n\n");
        foreach (FunctionTool tool in tools)
        {
            foreach (string line in Lines(tool.Description ?? "")) sb.Append("// ").Append(line).Append('\n');
            sb.Append("type ").Append(tool.Name).Append(" = ");
            if (tool.Parameters is { } p) sb.Append("(_: ").Append(TypeScript(p, "")).Append(") => any;\n\n");
            else sb.Append("() => any;\n\n");
        }
        return sb.Append("} // namespace functions").ToString();
    }

    // Rust's str::lines: split on \n, a trailing \r dropped, no empty last line.
    private static List<string> Lines(string s)
    {
        var lines = new List<string>(s.Split('\n'));
        if (lines[^1].Length == 0) lines.RemoveAt(lines.Count - 1);
        for (int i = 0; i < lines.Count; i++) if (lines[i].EndsWith('\r')) lines[i] = lines[i][..^1];
        return lines;
    }

    private static string? String(JsonElement e, string name) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out JsonElement v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    private static JsonElement? Get(JsonElement e, string name) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out JsonElement v) ? v : null;

    private static bool IsEnum(JsonElement e) => Get(e, "enum") is { ValueKind: JsonValueKind.Array } a && a.GetArrayLength() > 0;

    private static bool Nullable(JsonElement e) => Get(e, "nullable") is { ValueKind: JsonValueKind.True };

    private static string WithNull(JsonElement schema, string type) => Nullable(schema) && !type.Contains("null", StringComparison.Ordinal) ? type + " | null" : type;

    // The default's text: a plain string in quotes, an enum's string bare ("inline") or as JSON, anything else as
    // compact JSON.
    private static string Default(JsonElement schema, JsonElement value, bool enumStringBare) =>
        value.ValueKind == JsonValueKind.String && !IsEnum(schema) ? "\"" + value.GetString() + "\""
        : value.ValueKind == JsonValueKind.String && enumStringBare ? value.GetString()!
        : CompactJson(value);

    private static string TypeScript(JsonElement schema, string indent)
    {
        if (Get(schema, "oneOf") is { ValueKind: JsonValueKind.Array } variants)
        {
            var sb = new StringBuilder();
            foreach (JsonElement v in variants.EnumerateArray())
            {
                sb.Append('\n').Append(indent).Append(" | ").Append(WithNull(v, TypeScript(v, indent + "   ")));
                var comments = new List<string>();
                if (String(v, "description") is { } desc) comments.Add(desc);
                if (Get(v, "default") is { } def) comments.Add("default: " + Default(v, def, enumStringBare: false));
                if (comments.Count > 0) sb.Append(" // ").Append(string.Join(' ', comments));
            }
            return sb.ToString();
        }
        if (Get(schema, "type") is { ValueKind: JsonValueKind.Array } types)
        {
            var names = new List<string>();
            foreach (JsonElement t in types.EnumerateArray())
                if (t.ValueKind == JsonValueKind.String) names.Add(t.GetString() == "integer" ? "number" : t.GetString()!);
            if (names.Count > 0) return string.Join(" | ", names);
        }
        switch (String(schema, "type"))
        {
            case "object":
                return Object(schema, indent);
            case "string":
                if (Get(schema, "enum") is { ValueKind: JsonValueKind.Array } values)
                {
                    var quoted = new List<string>();
                    foreach (JsonElement v in values.EnumerateArray()) if (v.ValueKind == JsonValueKind.String) quoted.Add("\"" + v.GetString() + "\"");
                    if (quoted.Count > 0) return string.Join(" | ", quoted);
                }
                return "string";
            case "number" or "integer":
                return "number";
            case "boolean":
                return "boolean";
            case "array":
                return Get(schema, "items") is { } items ? TypeScript(items, indent) + "[]" : "Array<any>";
            default:
                return "any";
        }
    }

    private static string Object(JsonElement schema, string indent)
    {
        var sb = new StringBuilder();
        if (String(schema, "description") is { } description) sb.Append(indent).Append("// ").Append(description).Append('\n');
        sb.Append("{\n");
        if (Get(schema, "properties") is { ValueKind: JsonValueKind.Object } properties)
        {
            var required = new HashSet<string>(StringComparer.Ordinal);
            if (Get(schema, "required") is { ValueKind: JsonValueKind.Array } req)
                foreach (JsonElement r in req.EnumerateArray()) if (r.ValueKind == JsonValueKind.String) required.Add(r.GetString()!);
            foreach (JsonProperty prop in properties.EnumerateObject())
            {
                JsonElement val = prop.Value;
                string optional = required.Contains(prop.Name) ? "" : "?";
                JsonElement? oneOf = Get(val, "oneOf") is { ValueKind: JsonValueKind.Array } o ? o : null;
                if (String(val, "title") is { } title) sb.Append(indent).Append("// ").Append(title).Append('\n').Append(indent).Append("//\n");
                if (oneOf is null && String(val, "description") is { } desc) sb.Append(indent).Append("// ").Append(desc).Append('\n');
                if (Get(val, "examples") is { ValueKind: JsonValueKind.Array } examples && examples.GetArrayLength() > 0)
                {
                    sb.Append(indent).Append("// Examples:\n");
                    foreach (JsonElement ex in examples.EnumerateArray())
                        if (ex.ValueKind == JsonValueKind.String) sb.Append(indent).Append("// - \"").Append(ex.GetString()).Append("\"\n");
                }
                if (oneOf is { } variants)
                {
                    OneOfProperty(sb, prop.Name + optional, val, variants, indent);
                    continue;
                }
                sb.Append(indent).Append(prop.Name).Append(optional).Append(": ").Append(WithNull(val, TypeScript(val, indent + "    "))).Append(',');
                if (Get(val, "default") is { } def) sb.Append(" // default: ").Append(Default(val, def, enumStringBare: true));
                sb.Append('\n');
            }
        }
        return sb.Append(indent).Append('}').ToString();
    }

    // A oneOf property: its description and default above the name, then one "| type // comments" line a variant;
    // the first variant's description is not repeated when it is the property's own.
    private static void OneOfProperty(StringBuilder sb, string nameAndMark, JsonElement val, JsonElement variants, string indent)
    {
        string? propertyDesc = String(val, "description");
        bool firstRepeatsIt = propertyDesc is not null && variants.GetArrayLength() > 0 && String(variants[0], "description") == propertyDesc;
        bool above = false;
        if (!firstRepeatsIt && propertyDesc is not null)
        {
            sb.Append(indent).Append("// ").Append(propertyDesc).Append('\n');
            above = true;
        }
        if (Get(val, "default") is { } def) sb.Append(indent).Append("// default: ").Append(Default(val, def, enumStringBare: true)).Append('\n');
        sb.Append(indent).Append(nameAndMark).Append(":\n");
        int i = 0;
        foreach (JsonElement v in variants.EnumerateArray())
        {
            sb.Append(indent).Append(" | ").Append(WithNull(v, TypeScript(v, indent + "   ")));
            var comments = new List<string>();
            if (!(i == 0 && above) && String(v, "description") is { } d && d != propertyDesc) comments.Add(d);
            if (Get(v, "default") is { } vd) comments.Add("default: " + Default(v, vd, enumStringBare: true));
            if (comments.Count > 0) sb.Append(" // ").Append(string.Join(' ', comments));
            sb.Append('\n');
            i++;
        }
        sb.Append(indent).Append(",\n");
    }

    // serde_json's compact form: no spaces, only quotes, backslashes and control characters escaped.
    private static string CompactJson(JsonElement e)
    {
        var sb = new StringBuilder();
        Write(sb, e);
        return sb.ToString();

        static void Write(StringBuilder sb, JsonElement e)
        {
            switch (e.ValueKind)
            {
                case JsonValueKind.Object:
                    sb.Append('{');
                    bool first = true;
                    foreach (JsonProperty p in e.EnumerateObject())
                    {
                        if (!first) sb.Append(',');
                        first = false;
                        JinjaBuiltins.WriteJsonString(sb, p.Name);
                        sb.Append(':');
                        Write(sb, p.Value);
                    }
                    sb.Append('}');
                    break;
                case JsonValueKind.Array:
                    sb.Append('[');
                    bool firstItem = true;
                    foreach (JsonElement item in e.EnumerateArray())
                    {
                        if (!firstItem) sb.Append(',');
                        firstItem = false;
                        Write(sb, item);
                    }
                    sb.Append(']');
                    break;
                case JsonValueKind.String:
                    JinjaBuiltins.WriteJsonString(sb, e.GetString()!);
                    break;
                default:
                    sb.Append(e.GetRawText());
                    break;
            }
        }
    }
}
