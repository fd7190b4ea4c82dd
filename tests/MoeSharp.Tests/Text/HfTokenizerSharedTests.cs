using System.Text.Json;
using MoeSharp.Text;

namespace MoeSharp.Tests.Text;

/// <summary>
/// The real Qwen3, DeepSeek-V3 and GPT-OSS tokenizers against ids, special-token handling and decodes made by an
/// independent implementation (transformers.js; see ../shared/tokenizers/README.md). Exact match, no tolerance.
/// </summary>
public sealed class HfTokenizerSharedTests
{
    public static TheoryData<string> Models => ["qwen3", "deepseek_v3", "gptoss"];

    internal static string Folder(string model) => TestPaths.SharedTokenizer(model);

    private static readonly Dictionary<string, HfTokenizer> Loaded = [];

    /// <summary>Each real tokenizer loaded once for the whole run: a load reads 8-28 MB of JSON.</summary>
    internal static HfTokenizer Load(string model)
    {
        string folder = Folder(model);
        lock (Loaded)
        {
            if (!Loaded.TryGetValue(model, out HfTokenizer? tok)) Loaded[model] = tok = HfTokenizer.Load(folder);
            return tok;
        }
    }

    internal static JsonElement Expected(string folder)
    {
        using JsonDocument doc = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(folder, "expected.json")));
        return doc.RootElement.Clone();
    }

    private static int[] Ids(JsonElement array)
    {
        var ids = new int[array.GetArrayLength()];
        int i = 0;
        foreach (JsonElement e in array.EnumerateArray()) ids[i++] = e.GetInt32();
        return ids;
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void EveryTextEncodesAndDecodesExactly(string model)
    {
        string folder = Folder(model);
        HfTokenizer tok = Load(model);
        int cases = 0;
        foreach (JsonElement c in Expected(folder).GetProperty("encode").EnumerateArray())
        {
            string text = c.GetProperty("text").GetString()!;
            int[] ids = Ids(c.GetProperty("ids"));
            Assert.True(ids.AsSpan().SequenceEqual(tok.Encode(text, addSpecialTokens: false)), $"{model} ids of {JsonSerializer.Serialize(text)}");
            Assert.True(Ids(c.GetProperty("ids_with_special_tokens")).AsSpan().SequenceEqual(tok.Encode(text, addSpecialTokens: true)),
                $"{model} ids with special tokens of {JsonSerializer.Serialize(text)}");
            Assert.Equal(c.GetProperty("decoded").GetString(), tok.Decode(ids));
            cases++;
        }
        Assert.Equal(22, cases);
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void RenderedChatsEncodeExactly(string model)
    {
        string folder = Folder(model);
        HfTokenizer tok = Load(model);
        foreach (JsonElement c in Expected(folder).GetProperty("chat").EnumerateArray())
        {
            string rendered = c.GetProperty("rendered").GetString()!;
            Assert.True(Ids(c.GetProperty("ids")).AsSpan().SequenceEqual(tok.Encode(rendered, addSpecialTokens: false)), $"{model} ids of {JsonSerializer.Serialize(rendered)}");
        }
    }

    [Fact]
    public void ConfigGivesSpecialTokensAndSkippingDropsThem()
    {
        HfTokenizer qwen = Load("qwen3");
        Assert.Null(qwen.BosToken);
        Assert.Equal("<|im_end|>", qwen.EosToken);
        Assert.Equal([151645], qwen.StopTokenIds);
        Assert.Equal(151644, qwen.TokenToId("<|im_start|>"));
        Assert.Equal("<think>", qwen.IdToToken(151667));
        Assert.True(qwen.IsSpecial(151644));
        Assert.False(qwen.IsSpecial(151667)); // <think> is added but not special
        int[] ids = qwen.Encode("<|im_start|>user\nhi<|im_end|><think>", addSpecialTokens: false);
        Assert.Equal("user\nhi<think>", qwen.Decode(ids, skipSpecialTokens: true));
        Assert.NotNull(qwen.ChatTemplate);

        HfTokenizer deepseek = HfTokenizer.Load(Path.Combine(Folder("deepseek_v3"), "tokenizer.json"));
        Assert.Equal("<｜begin▁of▁sentence｜>", deepseek.BosToken);
        Assert.Equal(0, deepseek.TokenToId(deepseek.BosToken!));

        HfTokenizer gptoss = Load("gptoss");
        Assert.Equal("<|return|>", gptoss.EosToken);
        Assert.Null(gptoss.ChatTemplate);
    }
}
