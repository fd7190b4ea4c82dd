using MoeSharp.Text;

namespace MoeSharp.Tests.Text;

/// <summary>
/// Streaming detokenisation against the whole-text decode of the same ids (exact): the pieces join to it, and no
/// piece ends inside a UTF-8 character, though the texts are chosen so that some tokens do (emoji, CJK, ZWJ).
/// </summary>
public sealed class IncrementalDecoderTests
{
    [Theory]
    [MemberData(nameof(HfTokenizerSharedTests.Models), MemberType = typeof(HfTokenizerSharedTests))]
    public void PiecesJoinToTheWholeDecodeAndNeverSplitACharacter(string model)
    {
        HfTokenizer tok = HfTokenizerSharedTests.Load(model);
        const string text = "Grüße 👩‍👩‍👧 und 日本語のテキスト, 🙂🦀 ok!\n  ελληνικά";
        int[] ids = tok.Encode(text, addSpecialTokens: false);
        var decoder = new IncrementalDecoder(tok);
        var pieces = new List<string>();
        int heldBack = 0;
        foreach (int id in ids)
        {
            string piece = decoder.Push(id);
            if (piece.Length == 0) heldBack++;
            else pieces.Add(piece);
        }
        pieces.Add(decoder.Flush());
        Assert.Equal(tok.Decode(ids), string.Concat(pieces));
        Assert.Equal(text, string.Concat(pieces));
        Assert.True(heldBack > 0, "no token ended inside a character, so the hold-back was not exercised");
        foreach (string p in pieces)
        {
            Assert.DoesNotContain('\uFFFD', p);
            if (p.Length > 0) Assert.False(char.IsHighSurrogate(p[^1]), $"piece '{p}' ends in a lone high surrogate");
        }
    }

    [Fact]
    public void FlushGivesAnIncompleteCharacterAsReplacement()
    {
        HfTokenizer tok = HfTokenizerSharedTests.Load("qwen3");
        int[] ids = tok.Encode("𒀀", addSpecialTokens: false); // cuneiform: rare enough to stay as bytes
        Assert.True(ids.Length > 1, "the character must take several byte tokens");
        var decoder = new IncrementalDecoder(tok);
        Assert.Equal("", decoder.Push(ids[0]));
        Assert.Contains('\uFFFD', decoder.Flush());
    }
}
