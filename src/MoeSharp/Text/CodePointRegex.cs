using System.Globalization;
using System.Text.RegularExpressions;

namespace MoeSharp.Text;

/// <summary>
/// A regex matched by code point, as Hugging Face's Rust tokenizers match it. .NET matches UTF-16 units, so a
/// character outside the BMP (an emoji, a rare CJK ideograph) is two surrogates of category Cs, and
/// <c>\p{L}</c>, <c>\p{S}</c> or <c>[^\s\p{L}\p{N}]</c> see the wrong category. The text is matched in a copy
/// where each such character is one BMP stand-in of the same Unicode category; match offsets map back.
/// </summary>
internal sealed class CodePointRegex
{
    // One BMP character per category, outside ASCII and the CJK/kana ranges that real split patterns name
    // literally, and never white space; indexed by UnicodeCategory.
    private static readonly char[] StandIns = BuildStandIns();

    private readonly Regex _regex;

    public CodePointRegex(string pattern, string where)
    {
        try
        {
            _regex = new Regex(pattern, RegexOptions.CultureInvariant);
        }
        catch (ArgumentException e)
        {
            throw new InvalidDataException($"{where}: the regex '{pattern}' is not valid in .NET: {e.Message}", e);
        }
    }

    /// <summary>Appends the [start, length) pieces of <paramref name="text"/>: every match and every gap between
    /// matches, in order (the "Isolated" split behaviour).</summary>
    public void Split(string text, int offset, int length, List<(int Start, int Length)> pieces)
    {
        string segment = text.Substring(offset, length);
        if (!HasSurrogate(segment))
        {
            int pos = 0;
            for (Match m = _regex.Match(segment); m.Success; m = m.NextMatch())
            {
                if (m.Length == 0) continue;
                if (m.Index > pos) pieces.Add((offset + pos, m.Index - pos));
                pieces.Add((offset + m.Index, m.Length));
                pos = m.Index + m.Length;
            }
            if (pos < segment.Length) pieces.Add((offset + pos, segment.Length - pos));
            return;
        }

        // [mapped length + 1] original offset of each stand-in position
        var origin = new int[segment.Length + 1];
        var mapped = new char[segment.Length];
        int n = 0;
        for (int i = 0; i < segment.Length; i++)
        {
            origin[n] = i;
            if (char.IsHighSurrogate(segment[i]) && i + 1 < segment.Length && char.IsLowSurrogate(segment[i + 1]))
            {
                mapped[n++] = StandIns[(int)CharUnicodeInfo.GetUnicodeCategory(char.ConvertToUtf32(segment[i], segment[i + 1]))];
                i++;
            }
            else
            {
                mapped[n++] = segment[i];
            }
        }
        origin[n] = segment.Length;
        string view = new(mapped, 0, n);
        int last = 0;
        for (Match m = _regex.Match(view); m.Success; m = m.NextMatch())
        {
            if (m.Length == 0) continue;
            int start = origin[m.Index], end = origin[m.Index + m.Length];
            if (start > last) pieces.Add((offset + last, start - last));
            pieces.Add((offset + start, end - start));
            last = end;
        }
        if (last < segment.Length) pieces.Add((offset + last, segment.Length - last));
    }

    private static bool HasSurrogate(string s)
    {
        foreach (char c in s)
            if (char.IsSurrogate(c)) return true;
        return false;
    }

    private static char[] BuildStandIns()
    {
        var table = new char[32];
        Array.Fill(table, '\uFFFD');
        var found = new bool[32];
        for (int c = 0xA0; c <= 0xFFFF; c++)
        {
            if (c is >= 0x3040 and <= 0x30FF or >= 0x4E00 and <= 0x9FFF or >= 0xD800 and <= 0xDFFF) continue;
            var cat = (int)CharUnicodeInfo.GetUnicodeCategory((char)c);
            if (found[cat] || char.IsWhiteSpace((char)c)) continue;
            table[cat] = (char)c;
            found[cat] = true;
        }
        return table;
    }
}
