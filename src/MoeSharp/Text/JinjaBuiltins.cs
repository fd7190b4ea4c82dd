using System.Globalization;
using System.Text;
using static MoeSharp.Text.JinjaRenderer;

namespace MoeSharp.Text;

/// <summary>The filters, tests and string/dict methods chat templates call; anything else is a named error.</summary>
internal static class JinjaBuiltins
{
    private static ChatTemplateException Error(int line, string what) => new($"chat template line {line}: {what}.");

    public static object? Filter(string name, object? value, List<object?> args, List<(string Name, object? Value)> kwargs, int line)
    {
        switch (name)
        {
            case "tojson":
            {
                object? indent = args.Count > 0 ? args[0] : kwargs.Find(k => k.Name == "indent").Value;
                var sb = new StringBuilder();
                WriteJson(sb, value, indent is long n ? (int)n : -1, 0, line);
                return sb.ToString();
            }
            case "length" or "count":
                return value switch
                {
                    string s => (long)s.EnumerateRunes().Count(), // Python counts code points
                    List<object?> l => (long)l.Count,
                    Dictionary<string, object?> d => (long)d.Count,
                    _ => throw Error(line, $"filter 'length' needs a string, list or mapping, not a {TypeName(value)}"),
                };
            case "trim":
                return Str(value).Trim();
            case "upper":
                return Str(value).ToUpperInvariant();
            case "lower":
                return Str(value).ToLowerInvariant();
            case "string":
                return Str(value);
            case "items":
                return value is Dictionary<string, object?> dict ? Items(dict)
                    : value is null or JinjaUndefined ? new List<object?>()
                    : throw Error(line, $"filter 'items' needs a mapping, not a {TypeName(value)}");
            case "list":
                return value switch
                {
                    List<object?> l => new List<object?>(l),
                    string s => s.Select(c => (object?)c.ToString()).ToList(),
                    Dictionary<string, object?> d => d.Keys.Select(k => (object?)k).ToList(),
                    _ => throw Error(line, $"filter 'list' cannot convert a {TypeName(value)}"),
                };
            case "first":
                return value is List<object?> { Count: > 0 } fl ? fl[0] : JinjaUndefined.Value;
            case "last":
                return value is List<object?> { Count: > 0 } ll ? ll[^1] : JinjaUndefined.Value;
            case "join":
            {
                string sep = args.Count > 0 ? Str(args[0]) : "";
                return value is List<object?> jl ? string.Join(sep, jl.Select(Str)) : throw Error(line, $"filter 'join' needs a list, not a {TypeName(value)}");
            }
            case "default" or "d":
            {
                bool boolean = args.Count > 1 && Truthy(args[1]);
                bool missing = value is JinjaUndefined || (boolean && !Truthy(value));
                return missing ? (args.Count > 0 ? args[0] : "") : value;
            }
            case "int":
                return value switch
                {
                    long l => l,
                    double d => (long)Math.Truncate(d),
                    string s when long.TryParse(s.Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out long p) => p,
                    _ => 0L,
                };
            default:
                throw Error(line, $"unsupported filter '{name}'");
        }
    }

    public static bool Test(string name, object? value, List<object?> args, int line) => name switch
    {
        "defined" => value is not JinjaUndefined,
        "undefined" => value is JinjaUndefined,
        "none" => value is null,
        "string" => value is string,
        "number" => value is long or double,
        "integer" => value is long,
        "float" => value is double,
        "boolean" => value is bool,
        "true" => value is true,
        "false" => value is false,
        "mapping" => value is Dictionary<string, object?>,
        "sequence" => value is List<object?> or string,
        "iterable" => value is List<object?> or string or Dictionary<string, object?>,
        "callable" => value is JinjaCallable,
        "eq" or "equalto" or "==" when args.Count == 1 => ValuesEqual(value, args[0]),
        "ne" or "!=" when args.Count == 1 => !ValuesEqual(value, args[0]),
        _ => throw Error(line, $"unsupported test '{name}'"),
    };

    /// <summary>A bound method of a string or mapping, or null when the value has no method of that name.</summary>
    public static JinjaCallable? Method(object? target, string name, int line)
    {
        if (target is string s)
        {
            return name switch
            {
                "startswith" => new(name, (a, _, l) => AnyOf(a, l, name, p => s.StartsWith(p, StringComparison.Ordinal))),
                "endswith" => new(name, (a, _, l) => AnyOf(a, l, name, p => s.EndsWith(p, StringComparison.Ordinal))),
                "strip" => new(name, (a, _, _) => a.Count > 0 && a[0] is string cs ? s.Trim(cs.ToCharArray()) : s.Trim()),
                "lstrip" => new(name, (a, _, _) => a.Count > 0 && a[0] is string cs ? s.TrimStart(cs.ToCharArray()) : s.TrimStart()),
                "rstrip" => new(name, (a, _, _) => a.Count > 0 && a[0] is string cs ? s.TrimEnd(cs.ToCharArray()) : s.TrimEnd()),
                "split" => new(name, (a, _, l) => Split(s, a, l)),
                "upper" => new(name, (_, _, _) => s.ToUpperInvariant()),
                "lower" => new(name, (_, _, _) => s.ToLowerInvariant()),
                "replace" => new(name, (a, _, l) => a.Count == 2 && a[0] is string from && a[1] is string to
                    ? (from.Length == 0 ? s : s.Replace(from, to, StringComparison.Ordinal))
                    : throw Error(l, "replace needs two strings")),
                _ => throw Error(line, $"unsupported string method '{name}'"),
            };
        }
        if (target is Dictionary<string, object?> d)
        {
            return name switch
            {
                "items" => new(name, (_, _, _) => Items(d)),
                "keys" => new(name, (_, _, _) => d.Keys.Select(k => (object?)k).ToList()),
                "values" => new(name, (_, _, _) => d.Values.ToList()),
                "get" => new(name, (a, _, l) => a.Count > 0 && a[0] is string key
                    ? (d.TryGetValue(key, out object? v) ? v : a.Count > 1 ? a[1] : null)
                    : throw Error(l, "get needs a string key")),
                _ => null,
            };
        }
        return null;
    }

    private static bool AnyOf(List<object?> a, int line, string name, Func<string, bool> test)
    {
        if (a.Count != 1) throw Error(line, $"{name} needs one argument");
        return a[0] switch
        {
            string p => test(p),
            List<object?> options => options.Exists(o => o is string p && test(p)),
            _ => throw Error(line, $"{name} needs a string, not a {TypeName(a[0])}"),
        };
    }

    private static List<object?> Split(string s, List<object?> a, int line)
    {
        if (a.Count == 0 || a[0] is null)
            return s.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries).Select(x => (object?)x).ToList();
        if (a[0] is not string sep || sep.Length == 0) throw Error(line, "split needs a non-empty separator");
        int max = a.Count > 1 && a[1] is long m && m >= 0 ? (int)m + 1 : int.MaxValue;
        return s.Split(sep, max).Select(x => (object?)x).ToList();
    }

    private static List<object?> Items(Dictionary<string, object?> d)
    {
        var items = new List<object?>(d.Count);
        foreach (var (k, v) in d) items.Add(new List<object?> { k, v });
        return items;
    }

    /// <summary>Python's json.dumps with ensure_ascii off (", " and ": " separators; with an indent, newlines).</summary>
    private static void WriteJson(StringBuilder sb, object? v, int indent, int depth, int line)
    {
        switch (v)
        {
            case null or JinjaUndefined:
                sb.Append("null");
                return;
            case bool b:
                sb.Append(b ? "true" : "false");
                return;
            case long l:
                sb.Append(l.ToString(CultureInfo.InvariantCulture));
                return;
            case double d:
                sb.Append(Repr(d));
                return;
            case string s:
                WriteJsonString(sb, s);
                return;
            case List<object?> list:
                Container(sb, '[', ']', list.Count, indent, depth, i => WriteJson(sb, list[i], indent, depth + 1, line));
                return;
            case Dictionary<string, object?> dict:
                var pairs = dict.ToList();
                Container(sb, '{', '}', pairs.Count, indent, depth, i =>
                {
                    WriteJsonString(sb, pairs[i].Key);
                    sb.Append(": ");
                    WriteJson(sb, pairs[i].Value, indent, depth + 1, line);
                });
                return;
            default:
                throw Error(line, $"filter 'tojson' cannot write a {TypeName(v)}");
        }
    }

    private static void Container(StringBuilder sb, char open, char close, int count, int indent, int depth, Action<int> item)
    {
        sb.Append(open);
        if (count == 0)
        {
            sb.Append(close);
            return;
        }
        for (int i = 0; i < count; i++)
        {
            if (indent >= 0) sb.Append('\n').Append(' ', indent * (depth + 1));
            item(i);
            if (i + 1 < count) sb.Append(indent >= 0 ? "," : ", ");
        }
        if (indent >= 0) sb.Append('\n').Append(' ', indent * depth);
        sb.Append(close);
    }

    private static void WriteJsonString(StringBuilder sb, string s)
    {
        sb.Append('"');
        foreach (char c in s)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                case '\b': sb.Append("\\b"); break;
                case '\f': sb.Append("\\f"); break;
                default:
                    if (c < 0x20) sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    else sb.Append(c);
                    break;
            }
        }
        sb.Append('"');
    }
}
