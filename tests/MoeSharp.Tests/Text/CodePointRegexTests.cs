using MoeSharp.Text;

namespace MoeSharp.Tests.Text;

/// <summary>Split regexes see a character outside the BMP as one code point of its own category, as Rust's do.</summary>
public sealed class CodePointRegexTests
{
    private static string[] Split(string pattern, string text)
    {
        var spans = new List<(int Start, int Length)>();
        new CodePointRegex(pattern, "test").Split(text, 0, text.Length, spans);
        return spans.ConvertAll(s => text.Substring(s.Start, s.Length)).ToArray();
    }

    [Fact]
    public void AstralLetterJoinsTheWordAndAstralSymbolsJoinThePunctuationRun()
    {
        // U+1D400 MATHEMATICAL BOLD CAPITAL A is a letter (Lu); U+1F916 ROBOT FACE is a symbol (So).
        Assert.Equal(["a\U0001D400b", " ", "\U0001F916!"], Split(@"\p{L}+|\s+|[\p{P}\p{S}]+", "a\U0001D400b \U0001F916!"));
        // Gaps between matches are pieces too ("Isolated").
        Assert.Equal(["ab", "12", "cd"], Split(@"\p{N}+", "ab12cd"));
    }

    [Fact]
    public void InvalidPatternNamesWhereItCameFrom()
    {
        var e = Assert.Throws<InvalidDataException>(() => new CodePointRegex("(", "tokenizer.json: pre_tokenizer.pattern"));
        Assert.StartsWith("tokenizer.json: pre_tokenizer.pattern: the regex '(' is not valid in .NET", e.Message);
    }
}
