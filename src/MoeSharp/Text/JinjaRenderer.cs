using System.Globalization;
using System.Text;

namespace MoeSharp.Text;

/// <summary>Jinja's undefined value: renders as nothing, is falsy, and passes <c>is not defined</c>.</summary>
internal sealed class JinjaUndefined
{
    public static readonly JinjaUndefined Value = new();

    private JinjaUndefined() { }
}

/// <summary>The object <c>namespace(...)</c> returns: attributes a loop body may assign.</summary>
internal sealed class JinjaNamespace(Dictionary<string, object?> values)
{
    public Dictionary<string, object?> Values { get; } = values;
}

/// <summary>A global function or a bound string/dict method.</summary>
internal sealed class JinjaCallable(string name, Func<List<object?>, Dictionary<string, object?>, int, object?> body)
{
    public string Name { get; } = name;

    /// <summary>Defined by <c>macro</c> (or a call block's caller) rather than built in: what <c>call</c> accepts.</summary>
    public bool Macro { get; init; }

    public object? Invoke(List<object?> args, Dictionary<string, object?> kwargs, int line) => body(args, kwargs, line);
}

/// <summary>
/// Walks a parsed template. Values are null (none), <see cref="JinjaUndefined"/>, bool, long, double, string,
/// <c>List&lt;object?&gt;</c>, <c>Dictionary&lt;string, object?&gt;</c> (insertion-ordered), namespaces and callables.
/// </summary>
internal sealed class JinjaRenderer
{
    // How a statement list ended: normally, or by a break/continue the nearest for loop must act on.
    private enum Flow { Normal, Break, Continue }

    private List<Dictionary<string, object?>> _scopes = [];
    private StringBuilder _out = new();

    /// <param name="clock">The clock <c>strftime_now</c> reads, in its local time (Python's datetime.now()).</param>
    public JinjaRenderer(IReadOnlyDictionary<string, object?> variables, TimeProvider clock)
    {
        var globals = new Dictionary<string, object?>(StringComparer.Ordinal)
        {
            ["raise_exception"] = new JinjaCallable("raise_exception", (a, _, line) =>
                throw new ChatTemplateException($"chat template line {line}: raise_exception: {(a.Count > 0 ? Str(a[0]) : "")}")),
            ["namespace"] = new JinjaCallable("namespace", (_, kw, _) => new JinjaNamespace(new Dictionary<string, object?>(kw))),
            ["range"] = new JinjaCallable("range", (a, _, line) => Range(a, line)),
            ["strftime_now"] = new JinjaCallable("strftime_now", (a, _, line) => a.Count == 1 && a[0] is string format
                ? JinjaBuiltins.Strftime(clock.GetLocalNow().DateTime, format, line)
                : throw Error(line, "strftime_now needs one format string")),
        };
        foreach (var (k, v) in variables) globals[k] = v;
        _scopes.Add(globals);
    }

    public string Render(List<JinjaNode> nodes)
    {
        Run(nodes);
        return _out.ToString();
    }

    private static ChatTemplateException Error(int line, string what) => new($"chat template line {line}: {what}.");

    private Flow Run(List<JinjaNode> nodes)
    {
        foreach (JinjaNode node in nodes)
        {
            switch (node)
            {
                case JinjaNode.Text t:
                    _out.Append(t.Value);
                    break;
                case JinjaNode.Output o:
                    _out.Append(Str(Eval(o.Value)));
                    break;
                case JinjaNode.If i:
                {
                    List<JinjaNode>? taken = i.Else;
                    foreach (var (condition, body) in i.Branches)
                    {
                        if (!Truthy(Eval(condition))) continue;
                        taken = body;
                        break;
                    }
                    if (taken is not null && Run(taken) is var flow and not Flow.Normal) return flow;
                    break;
                }
                case JinjaNode.For f:
                    RunFor(f);
                    break;
                case JinjaNode.Break:
                    return Flow.Break;
                case JinjaNode.Continue:
                    return Flow.Continue;
                case JinjaNode.Set s:
                    Assign(s.Target, s.Attribute, Eval(s.Value), s.Line);
                    break;
                case JinjaNode.SetBlock sb:
                {
                    StringBuilder outer = _out;
                    _out = new StringBuilder();
                    try
                    {
                        Run(sb.Body);
                        Assign(sb.Target, sb.Attribute, _out.ToString(), sb.Line);
                    }
                    finally
                    {
                        _out = outer;
                    }
                    break;
                }
                case JinjaNode.Generation g:
                    if (Run(g.Body) is var inner and not Flow.Normal) return inner;
                    break;
                case JinjaNode.Macro m:
                    _scopes[^1][m.Name] = MakeMacro(m.Name, m.Params, m.Body);
                    break;
                case JinjaNode.CallBlock c:
                {
                    var caller = MakeMacro("caller", c.CallerParams, c.Body);
                    if (Eval(c.Call.Callee) is not JinjaCallable { Macro: true } macro) throw Error(c.Line, $"'call {Describe(c.Call.Callee)}' needs a macro");
                    var (args, kwargs) = Arguments(c.Call);
                    kwargs["caller"] = caller;
                    _out.Append(Str(macro.Invoke(args, kwargs, c.Line)));
                    break;
                }
            }
        }
        return Flow.Normal;
    }

    private void Assign(string target, string? attribute, object? value, int line)
    {
        if (attribute is null)
        {
            _scopes[^1][target] = value;
            return;
        }
        if (Lookup(target) is not JinjaNamespace ns) throw Error(line, $"'set {target}.{attribute}' needs '{target}' to be a namespace");
        ns.Values[attribute] = value;
    }

    // A macro sees the scopes where it was defined (live, so later top-level sets show), then its arguments and its
    // own sets; a call block's caller is defined inside the loop around it and so sees the loop variables. The
    // output is returned as a string rather than written.
    private JinjaCallable MakeMacro(string name, List<(string Name, JinjaExpr? Default)> parameters, List<JinjaNode> body)
    {
        var defined = new List<Dictionary<string, object?>>(_scopes);
        return new(name, (args, kwargs, callLine) =>
        {
            if (args.Count > parameters.Count) throw Error(callLine, $"macro '{name}' takes {parameters.Count} arguments, not {args.Count}");
            var scope = new Dictionary<string, object?>(StringComparer.Ordinal);
            var outerScopes = _scopes;
            var outerOut = _out;
            _scopes = [.. defined, scope];
            _out = new StringBuilder();
            try
            {
                for (int i = 0; i < parameters.Count; i++)
                {
                    var (p, fallback) = parameters[i];
                    scope[p] = i < args.Count ? args[i]
                        : kwargs.Remove(p, out object? v) ? v
                        : fallback is not null ? Eval(fallback)
                        : JinjaUndefined.Value;
                }
                if (kwargs.Remove("caller", out object? caller)) scope["caller"] = caller;
                if (kwargs.Count > 0) throw Error(callLine, $"macro '{name}' has no parameter '{kwargs.Keys.First()}'");
                Run(body);
                return _out.ToString();
            }
            finally
            {
                _scopes = outerScopes;
                _out = outerOut;
            }
        }) { Macro = true };
    }

    private void RunFor(JinjaNode.For f)
    {
        object? source = Eval(f.Iterable);
        var items = new List<object?>();
        switch (source)
        {
            case List<object?> list:
                items.AddRange(list);
                break;
            case Dictionary<string, object?> dict:
                foreach (string key in dict.Keys) items.Add(key);
                break;
            case string s:
                foreach (char c in s) items.Add(c.ToString());
                break;
            case null or JinjaUndefined:
                break;
            default:
                throw Error(f.Line, $"cannot loop over a {TypeName(source)}");
        }
        var scope = new Dictionary<string, object?>(StringComparer.Ordinal);
        _scopes.Add(scope);
        try
        {
            if (f.Filter is not null)
            {
                var kept = new List<object?>();
                foreach (object? item in items)
                {
                    Bind(f, item, scope);
                    if (Truthy(Eval(f.Filter))) kept.Add(item);
                }
                items = kept;
            }
            for (int i = 0; i < items.Count; i++)
            {
                scope.Clear();
                Bind(f, items[i], scope);
                scope["loop"] = new Dictionary<string, object?>
                {
                    ["index0"] = (long)i, ["index"] = (long)(i + 1), ["first"] = i == 0, ["last"] = i == items.Count - 1,
                    ["length"] = (long)items.Count, ["revindex"] = (long)(items.Count - i), ["revindex0"] = (long)(items.Count - i - 1),
                    ["previtem"] = i > 0 ? items[i - 1] : JinjaUndefined.Value,
                    ["nextitem"] = i + 1 < items.Count ? items[i + 1] : JinjaUndefined.Value,
                };
                if (Run(f.Body) == Flow.Break) break;
            }
            if (items.Count == 0 && f.Else is not null) Run(f.Else);
        }
        finally
        {
            _scopes.RemoveAt(_scopes.Count - 1);
        }
    }

    private static void Bind(JinjaNode.For f, object? item, Dictionary<string, object?> scope)
    {
        if (f.Targets.Count == 1)
        {
            scope[f.Targets[0]] = item;
            return;
        }
        if (item is not List<object?> tuple || tuple.Count != f.Targets.Count)
            throw Error(f.Line, $"cannot unpack a {TypeName(item)} into {f.Targets.Count} loop variables");
        for (int k = 0; k < tuple.Count; k++) scope[f.Targets[k]] = tuple[k];
    }

    private object? Lookup(string name)
    {
        for (int i = _scopes.Count - 1; i >= 0; i--)
            if (_scopes[i].TryGetValue(name, out object? v)) return v;
        return JinjaUndefined.Value;
    }

    private object? Eval(JinjaExpr e)
    {
        switch (e)
        {
            case JinjaExpr.Literal l:
                return l.Value;
            case JinjaExpr.Name n:
                return Lookup(n.Id);
            case JinjaExpr.Attr a:
                return GetAttr(Eval(a.Target), a.Id, a.Line);
            case JinjaExpr.Item it:
                return GetItem(Eval(it.Target), Eval(it.Key), it.Line);
            case JinjaExpr.Slice s:
                return Slice(Eval(s.Target), s, s.Line);
            case JinjaExpr.Call c:
            {
                object? target = c.Callee is JinjaExpr.Attr method ? Eval(method.Target) : null;
                object? callee = c.Callee is JinjaExpr.Attr m ? GetAttr(target, m.Id, c.Line) : Eval(c.Callee);
                if (callee is not JinjaCallable fn)
                    throw Error(c.Line, target is string && c.Callee is JinjaExpr.Attr a ? $"unsupported string method '{a.Id}'" : $"'{Describe(c.Callee)}' is not callable");
                var (args, kwargs) = Arguments(c);
                return fn.Invoke(args, kwargs, c.Line);
            }
            case JinjaExpr.Filter f:
                return JinjaBuiltins.Filter(f.Id, Eval(f.Target), f.Args.ConvertAll(Eval), f.Kwargs.ConvertAll(k => (k.Name, Eval(k.Value))), f.Line);
            case JinjaExpr.Test t:
            {
                // "x is defined" must not fail on an undefined attribute chain, so the target is evaluated leniently.
                bool result = JinjaBuiltins.Test(t.Id, Eval(t.Target), t.Args.ConvertAll(Eval), t.Line);
                return t.Negated ? !result : result;
            }
            case JinjaExpr.Unary u:
            {
                object? v = Eval(u.Operand);
                return u.Op switch
                {
                    "not" => !Truthy(v),
                    "-" => v switch { long x => (object)(-x), double d => -d, _ => throw Error(u.Line, $"cannot negate a {TypeName(v)}") },
                    _ => v,
                };
            }
            case JinjaExpr.Binary b:
                return Binary(b);
            case JinjaExpr.Conditional c:
                return Truthy(Eval(c.Condition)) ? Eval(c.Then) : c.Else is null ? JinjaUndefined.Value : Eval(c.Else);
            case JinjaExpr.ListLit l:
                return l.Items.ConvertAll(Eval);
            case JinjaExpr.DictLit d:
            {
                var dict = new Dictionary<string, object?>(StringComparer.Ordinal);
                foreach (var (key, value) in d.Items)
                    dict[Eval(key) as string ?? throw Error(d.Line, "a dict literal key is not a string")] = Eval(value);
                return dict;
            }
            default:
                throw Error(e.Line, "unknown expression");
        }
    }

    private (List<object?> Args, Dictionary<string, object?> Kwargs) Arguments(JinjaExpr.Call c)
    {
        var args = new List<object?>(c.Args.Count);
        foreach (JinjaExpr arg in c.Args) args.Add(Eval(arg));
        var kwargs = new Dictionary<string, object?>(StringComparer.Ordinal);
        foreach (var (name, value) in c.Kwargs) kwargs[name] = Eval(value);
        return (args, kwargs);
    }

    private object? Binary(JinjaExpr.Binary b)
    {
        if (b.Op == "and")
        {
            object? l = Eval(b.Left);
            return Truthy(l) ? Eval(b.Right) : l;
        }
        if (b.Op == "or")
        {
            object? l = Eval(b.Left);
            return Truthy(l) ? l : Eval(b.Right);
        }
        object? left = Eval(b.Left), right = Eval(b.Right);
        switch (b.Op)
        {
            case "==": return ValuesEqual(left, right);
            case "!=": return !ValuesEqual(left, right);
            case "~": return Str(left) + Str(right);
            case "in":
                return right switch
                {
                    string s => left is string sub ? s.Contains(sub, StringComparison.Ordinal) : throw Error(b.Line, $"'in <string>' needs a string on the left, not a {TypeName(left)}"),
                    List<object?> list => list.Exists(x => ValuesEqual(x, left)),
                    Dictionary<string, object?> dict => left is string key && dict.ContainsKey(key),
                    JinjaUndefined or null => false,
                    _ => throw Error(b.Line, $"'in' needs a string, list or mapping on the right, not a {TypeName(right)}"),
                };
            case "+":
                if (left is string ls && right is string rs) return ls + rs;
                if (left is List<object?> ll && right is List<object?> rl) return new List<object?>([.. ll, .. rl]);
                break;
            case "<" or ">" or "<=" or ">=":
                int cmp = left is string a && right is string c ? string.CompareOrdinal(a, c)
                    : IsNumber(left) && IsNumber(right) ? ToDouble(left).CompareTo(ToDouble(right))
                    : throw Error(b.Line, $"cannot compare a {TypeName(left)} with a {TypeName(right)} by '{b.Op}'");
                return b.Op switch { "<" => cmp < 0, ">" => cmp > 0, "<=" => cmp <= 0, _ => cmp >= 0 };
        }
        if (left is bool lb) left = lb ? 1L : 0L;
        if (right is bool rb) right = rb ? 1L : 0L;
        if (left is long x && right is long y)
        {
            switch (b.Op)
            {
                case "+": return x + y;
                case "-": return x - y;
                case "*": return x * y;
                case "//" when y != 0: return (long)Math.Floor((double)x / y);
                case "%" when y != 0: return ((x % y) + y) % y;
                case "**" when y >= 0: return (long)Math.Pow(x, y);
            }
        }
        if (IsNumber(left) && IsNumber(right))
        {
            double p = ToDouble(left), q = ToDouble(right);
            switch (b.Op)
            {
                case "+": return p + q;
                case "-": return p - q;
                case "*": return p * q;
                case "/" when q != 0: return p / q;
                case "//" when q != 0: return Math.Floor(p / q);
                case "%" when q != 0: return p - q * Math.Floor(p / q);
                case "**": return Math.Pow(p, q);
            }
            throw Error(b.Line, $"'{b.Op}' by zero");
        }
        if (b.Op == "*" && left is string str && right is long times) return string.Concat(Enumerable.Repeat(str, (int)Math.Max(0, times)));
        throw Error(b.Line, $"cannot apply '{b.Op}' to a {TypeName(left)} and a {TypeName(right)}");
    }

    internal static object? GetAttr(object? target, string name, int line)
    {
        switch (target)
        {
            case Dictionary<string, object?> dict:
                if (dict.TryGetValue(name, out object? v)) return v;
                return (object?)JinjaBuiltins.Method(target, name, line) ?? JinjaUndefined.Value;
            case JinjaNamespace ns:
                return ns.Values.TryGetValue(name, out object? nv) ? nv : JinjaUndefined.Value;
            case string:
                return (object?)JinjaBuiltins.Method(target, name, line) ?? JinjaUndefined.Value;
            default:
                return JinjaUndefined.Value;
        }
    }

    private static object? GetItem(object? target, object? key, int line)
    {
        switch (target)
        {
            case List<object?> list when key is long i:
                long index = i < 0 ? list.Count + i : i;
                return index >= 0 && index < list.Count ? list[(int)index] : JinjaUndefined.Value;
            case string s when key is long i:
                long at = i < 0 ? s.Length + i : i;
                return at >= 0 && at < s.Length ? s[(int)at].ToString() : JinjaUndefined.Value;
            case Dictionary<string, object?> or JinjaNamespace when key is string name:
                return GetAttr(target, name, line);
            case null or JinjaUndefined:
                return JinjaUndefined.Value;
            default:
                throw Error(line, $"cannot index a {TypeName(target)} by a {TypeName(key)}");
        }
    }

    private object? Slice(object? target, JinjaExpr.Slice s, int line)
    {
        long? Bound(JinjaExpr? e)
        {
            if (e is null) return null;
            return Eval(e) switch { long v => v, null => null, var v => throw Error(line, $"a slice bound is a {TypeName(v)}, not an integer") };
        }
        long? start = Bound(s.Start), stop = Bound(s.Stop), step = Bound(s.Step) ?? 1;
        if (step == 0) throw Error(line, "slice step cannot be zero");
        int count = target switch
        {
            List<object?> l => l.Count,
            string str => str.Length,
            _ => throw Error(line, $"cannot slice a {TypeName(target)}"),
        };
        var picked = new List<int>();
        long st = step.Value;
        long Clamp(long? v, long fallback, long lo, long hi) => v is null ? fallback : Math.Clamp(v.Value < 0 ? v.Value + count : v.Value, lo, hi);
        if (st > 0)
            for (long i = Clamp(start, 0, 0, count), end = Clamp(stop, count, 0, count); i < end; i += st) picked.Add((int)i);
        else
            for (long i = Clamp(start, count - 1, -1, count - 1), end = Clamp(stop, -1, -1, count - 1); i > end; i += st) picked.Add((int)i);
        if (target is string text)
        {
            var sb = new StringBuilder(picked.Count);
            foreach (int i in picked) sb.Append(text[i]);
            return sb.ToString();
        }
        var list = (List<object?>)target!;
        return picked.ConvertAll(i => list[i]);
    }

    private static List<object?> Range(List<object?> a, int line)
    {
        long start = 0, stop, step = 1;
        if (a.Count == 1 && a[0] is long only) stop = only;
        else if (a.Count >= 2 && a[0] is long s0 && a[1] is long s1)
        {
            start = s0;
            stop = s1;
            if (a.Count == 3) step = a[2] as long? ?? throw Error(line, "range step is not an integer");
        }
        else throw Error(line, "range needs integer arguments");
        if (step == 0) throw Error(line, "range step cannot be zero");
        var list = new List<object?>();
        for (long i = start; step > 0 ? i < stop : i > stop; i += step) list.Add(i);
        return list;
    }

    private static string Describe(JinjaExpr e) => e switch
    {
        JinjaExpr.Name n => n.Id,
        JinjaExpr.Attr a => Describe(a.Target) + "." + a.Id,
        _ => "expression",
    };

    internal static bool Truthy(object? v) => v switch
    {
        null or JinjaUndefined => false,
        bool b => b,
        long l => l != 0,
        double d => d != 0,
        string s => s.Length > 0,
        List<object?> l => l.Count > 0,
        Dictionary<string, object?> d => d.Count > 0,
        _ => true,
    };

    internal static bool IsNumber(object? v) => v is long or double;

    internal static double ToDouble(object? v) => v is long l ? l : (double)v!;

    internal static bool ValuesEqual(object? a, object? b)
    {
        if (IsNumber(a) && IsNumber(b)) return ToDouble(a) == ToDouble(b);
        return (a, b) switch
        {
            (null, null) => true,
            (JinjaUndefined, JinjaUndefined) => true,
            (string x, string y) => x == y,
            (bool x, bool y) => x == y,
            (List<object?> x, List<object?> y) => x.Count == y.Count && x.Zip(y).All(p => ValuesEqual(p.First, p.Second)),
            (Dictionary<string, object?> x, Dictionary<string, object?> y) => x.Count == y.Count && x.All(kv => y.TryGetValue(kv.Key, out object? o) && ValuesEqual(kv.Value, o)),
            _ => ReferenceEquals(a, b),
        };
    }

    internal static string TypeName(object? v) => v switch
    {
        null => "none",
        JinjaUndefined => "undefined value",
        bool => "boolean",
        long => "integer",
        double => "float",
        string => "string",
        List<object?> => "list",
        Dictionary<string, object?> => "mapping",
        JinjaNamespace => "namespace",
        JinjaCallable => "function",
        _ => v.GetType().Name,
    };

    /// <summary>Python's str() of a value, as Jinja prints it.</summary>
    internal static string Str(object? v) => v switch
    {
        JinjaUndefined => "",
        string s => s,
        _ => Repr(v),
    };

    internal static string Repr(object? v) => v switch
    {
        null => "None",
        JinjaUndefined => "",
        bool b => b ? "True" : "False",
        long l => l.ToString(CultureInfo.InvariantCulture),
        double d => double.IsInteger(d) && Math.Abs(d) < 1e16 ? d.ToString("F1", CultureInfo.InvariantCulture) : d.ToString("R", CultureInfo.InvariantCulture),
        string s => "'" + s.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("'", "\\'", StringComparison.Ordinal) + "'",
        List<object?> l => "[" + string.Join(", ", l.Select(Repr)) + "]",
        Dictionary<string, object?> d => "{" + string.Join(", ", d.Select(kv => Repr(kv.Key) + ": " + Repr(kv.Value))) + "}",
        JinjaNamespace => "<Namespace>",
        JinjaCallable c => $"<function {c.Name}>",
        _ => v.ToString() ?? "",
    };
}
