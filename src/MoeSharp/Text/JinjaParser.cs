using System.Globalization;

namespace MoeSharp.Text;

internal abstract record JinjaExpr(int Line)
{
    public sealed record Literal(object? Value, int L) : JinjaExpr(L);
    public sealed record Name(string Id, int L) : JinjaExpr(L);
    public sealed record Attr(JinjaExpr Target, string Id, int L) : JinjaExpr(L);
    public sealed record Item(JinjaExpr Target, JinjaExpr Key, int L) : JinjaExpr(L);
    public sealed record Slice(JinjaExpr Target, JinjaExpr? Start, JinjaExpr? Stop, JinjaExpr? Step, int L) : JinjaExpr(L);
    public sealed record Call(JinjaExpr Callee, List<JinjaExpr> Args, List<(string Name, JinjaExpr Value)> Kwargs, int L) : JinjaExpr(L);
    public sealed record Filter(JinjaExpr Target, string Id, List<JinjaExpr> Args, List<(string Name, JinjaExpr Value)> Kwargs, int L) : JinjaExpr(L);
    public sealed record Test(JinjaExpr Target, string Id, bool Negated, List<JinjaExpr> Args, int L) : JinjaExpr(L);
    public sealed record Unary(string Op, JinjaExpr Operand, int L) : JinjaExpr(L);
    public sealed record Binary(string Op, JinjaExpr Left, JinjaExpr Right, int L) : JinjaExpr(L);
    public sealed record Conditional(JinjaExpr Condition, JinjaExpr Then, JinjaExpr? Else, int L) : JinjaExpr(L);
    public sealed record ListLit(List<JinjaExpr> Items, int L) : JinjaExpr(L);
    public sealed record DictLit(List<(JinjaExpr Key, JinjaExpr Value)> Items, int L) : JinjaExpr(L);
}

internal abstract record JinjaNode(int Line)
{
    public sealed record Text(string Value, int L) : JinjaNode(L);
    public sealed record Output(JinjaExpr Value, int L) : JinjaNode(L);
    public sealed record If(List<(JinjaExpr Condition, List<JinjaNode> Body)> Branches, List<JinjaNode>? Else, int L) : JinjaNode(L);
    public sealed record For(List<string> Targets, JinjaExpr Iterable, JinjaExpr? Filter, List<JinjaNode> Body, List<JinjaNode>? Else, int L) : JinjaNode(L);
    /// <summary><c>set name = value</c>, or <c>set ns.attr = value</c> when <see cref="Attribute"/> is set.</summary>
    public sealed record Set(string Target, string? Attribute, JinjaExpr Value, int L) : JinjaNode(L);
    /// <summary><c>set name</c> ... <c>endset</c>: the rendered body becomes the value.</summary>
    public sealed record SetBlock(string Target, string? Attribute, List<JinjaNode> Body, int L) : JinjaNode(L);
    public sealed record Generation(List<JinjaNode> Body, int L) : JinjaNode(L);
    /// <summary><c>macro name(a, b=default)</c>: defaults are evaluated at each call, as Jinja does.</summary>
    public sealed record Macro(string Name, List<(string Name, JinjaExpr? Default)> Params, List<JinjaNode> Body, int L) : JinjaNode(L);
    /// <summary><c>call(params) macro(args)</c>: the body becomes the <c>caller</c> the macro may invoke.</summary>
    public sealed record CallBlock(JinjaExpr.Call Call, List<(string Name, JinjaExpr? Default)> CallerParams, List<JinjaNode> Body, int L) : JinjaNode(L);
    public sealed record Break(int L) : JinjaNode(L);
    public sealed record Continue(int L) : JinjaNode(L);
}

/// <summary>A recursive-descent parser for the Jinja subset that real chat templates use.</summary>
internal sealed class JinjaParser
{
    private readonly List<JinjaToken> _tokens;
    private int _pos;
    private int _loopDepth; // for loops around the current statement, within the current macro: where break/continue may go

    private JinjaParser(List<JinjaToken> tokens) => _tokens = tokens;

    public static List<JinjaNode> Parse(string source)
    {
        var parser = new JinjaParser(JinjaLexer.Tokenize(source));
        List<JinjaNode> body = parser.ParseBody(out string? stop);
        if (stop is not null) throw parser.Error($"'{stop}' without an opening tag");
        return body;
    }

    private JinjaToken Peek(int ahead = 0) => _pos + ahead < _tokens.Count ? _tokens[_pos + ahead] : new(JinjaTokenKind.End, "", LastLine);

    private int LastLine => _tokens.Count == 0 ? 1 : _tokens[^1].Line;

    private JinjaToken Next() => _tokens[_pos++];

    private ChatTemplateException Error(string what) => new($"chat template line {Peek().Line}: {what}.");

    private bool IsOp(string op) => Peek().Kind == JinjaTokenKind.Operator && Peek().Value == op;

    private bool IsName(string name) => Peek().Kind == JinjaTokenKind.Name && Peek().Value == name;

    private void ExpectOp(string op)
    {
        if (!IsOp(op)) throw Error($"expected '{op}' but found '{Peek().Value}'");
        _pos++;
    }

    private string ExpectName()
    {
        if (Peek().Kind != JinjaTokenKind.Name) throw Error($"expected a name but found '{Peek().Value}'");
        return Next().Value;
    }

    private void ExpectEnd()
    {
        if (Peek().Kind != JinjaTokenKind.End) throw Error($"expected the end of the tag but found '{Peek().Value}'");
        _pos++;
    }

    // Parses nodes until a block tag whose keyword ends this body (endfor, elif, ...); that keyword is returned
    // in stop with the tag's opening already consumed, or null at the end of the template.
    private List<JinjaNode> ParseBody(out string? stop, params string[] stops)
    {
        var nodes = new List<JinjaNode>();
        while (_pos < _tokens.Count)
        {
            JinjaToken t = Next();
            switch (t.Kind)
            {
                case JinjaTokenKind.Text:
                    nodes.Add(new JinjaNode.Text(t.Value, t.Line));
                    break;
                case JinjaTokenKind.OutputStart:
                    nodes.Add(new JinjaNode.Output(ParseExpression(), t.Line));
                    ExpectEnd();
                    break;
                case JinjaTokenKind.BlockStart:
                    string keyword = Peek().Value;
                    if (Array.IndexOf(stops, keyword) >= 0)
                    {
                        _pos++;
                        stop = keyword;
                        return nodes;
                    }
                    nodes.Add(ParseStatement(t.Line));
                    break;
                default:
                    throw Error($"unexpected '{t.Value}'");
            }
        }
        stop = null;
        if (stops.Length > 0) throw new ChatTemplateException($"chat template line {LastLine}: the template ends before '{stops[^1]}'.");
        return nodes;
    }

    private JinjaNode ParseStatement(int line)
    {
        string keyword = ExpectName();
        switch (keyword)
        {
            case "if":
            {
                var branches = new List<(JinjaExpr, List<JinjaNode>)>();
                JinjaExpr condition = ParseExpression();
                ExpectEnd();
                List<JinjaNode>? elseBody = null;
                while (true)
                {
                    List<JinjaNode> body = ParseBody(out string? stop, "elif", "else", "endif");
                    branches.Add((condition, body));
                    if (stop == "elif")
                    {
                        condition = ParseExpression();
                        ExpectEnd();
                        continue;
                    }
                    if (stop == "else")
                    {
                        ExpectEnd();
                        elseBody = ParseBody(out _, "endif");
                    }
                    ExpectEnd();
                    return new JinjaNode.If(branches, elseBody, line);
                }
            }
            case "for":
            {
                var targets = new List<string> { ExpectName() };
                while (IsOp(","))
                {
                    _pos++;
                    targets.Add(ExpectName());
                }
                if (!IsName("in")) throw Error($"expected 'in' but found '{Peek().Value}'");
                _pos++;
                JinjaExpr iterable = ParseOr();
                JinjaExpr? filter = null;
                if (IsName("if"))
                {
                    _pos++;
                    filter = ParseOr();
                }
                if (IsName("recursive")) throw Error("unsupported construct 'recursive' loop");
                ExpectEnd();
                _loopDepth++;
                List<JinjaNode> body = ParseBody(out string? stop, "else", "endfor");
                _loopDepth--;
                List<JinjaNode>? elseBody = null;
                if (stop == "else")
                {
                    ExpectEnd();
                    elseBody = ParseBody(out _, "endfor");
                }
                ExpectEnd();
                return new JinjaNode.For(targets, iterable, filter, body, elseBody, line);
            }
            case "set":
            {
                string target = ExpectName();
                string? attribute = null;
                if (IsOp("."))
                {
                    _pos++;
                    attribute = ExpectName();
                }
                if (Peek().Kind == JinjaTokenKind.End)
                {
                    ExpectEnd();
                    return new JinjaNode.SetBlock(target, attribute, ParseMacroBody("endset"), line);
                }
                if (!IsOp("=")) throw Error($"unsupported construct 'set' with '{Peek().Value}' (expected 'set name = value' or a set block)");
                _pos++;
                JinjaExpr value = ParseExpression();
                ExpectEnd();
                return new JinjaNode.Set(target, attribute, value, line);
            }
            case "generation":
            {
                // Hugging Face's extension marking the assistant's own tokens; it renders its body unchanged.
                ExpectEnd();
                List<JinjaNode> body = ParseBody(out _, "endgeneration");
                ExpectEnd();
                return new JinjaNode.Generation(body, line);
            }
            case "break" or "continue":
            {
                _pos--;
                if (_loopDepth == 0) throw Error($"'{keyword}' outside a for loop");
                _pos++;
                ExpectEnd();
                return keyword == "break" ? new JinjaNode.Break(line) : new JinjaNode.Continue(line);
            }
            case "macro":
            {
                string name = ExpectName();
                var parameters = ParseParameters();
                ExpectEnd();
                List<JinjaNode> body = ParseMacroBody("endmacro");
                return new JinjaNode.Macro(name, parameters, body, line);
            }
            case "call":
            {
                var callerParams = IsOp("(") ? ParseParameters() : [];
                if (ParsePostfix(ParsePrimary()) is not JinjaExpr.Call call) throw Error("'call' needs a macro call such as 'call m(x)'");
                ExpectEnd();
                List<JinjaNode> body = ParseMacroBody("endcall");
                return new JinjaNode.CallBlock(call, callerParams, body, line);
            }
            default:
                _pos--;
                throw Error($"unsupported construct '{keyword}'");
        }
    }

    // A macro or call body: break and continue there cannot reach a loop outside it.
    private List<JinjaNode> ParseMacroBody(string end)
    {
        int depth = _loopDepth;
        _loopDepth = 0;
        List<JinjaNode> body = ParseBody(out _, end);
        _loopDepth = depth;
        ExpectEnd();
        return body;
    }

    // "(a, b=default, ...)" of a macro or call block.
    private List<(string, JinjaExpr?)> ParseParameters()
    {
        ExpectOp("(");
        var parameters = new List<(string, JinjaExpr?)>();
        while (!IsOp(")"))
        {
            string name = ExpectName();
            JinjaExpr? fallback = null;
            if (IsOp("="))
            {
                _pos++;
                fallback = ParseExpression();
            }
            else if (parameters.Count > 0 && parameters[^1].Item2 is not null)
            {
                throw Error($"parameter '{name}' without a default follows one with a default");
            }
            parameters.Add((name, fallback));
            if (!IsOp(",")) break;
            _pos++;
        }
        ExpectOp(")");
        return parameters;
    }

    public JinjaExpr ParseExpression()
    {
        int line = Peek().Line;
        JinjaExpr value = ParseOr();
        if (!IsName("if")) return value;
        _pos++;
        JinjaExpr condition = ParseOr();
        JinjaExpr? otherwise = null;
        if (IsName("else"))
        {
            _pos++;
            otherwise = ParseExpression();
        }
        return new JinjaExpr.Conditional(condition, value, otherwise, line);
    }

    private JinjaExpr ParseOr()
    {
        JinjaExpr left = ParseAnd();
        while (IsName("or"))
        {
            int line = Next().Line;
            left = new JinjaExpr.Binary("or", left, ParseAnd(), line);
        }
        return left;
    }

    private JinjaExpr ParseAnd()
    {
        JinjaExpr left = ParseNot();
        while (IsName("and"))
        {
            int line = Next().Line;
            left = new JinjaExpr.Binary("and", left, ParseNot(), line);
        }
        return left;
    }

    private JinjaExpr ParseNot()
    {
        if (IsName("not"))
        {
            int line = Next().Line;
            return new JinjaExpr.Unary("not", ParseNot(), line);
        }
        return ParseCompare();
    }

    private JinjaExpr ParseCompare()
    {
        JinjaExpr left = ParseMath1();
        while (true)
        {
            int line = Peek().Line;
            if (Peek().Kind == JinjaTokenKind.Operator && Peek().Value is "==" or "!=" or "<" or ">" or "<=" or ">=")
            {
                string op = Next().Value;
                left = new JinjaExpr.Binary(op, left, ParseMath1(), line);
            }
            else if (IsName("in"))
            {
                _pos++;
                left = new JinjaExpr.Binary("in", left, ParseMath1(), line);
            }
            else if (IsName("not") && Peek(1).Kind == JinjaTokenKind.Name && Peek(1).Value == "in")
            {
                _pos += 2;
                left = new JinjaExpr.Unary("not", new JinjaExpr.Binary("in", left, ParseMath1(), line), line);
            }
            else
            {
                return left;
            }
        }
    }

    private JinjaExpr ParseMath1()
    {
        JinjaExpr left = ParseConcat();
        while (IsOp("+") || IsOp("-"))
        {
            JinjaToken op = Next();
            left = new JinjaExpr.Binary(op.Value, left, ParseConcat(), op.Line);
        }
        return left;
    }

    private JinjaExpr ParseConcat()
    {
        JinjaExpr left = ParseMath2();
        while (IsOp("~"))
        {
            JinjaToken op = Next();
            left = new JinjaExpr.Binary("~", left, ParseMath2(), op.Line);
        }
        return left;
    }

    private JinjaExpr ParseMath2()
    {
        JinjaExpr left = ParsePow();
        while (IsOp("*") || IsOp("/") || IsOp("//") || IsOp("%"))
        {
            JinjaToken op = Next();
            left = new JinjaExpr.Binary(op.Value, left, ParsePow(), op.Line);
        }
        return left;
    }

    private JinjaExpr ParsePow()
    {
        JinjaExpr left = ParseUnary();
        while (IsOp("**"))
        {
            JinjaToken op = Next();
            left = new JinjaExpr.Binary("**", left, ParseUnary(), op.Line);
        }
        return left;
    }

    private JinjaExpr ParseUnary()
    {
        if (IsOp("-") || IsOp("+"))
        {
            JinjaToken op = Next();
            return new JinjaExpr.Unary(op.Value, ParseUnary(), op.Line);
        }
        return ParseFilters(ParsePostfix(ParsePrimary()));
    }

    private JinjaExpr ParsePrimary()
    {
        JinjaToken t = Peek();
        switch (t.Kind)
        {
            case JinjaTokenKind.String:
                _pos++;
                string s = t.Value;
                while (Peek().Kind == JinjaTokenKind.String) s += Next().Value; // adjacent literals concatenate
                return new JinjaExpr.Literal(s, t.Line);
            case JinjaTokenKind.Integer:
                _pos++;
                return new JinjaExpr.Literal(long.Parse(t.Value, CultureInfo.InvariantCulture), t.Line);
            case JinjaTokenKind.Float:
                _pos++;
                return new JinjaExpr.Literal(double.Parse(t.Value, CultureInfo.InvariantCulture), t.Line);
            case JinjaTokenKind.Name:
                _pos++;
                return t.Value switch
                {
                    "true" or "True" => new JinjaExpr.Literal(true, t.Line),
                    "false" or "False" => new JinjaExpr.Literal(false, t.Line),
                    "none" or "None" => new JinjaExpr.Literal(null, t.Line),
                    _ => new JinjaExpr.Name(t.Value, t.Line),
                };
            case JinjaTokenKind.Operator when t.Value == "(":
            {
                _pos++;
                JinjaExpr first = ParseExpression();
                if (IsOp(")"))
                {
                    _pos++;
                    return first;
                }
                var items = new List<JinjaExpr> { first }; // a tuple, held as a list
                while (IsOp(","))
                {
                    _pos++;
                    if (IsOp(")")) break;
                    items.Add(ParseExpression());
                }
                ExpectOp(")");
                return new JinjaExpr.ListLit(items, t.Line);
            }
            case JinjaTokenKind.Operator when t.Value == "[":
            {
                _pos++;
                var items = new List<JinjaExpr>();
                while (!IsOp("]"))
                {
                    items.Add(ParseExpression());
                    if (!IsOp(",")) break;
                    _pos++;
                }
                ExpectOp("]");
                return new JinjaExpr.ListLit(items, t.Line);
            }
            case JinjaTokenKind.Operator when t.Value == "{":
            {
                _pos++;
                var items = new List<(JinjaExpr, JinjaExpr)>();
                while (!IsOp("}"))
                {
                    JinjaExpr key = ParseExpression();
                    ExpectOp(":");
                    items.Add((key, ParseExpression()));
                    if (!IsOp(",")) break;
                    _pos++;
                }
                ExpectOp("}");
                return new JinjaExpr.DictLit(items, t.Line);
            }
            default:
                throw Error($"unexpected '{t.Value}' in an expression");
        }
    }

    private JinjaExpr ParsePostfix(JinjaExpr target)
    {
        while (true)
        {
            int line = Peek().Line;
            if (IsOp("."))
            {
                _pos++;
                target = new JinjaExpr.Attr(target, ExpectName(), line);
            }
            else if (IsOp("["))
            {
                _pos++;
                JinjaExpr? start = IsOp(":") ? null : ParseExpression();
                if (!IsOp(":"))
                {
                    ExpectOp("]");
                    target = new JinjaExpr.Item(target, start!, line);
                    continue;
                }
                _pos++;
                JinjaExpr? stop = IsOp(":") || IsOp("]") ? null : ParseExpression();
                JinjaExpr? step = null;
                if (IsOp(":"))
                {
                    _pos++;
                    step = IsOp("]") ? null : ParseExpression();
                }
                ExpectOp("]");
                target = new JinjaExpr.Slice(target, start, stop, step, line);
            }
            else if (IsOp("("))
            {
                var (args, kwargs) = ParseArguments();
                target = new JinjaExpr.Call(target, args, kwargs, line);
            }
            else
            {
                return target;
            }
        }
    }

    private (List<JinjaExpr>, List<(string, JinjaExpr)>) ParseArguments()
    {
        ExpectOp("(");
        var args = new List<JinjaExpr>();
        var kwargs = new List<(string, JinjaExpr)>();
        while (!IsOp(")"))
        {
            if (Peek().Kind == JinjaTokenKind.Name && Peek(1).Kind == JinjaTokenKind.Operator && Peek(1).Value == "=")
            {
                string name = Next().Value;
                _pos++;
                kwargs.Add((name, ParseExpression()));
            }
            else
            {
                args.Add(ParseExpression());
            }
            if (!IsOp(",")) break;
            _pos++;
        }
        ExpectOp(")");
        return (args, kwargs);
    }

    private JinjaExpr ParseFilters(JinjaExpr target)
    {
        while (true)
        {
            int line = Peek().Line;
            if (IsOp("|"))
            {
                _pos++;
                string name = ExpectName();
                var (args, kwargs) = IsOp("(") ? ParseArguments() : ([], []);
                target = new JinjaExpr.Filter(target, name, args, kwargs, line);
            }
            else if (IsName("is"))
            {
                _pos++;
                bool negated = false;
                if (IsName("not"))
                {
                    _pos++;
                    negated = true;
                }
                string name = Peek().Kind == JinjaTokenKind.Name ? Next().Value : throw Error($"expected a test name after 'is' but found '{Peek().Value}'");
                var args = new List<JinjaExpr>();
                if (IsOp("(")) args = ParseArguments().Item1;
                else if (Peek().Kind is JinjaTokenKind.String or JinjaTokenKind.Integer or JinjaTokenKind.Float) args.Add(ParsePrimary());
                target = new JinjaExpr.Test(target, name, negated, args, line);
            }
            else
            {
                return target;
            }
        }
    }
}
