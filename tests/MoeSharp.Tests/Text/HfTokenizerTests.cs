using System.Text;
using MoeSharp.Text;

namespace MoeSharp.Tests.Text;

/// <summary>
/// The SentencePiece-style variant (Metaspace, byte fallback, a BOS template) that Llama's and Mixtral's
/// <c>tokenizer.json</c> use, on a small file written here from the format's definition, with ids derived by hand;
/// and the one-line errors for what the loader cannot run.
/// </summary>
public sealed class HfTokenizerTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("moe-tok-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    // Ids: <unk> 0, <s> 1, </s> 2, <0x00>..<0xFF> 3..258, then ▁ h i e l o ▁h ▁hi ll llo = 259..268. "é" is absent,
    // so it falls back to its UTF-8 bytes C3 A9 = ids 3+0xC3 = 198 and 3+0xA9 = 172.
    private string Write(string normalizer, string preTokenizer, string model = "BPE")
    {
        var vocab = new StringBuilder("\"<unk>\": 0, \"<s>\": 1, \"</s>\": 2");
        for (int b = 0; b < 256; b++) vocab.Append($", \"<0x{b:X2}>\": {3 + b}");
        string[] pieces = ["▁", "h", "i", "e", "l", "o", "▁h", "▁hi", "ll", "llo"];
        for (int i = 0; i < pieces.Length; i++) vocab.Append($", \"{pieces[i]}\": {259 + i}");
        string vocabObject = "{" + vocab + "}";
        string json = $$$"""
        {
          "version": "1.0",
          "added_tokens": [
            {"id": 0, "content": "<unk>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
            {"id": 1, "content": "<s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
            {"id": 2, "content": "</s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}
          ],
          "normalizer": {{{normalizer}}},
          "pre_tokenizer": {{{preTokenizer}}},
          "post_processor": {"type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0} }, {"Sequence": {"id": "A", "type_id": 0} }],
            "pair": [], "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"] } } },
          "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
            {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}] },
          "model": {"type": "{{{model}}}", "dropout": null, "unk_token": "<unk>", "continuing_subword_prefix": null,
            "end_of_word_suffix": null, "fuse_unk": true, "byte_fallback": true,
            "vocab": {{{vocabObject}}},
            "merges": ["▁ h", "▁h i", "l l", "ll o"]}
        }
        """;
        string path = Path.Combine(_dir, "tokenizer.json");
        File.WriteAllText(path, json);
        return path;
    }

    private const string Legacy = """{"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"}, {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]}""";
    private const string MetaspaceFirst = """{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": false}""";

    [Fact]
    public void LegacyLlamaFileEncodesWithMergesAndByteFallback()
    {
        HfTokenizer tok = HfTokenizer.Load(Write(Legacy, "null"));
        // "▁hi▁héllo": "▁hi▁h" merges ▁ h (twice) then ▁h i -> ▁hi ▁h; é -> <0xC3> <0xA9>; "llo" merges l l then ll o.
        Assert.Equal([1, 266, 265, 198, 172, 268], tok.Encode("hi héllo"));
        Assert.Equal([266, 265, 198, 172, 268], tok.Encode("hi héllo", addSpecialTokens: false));
        Assert.Equal("<s> hi héllo", tok.Decode([1, 266, 265, 198, 172, 268]));
        Assert.Equal("hi héllo", tok.Decode([1, 266, 265, 198, 172, 268], skipSpecialTokens: true));
        // The legacy normalizer prepends ▁ to every piece between added tokens.
        Assert.Equal([266, 1, 266], tok.Encode("hi<s>hi", addSpecialTokens: false));
    }

    [Fact]
    public void MetaspaceFirstPrependsOnlyAtTheStartOfTheText()
    {
        HfTokenizer tok = HfTokenizer.Load(Write("null", MetaspaceFirst));
        Assert.Equal([1, 266, 265, 198, 172, 268], tok.Encode("hi héllo"));
        Assert.Equal([266, 1, 260, 261], tok.Encode("hi<s>hi", addSpecialTokens: false)); // no merge "h i" without ▁
    }

    [Fact]
    public void InvalidUtf8BytesDecodeToReplacementCharacters()
    {
        HfTokenizer tok = HfTokenizer.Load(Write(Legacy, "null"));
        Assert.Equal("\uFFFDllo", tok.Decode([198, 268])); // a lone lead byte C3
    }

    [Theory]
    [InlineData("WordPiece", "null", "model.type 'WordPiece' is not supported; expected BPE.")]
    [InlineData("BPE", """{"type": "Whitespace"}""", "pre_tokenizer.type 'Whitespace' is not supported; expected Split, ByteLevel, Metaspace or Sequence.")]
    public void UnsupportedKindsAreOneLineNamingFileAndField(string model, string preTokenizer, string message)
    {
        string path = Write("null", preTokenizer, model);
        var e = Assert.Throws<InvalidDataException>(() => HfTokenizer.Load(_dir));
        Assert.Equal($"{path}: {message}", e.Message);
    }

    [Fact]
    public void MissingFileIsNamed()
    {
        var e = Assert.Throws<FileNotFoundException>(() => HfTokenizer.Load(_dir));
        Assert.Contains(Path.Combine(_dir, "tokenizer.json"), e.Message);
    }
}
