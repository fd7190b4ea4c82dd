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
            case "title":
                return Title(Str(value));
            case "capitalize":
            {
                string c = Str(value);
                return c.Length == 0 ? c : char.ToUpperInvariant(c[0]) + c[1..].ToLowerInvariant();
            }
            case "replace":
            {
                if (args.Count < 2 || args[0] is not string from || args[1] is not string to) throw Error(line, "filter 'replace' needs two strings");
                string text = Str(value);
                long count = args.Count > 2 && args[2] is long c ? c : -1;
                return ReplaceCount(text, from, to, count);
            }
            case "dictsort":
                return DictSort(value, args, kwargs, line);
            case "select" or "reject":
                return Select(value, null, args, name == "select", line);
            case "selectattr" or "rejectattr":
            {
                if (args.Count == 0 || args[0] is not string attribute) throw Error(line, $"filter '{name}' needs an attribute name");
                return Select(value, attribute, args.GetRange(1, args.Count - 1), name == "selectattr", line);
            }
            case "map":
                return Map(value, args, kwargs, line);
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
                string sep = args.Count > 0 ? Str(args[0]) : Str(Kwarg(kwargs, "d", ""));
                string? attribute = Kwarg(kwargs, "attribute", null) as string;
                var parts = new List<string>();
                foreach (object? item in Iterate(value, "join", line)) parts.Add(Str(attribute is null ? item : Attribute(item, attribute, line)));
                return string.Join(sep, parts);
            }
            case "default" or "d":
            {
                object? fallback = args.Count > 0 ? args[0] : Kwarg(kwargs, "default_value", "");
                bool boolean = Truthy(args.Count > 1 ? args[1] : Kwarg(kwargs, "boolean", false));
                bool missing = value is JinjaUndefined || (boolean && !Truthy(value));
                return missing ? fallback : value;
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
        "number" => value is long or double or bool, // Python's bool is a Number
        "integer" => value is long,
        "float" => value is double,
        "boolean" => value is bool,
        "true" => value is true,
        "false" => value is false,
        "mapping" => value is Dictionary<string, object?>,
        "sequence" => value is List<object?> or string or Dictionary<string, object?>, // anything with len() and [], as Jinja checks
        "iterable" => value is List<object?> or string or Dictionary<string, object?>,
        "callable" => value is JinjaCallable,
        "eq" or "equalto" or "==" when args.Count == 1 => ValuesEqual(value, args[0]),
        "ne" or "!=" when args.Count == 1 => !ValuesEqual(value, args[0]),
        _ => throw Error(line, $"unsupported test '{name}'"),
    };

    /// <summary>A bound method of a string or mapping, or null when this interpreter has no method of that name
    /// (an attribute read then gives undefined, as in Jinja; a call is an error naming the method).</summary>
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
                "title" => new(name, (_, _, _) => PythonTitle(s)),
                "capitalize" => new(name, (_, _, _) => s.Length == 0 ? s : char.ToUpperInvariant(s[0]) + s[1..].ToLowerInvariant()),
                "lower" => new(name, (_, _, _) => s.ToLowerInvariant()),
                "replace" => new(name, (a, _, l) => a.Count == 2 && a[0] is string from && a[1] is string to
                    ? (from.Length == 0 ? s : s.Replace(from, to, StringComparison.Ordinal))
                    : throw Error(l, "replace needs two strings")),
                _ => null,
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

    private static object? Kwarg(List<(string Name, object? Value)> kwargs, string name, object? fallback)
    {
        foreach (var (k, v) in kwargs) if (k == name) return v;
        return fallback;
    }

    private static List<object?> Iterate(object? value, string filter, int line) => value switch
    {
        List<object?> l => l,
        string s => s.Select(c => (object?)c.ToString()).ToList(),
        Dictionary<string, object?> d => d.Keys.Select(k => (object?)k).ToList(),
        null or JinjaUndefined => [],
        _ => throw Error(line, $"filter '{filter}' needs a list, not a {TypeName(value)}"),
    };

    // Jinja's attribute paths: "a.b" walks mappings, "0" indexes a list.
    private static object? Attribute(object? item, string path, int line)
    {
        foreach (string part in path.Split('.'))
        {
            item = item is List<object?> list && int.TryParse(part, NumberStyles.None, CultureInfo.InvariantCulture, out int i)
                ? (i < list.Count ? list[i] : JinjaUndefined.Value)
                : GetAttr(item, part, line);
        }
        return item;
    }

    private static List<object?> Select(object? value, string? attribute, List<object?> testAndArgs, bool keep, int line)
    {
        var kept = new List<object?>();
        string? test = testAndArgs.Count > 0 ? testAndArgs[0] as string ?? throw Error(line, "the test name must be a string") : null;
        List<object?> testArgs = testAndArgs.Count > 1 ? testAndArgs.GetRange(1, testAndArgs.Count - 1) : [];
        foreach (object? item in Iterate(value, keep ? "select" : "reject", line))
        {
            object? x = attribute is null ? item : Attribute(item, attribute, line);
            if ((test is null ? Truthy(x) : Test(test, x, testArgs, line)) == keep) kept.Add(item);
        }
        return kept;
    }

    private static List<object?> Map(object? value, List<object?> args, List<(string Name, object? Value)> kwargs, int line)
    {
        var mapped = new List<object?>();
        if (Kwarg(kwargs, "attribute", null) is string attribute)
        {
            object? fallback = Kwarg(kwargs, "default", JinjaUndefined.Value);
            foreach (object? item in Iterate(value, "map", line))
            {
                object? x = Attribute(item, attribute, line);
                mapped.Add(x is JinjaUndefined ? fallback : x);
            }
            return mapped;
        }
        if (args.Count == 0 || args[0] is not string filter) throw Error(line, "filter 'map' needs a filter name or attribute=");
        List<object?> rest = args.GetRange(1, args.Count - 1);
        var restKw = kwargs.FindAll(k => k.Name != "attribute");
        foreach (object? item in Iterate(value, "map", line)) mapped.Add(Filter(filter, item, rest, restKw, line));
        return mapped;
    }

    private static List<object?> DictSort(object? value, List<object?> args, List<(string Name, object? Value)> kwargs, int line)
    {
        if (value is not Dictionary<string, object?> d) throw Error(line, $"filter 'dictsort' needs a mapping, not a {TypeName(value)}");
        bool caseSensitive = Truthy(args.Count > 0 ? args[0] : Kwarg(kwargs, "case_sensitive", false));
        string by = Str(args.Count > 1 ? args[1] : Kwarg(kwargs, "by", "key"));
        bool reverse = Truthy(args.Count > 2 ? args[2] : Kwarg(kwargs, "reverse", false));
        if (by is not ("key" or "value")) throw Error(line, $"dictsort by '{by}': expected 'key' or 'value'");
        List<object?> pairs = Items(d);
        object? Key(object? pair)
        {
            object? k = ((List<object?>)pair!)[by == "key" ? 0 : 1];
            return !caseSensitive && k is string s ? s.ToLowerInvariant() : k;
        }
        // A stable sort, as Python's sorted is.
        var keyed = pairs.Select((p, i) => (Pair: p, Key: Key(p), Index: i)).ToList();
        keyed.Sort((a, b) =>
        {
            int c = Compare(a.Key, b.Key, line);
            return c != 0 ? (reverse ? -c : c) : a.Index.CompareTo(b.Index);
        });
        return keyed.ConvertAll(k => k.Pair);
    }

    private static int Compare(object? a, object? b, int line)
    {
        if (a is string x && b is string y) return string.CompareOrdinal(x, y);
        if (IsNumber(a) && IsNumber(b)) return ToDouble(a).CompareTo(ToDouble(b));
        if (a is bool p && b is bool q) return p.CompareTo(q);
        throw Error(line, $"cannot compare a {TypeName(a)} with a {TypeName(b)}");
    }

    private static string ReplaceCount(string text, string from, string to, long count)
    {
        if (count < 0) return from.Length == 0 ? text : text.Replace(from, to, StringComparison.Ordinal);
        var sb = new StringBuilder();
        int pos = 0;
        for (long n = 0; n < count && from.Length > 0; n++)
        {
            int at = text.IndexOf(from, pos, StringComparison.Ordinal);
            if (at < 0) break;
            sb.Append(text, pos, at - pos).Append(to);
            pos = at + from.Length;
        }
        return sb.Append(text, pos, text.Length - pos).ToString();
    }

    // Jinja's title filter: each piece after a run of '-', white space or an opening bracket gets an upper-case
    // first letter and a lower-case rest ("they're" stays one word).
    private static string Title(string s)
    {
        var sb = new StringBuilder(s.Length);
        bool wordStart = true;
        foreach (char c in s)
        {
            bool separator = c is '-' or '(' or '{' or '[' or '<' || char.IsWhiteSpace(c);
            sb.Append(separator ? c : wordStart ? char.ToUpperInvariant(c) : char.ToLowerInvariant(c));
            wordStart = separator;
        }
        return sb.ToString();
    }

    // Python's str.title: a letter after a non-letter starts a word ("they're" becomes "They'Re").
    private static string PythonTitle(string s)
    {
        var sb = new StringBuilder(s.Length);
        bool previousCased = false;
        foreach (char c in s)
        {
            sb.Append(previousCased ? char.ToLowerInvariant(c) : char.ToUpperInvariant(c));
            previousCased = char.IsLetter(c);
        }
        return sb.ToString();
    }

    private static readonly string[] Days = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
    private static readonly string[] Months = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];

    /// <summary>Python's <c>strftime</c> in the C locale, for the directives chat templates use; glibc's
    /// <c>%-d</c> style drops the padding.</summary>
    public static string Strftime(DateTime t, string format, int line)
    {
        var sb = new StringBuilder();
        for (int i = 0; i < format.Length; i++)
        {
            if (format[i] != '%' || i + 1 == format.Length)
            {
                sb.Append(format[i]);
                continue;
            }
            char d = format[++i];
            bool unpadded = d == '-' && i + 1 < format.Length;
            if (unpadded) d = format[++i];
            string Num(int v, int width) => unpadded ? v.ToString(CultureInfo.InvariantCulture) : v.ToString(new string('0', width), CultureInfo.InvariantCulture);
            sb.Append(d switch
            {
                'Y' => t.Year.ToString(CultureInfo.InvariantCulture),
                'y' => Num(t.Year % 100, 2),
                'm' => Num(t.Month, 2),
                'd' => Num(t.Day, 2),
                'e' => t.Day.ToString(CultureInfo.InvariantCulture).PadLeft(2),
                'H' => Num(t.Hour, 2),
                'I' => Num(t.Hour % 12 == 0 ? 12 : t.Hour % 12, 2),
                'M' => Num(t.Minute, 2),
                'S' => Num(t.Second, 2),
                'p' => t.Hour < 12 ? "AM" : "PM",
                'j' => Num(t.DayOfYear, 3),
                'a' => Days[(int)t.DayOfWeek][..3],
                'A' => Days[(int)t.DayOfWeek],
                'b' or 'h' => Months[t.Month - 1][..3],
                'B' => Months[t.Month - 1],
                '%' => "%",
                _ => throw Error(line, $"strftime_now: unsupported directive '%{d}'"),
            });
        }
        return sb.ToString();
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

    /// <summary>Appends <paramref name="s"/> as a JSON string literal: quotes, backslashes and control characters escaped, everything else kept (as tojson with ensure_ascii off); harmony's tool declarations use it too.</summary>
    internal static void WriteJsonString(StringBuilder sb, string s)
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
