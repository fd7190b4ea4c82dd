using System.Text;

namespace MoeSharp.Text;

/// <summary>A template that cannot be parsed or rendered: the construct and its line are named.</summary>
public sealed class ChatTemplateException(string message) : Exception(message);

internal enum JinjaTokenKind { Text, OutputStart, BlockStart, End, Name, String, Integer, Float, Operator }

internal readonly record struct JinjaToken(JinjaTokenKind Kind, string Value, int Line);

/// <summary>
/// Splits a template into text and tag tokens, with the whitespace control Hugging Face renders chat templates
/// with: <c>{%-</c> / <c>-%}</c> trim all white space on that side, and trim_blocks / lstrip_blocks are on (the
/// newline after a block tag goes, as do the spaces before a block tag that starts its line).
/// </summary>
internal static class JinjaLexer
{
    private static readonly string[] Operators = ["//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<", ">", "(", ")", "[", "]", "{", "}", ",", ".", ":", "|", "="];

    public static List<JinjaToken> Tokenize(string source)
    {
        var tokens = new List<JinjaToken>();
        int pos = 0, line = 1;
        bool trimNext = false, trimNewline = false;
        while (pos < source.Length)
        {
            int open = FindTag(source, pos);
            string text = source[pos..(open < 0 ? source.Length : open)];
            bool atLineStart = pos == 0 || source[pos - 1] == '\n';
            if (trimNext) text = text.TrimStart();
            else if (trimNewline && (text.StartsWith('\n') || text.StartsWith("\r\n", StringComparison.Ordinal)))
            {
                text = text[(text[0] == '\r' ? 2 : 1)..];
                atLineStart = true;
            }
            trimNext = trimNewline = false;
            if (open < 0)
            {
                if (text.Length > 0) tokens.Add(new(JinjaTokenKind.Text, text, line));
                break;
            }
            char kind = source[open + 1];
            bool leftTrim = open + 2 < source.Length && source[open + 2] == '-';
            bool keepLeft = open + 2 < source.Length && source[open + 2] == '+';
            if (leftTrim) text = text.TrimEnd();
            else if (kind != '{' && !keepLeft) text = StripLineIndent(text, atLineStart);
            if (text.Length > 0) tokens.Add(new(JinjaTokenKind.Text, text, line));
            line += Count(source, pos, open);
            int tagLine = line;
            string close = kind switch { '{' => "}}", '%' => "%}", _ => "#}" };
            int end = kind == '#' ? source.IndexOf(close, open + 2, StringComparison.Ordinal) : FindClose(source, open + 2, close);
            if (end < 0) throw new ChatTemplateException($"chat template line {tagLine}: '{source.Substring(open, 2)}' is never closed by '{close}'.");
            int bodyStart = open + 2 + (leftTrim || keepLeft ? 1 : 0);
            bool rightTrim = end > bodyStart && source[end - 1] == '-';
            int bodyEnd = rightTrim ? end - 1 : end;
            if (kind != '#')
            {
                tokens.Add(new(kind == '{' ? JinjaTokenKind.OutputStart : JinjaTokenKind.BlockStart, "", tagLine));
                LexExpression(source, bodyStart, bodyEnd, tagLine, tokens);
                tokens.Add(new(JinjaTokenKind.End, close, tagLine));
            }
            line += Count(source, open, end + 2);
            pos = end + 2;
            trimNext = rightTrim;
            trimNewline = kind != '{';
        }
        return tokens;
    }

    private static int FindTag(string s, int from)
    {
        for (int i = s.IndexOf('{', from); i >= 0 && i + 1 < s.Length; i = s.IndexOf('{', i + 1))
            if (s[i + 1] is '{' or '%' or '#') return i;
        return -1;
    }

    // The closing delimiter of a tag, skipping string literals and balanced braces, as Jinja's lexer does:
    // {{ "}}" }} and {{ {'a': {'b': 1}} }} each close at their last pair.
    private static int FindClose(string s, int from, string close)
    {
        int depth = 0;
        for (int i = from; i + 1 < s.Length; i++)
        {
            char c = s[i];
            if (c is '\'' or '"')
            {
                for (i++; i < s.Length && s[i] != c; i++)
                    if (s[i] == '\\') i++;
                continue;
            }
            if (depth == 0 && c == close[0] && s[i + 1] == close[1]) return i;
            if (c == '{') depth++;
            else if (c == '}' && depth > 0) depth--;
        }
        return -1;
    }

    // lstrip_blocks: spaces and tabs between the line start and a block tag go.
    private static string StripLineIndent(string text, bool startsAtLineStart)
    {
        int i = text.Length;
        while (i > 0 && text[i - 1] is ' ' or '\t') i--;
        return (i == 0 && startsAtLineStart) || (i > 0 && text[i - 1] == '\n') ? text[..i] : text;
    }

    private static int Count(string s, int from, int to)
    {
        int n = 0;
        for (int i = from; i < to && i < s.Length; i++) if (s[i] == '\n') n++;
        return n;
    }

    private static void LexExpression(string s, int pos, int end, int line, List<JinjaToken> tokens)
    {
        while (pos < end)
        {
            char c = s[pos];
            if (char.IsWhiteSpace(c))
            {
                if (c == '\n') line++;
                pos++;
            }
            else if (char.IsLetter(c) || c == '_')
            {
                int start = pos;
                while (pos < end && (char.IsLetterOrDigit(s[pos]) || s[pos] == '_')) pos++;
                tokens.Add(new(JinjaTokenKind.Name, s[start..pos], line));
            }
            else if (char.IsAsciiDigit(c))
            {
                int start = pos;
                while (pos < end && char.IsAsciiDigit(s[pos])) pos++;
                bool isFloat = pos + 1 < end && s[pos] == '.' && char.IsAsciiDigit(s[pos + 1]);
                if (isFloat)
                {
                    pos++;
                    while (pos < end && char.IsAsciiDigit(s[pos])) pos++;
                }
                tokens.Add(new(isFloat ? JinjaTokenKind.Float : JinjaTokenKind.Integer, s[start..pos], line));
            }
            else if (c is '\'' or '"')
            {
                var sb = new StringBuilder();
                pos++;
                while (pos < end && s[pos] != c)
                {
                    if (s[pos] == '\\' && pos + 1 < end)
                    {
                        pos++;
                        sb.Append(s[pos] switch { 'n' => '\n', 't' => '\t', 'r' => '\r', '0' => '\0', _ => s[pos] });
                    }
                    else
                    {
                        if (s[pos] == '\n') line++;
                        sb.Append(s[pos]);
                    }
                    pos++;
                }
                if (pos >= end) throw new ChatTemplateException($"chat template line {line}: a string literal is never closed.");
                pos++;
                tokens.Add(new(JinjaTokenKind.String, sb.ToString(), line));
            }
            else
            {
                string? op = null;
                foreach (string o in Operators)
                {
                    if (string.CompareOrdinal(s, pos, o, 0, o.Length) == 0 && pos + o.Length <= end)
                    {
                        op = o;
                        break;
                    }
                }
                if (op is null) throw new ChatTemplateException($"chat template line {line}: unexpected character '{c}' (U+{(int)c:X4}).");
                tokens.Add(new(JinjaTokenKind.Operator, op, line));
                pos += op.Length;
            }
        }
    }
}
