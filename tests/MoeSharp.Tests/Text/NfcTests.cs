using System.Text;
using System.Text.Json;
using CsCheck;
using MoeSharp.Text;

namespace MoeSharp.Tests.Text;

/// <summary>The hand-written NFC against Python's <c>unicodedata.normalize</c> (Golden/nfc.json, written by
/// Golden/gen_nfc_golden.py; exact string equality), for idempotence, and through the Qwen3 tokenizer.</summary>
public sealed class NfcTests
{
    private static readonly string GoldenPath = Path.Combine(TestPaths.RepoRoot, "tests", "MoeSharp.Tests", "Text", "Golden", "nfc.json");

    private static string Escaped(string s)
    {
        var sb = new StringBuilder();
        foreach (Rune r in s.EnumerateRunes()) sb.Append(r.Value < 0x80 ? ((char)r.Value).ToString() : $"\\u{r.Value:X4}");
        return sb.ToString();
    }

    [Fact]
    public void MatchesPythonUnicodedataOnEveryGoldenCase()
    {
        using JsonDocument doc = JsonDocument.Parse(File.ReadAllBytes(GoldenPath));
        Assert.Equal(Nfc.UnicodeVersion, doc.RootElement.GetProperty("unicode_version").GetString());
        var failures = new List<string>();
        int count = 0;
        foreach (JsonElement c in doc.RootElement.GetProperty("cases").EnumerateArray())
        {
            string name = c[0].GetString()!, input = c[1].GetString()!, expected = c[2].GetString()!;
            string actual = Nfc.Normalize(input);
            if (actual != expected) failures.Add($"{name}: {Escaped(input)} -> {Escaped(actual)}, expected {Escaped(expected)}");
            count++;
        }
        Assert.True(count > 5000, $"only {count} golden cases");
        Assert.True(failures.Count == 0, $"{failures.Count} of {count} cases differ:\n" + string.Join("\n", failures.Take(20)));
    }

    [Fact]
    public void HandDerivedCases()
    {
        Assert.Equal("\u00e9", Nfc.Normalize("e\u0301"));
        Assert.Equal("\u00c5", Nfc.Normalize("\u212b"));                        // singleton: Angstrom sign to A with ring
        Assert.Equal("\u1ec7", Nfc.Normalize("e\u0302\u0323"));                  // dot below (220) sorts before circumflex (230)
        Assert.Equal("\u0915\u093c", Nfc.Normalize("\u0958"));                   // an exclusion never recomposes
        Assert.Equal("\ud55c", Nfc.Normalize("\u1112\u1161\u11ab"));             // Hangul L V T by arithmetic
        Assert.Equal("\U0001d157\U0001d165", Nfc.Normalize("\U0001d15e"));       // an astral exclusion decomposes for good
        Assert.Equal(220, Nfc.CombiningClass(0x0323));
        Assert.Equal(0, Nfc.CombiningClass('a'));
    }

    [Fact]
    public void AlreadyNormalTextBelowCombiningMarksComesBackAsTheSameInstance()
    {
        const string text = "Hello, caf\u00e9 \u00c5ngstr\u00f6m";
        Assert.Same(text, Nfc.Normalize(text));
    }

    [Fact]
    public void DoesNotDependOnTheHostsGlobalizationMode()
    {
        // string.Normalize leaves this alone under InvariantGlobalization (set for every project here), ours does not.
        Assert.Equal(2, "e\u0301".Normalize().Length);
        Assert.Equal(1, Nfc.Normalize("e\u0301").Length);
    }

    [Fact]
    public void IsIdempotentOnRandomCodePointStrings()
    {
        // Most draws from where NFC has work to do (Latin, marks, Hebrew, Devanagari, Tibetan, jamo, syllables,
        // Greek extended, astral composites and exclusions), the rest from all of Unicode but the surrogates.
        var codePoint = Gen.Frequency(
            (2, Gen.Int[0x41, 0x17F]), (4, Gen.Int[0x300, 0x36F]), (1, Gen.Int[0x591, 0x5C7]), (1, Gen.Int[0x900, 0x97F]),
            (1, Gen.Int[0xF40, 0xF8F]), (2, Gen.Int[0x1100, 0x11FF]), (2, Gen.Int[0xAC00, 0xD7A3]), (1, Gen.Int[0x1E00, 0x1FFF]),
            (1, Gen.Int[0x11099, 0x110BA]), (1, Gen.Int[0x1D15E, 0x1D16F]),
            (2, Gen.Int[0, 0x10FFFF - 0x800].Select(x => x >= 0xD800 ? x + 0x800 : x)));
        var text = codePoint.Array[1, 12].Select(cps =>
        {
            var sb = new StringBuilder();
            foreach (int cp in cps) sb.Append(char.ConvertFromUtf32(cp));
            return sb.ToString();
        });
        text.Sample(s =>
        {
            string once = Nfc.Normalize(s);
            Assert.Equal(Escaped(once), Escaped(Nfc.Normalize(once)));
        }, iter: 4000);
    }

    [Theory]
    [InlineData("Tie\u0302\u0301ng Vie\u0323\u0302t", "Ti\u1ebfng Vi\u1ec7t")]
    [InlineData("cafe\u0301 \u212bngstro\u0308m", "caf\u00e9 \u00c5ngstr\u00f6m")]
    [InlineData("\u1112\u1161\u11ab\u1100\u1173\u11af", "\ud55c\uae00")]
    [InlineData("a\u0301\u0323 \u0958", "\u1ea1\u0301 \u0915\u093c")]
    public void Qwen3TokenizerEncodesDecomposedTextAsItsNfc(string decomposed, string composed)
    {
        Assert.Equal(composed, Nfc.Normalize(decomposed));
        HfTokenizer qwen = HfTokenizerSharedTests.Load("qwen3");
        int[] expected = qwen.Encode(composed, addSpecialTokens: false);
        Assert.Equal(expected, qwen.Encode(decomposed, addSpecialTokens: false));
    }
}
