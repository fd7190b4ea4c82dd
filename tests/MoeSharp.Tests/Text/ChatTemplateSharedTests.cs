using System.Text.Json;
using MoeSharp.Text;

namespace MoeSharp.Tests.Text;

/// <summary>
/// The real Qwen3 and DeepSeek-V3 chat templates against chats rendered by Hugging Face's own Jinja implementation
/// (@huggingface/jinja; see ../shared/tokenizers/README.md). Byte-for-byte equality, no tolerance.
/// </summary>
public sealed class ChatTemplateSharedTests
{
    [Theory]
    [InlineData("qwen3", 3)]
    [InlineData("deepseek_v3", 3)]
    public void EveryExpectedChatRendersByteForByte(string model, int expectedCases)
    {
        string folder = HfTokenizerSharedTests.Folder(model);
        using JsonDocument config = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(folder, "tokenizer_config.json")));
        ChatTemplate template = ChatTemplate.Parse(config.RootElement.GetProperty("chat_template").GetString()!);
        string? bos = config.RootElement.TryGetProperty("bos_token", out JsonElement b) && b.ValueKind == JsonValueKind.Object ? b.GetProperty("content").GetString() : null;
        int cases = 0;
        foreach (JsonElement c in HfTokenizerSharedTests.Expected(folder).GetProperty("chat").EnumerateArray())
        {
            var variables = new Dictionary<string, object?>
            {
                ["messages"] = ChatTemplate.FromJson(c.GetProperty("messages")),
                ["add_generation_prompt"] = c.GetProperty("add_generation_prompt").GetBoolean(),
            };
            if (bos is not null) variables["bos_token"] = bos;
            Assert.Equal(c.GetProperty("rendered").GetString(), template.Render(variables));
            cases++;
        }
        Assert.Equal(expectedCases, cases);
    }

    [Fact]
    public void ChatMessagesThroughTheTokenizerRenderAsTheExpectedJson()
    {
        string folder = HfTokenizerSharedTests.Folder("qwen3");
        HfTokenizer tok = HfTokenizerSharedTests.Load("qwen3");
        JsonElement c = HfTokenizerSharedTests.Expected(folder).GetProperty("chat")[1];
        var messages = new List<ChatMessage>();
        foreach (JsonElement m in c.GetProperty("messages").EnumerateArray())
            messages.Add(new ChatMessage(m.GetProperty("role").GetString()!, m.GetProperty("content").GetString()));
        Assert.Equal(c.GetProperty("rendered").GetString(), tok.ApplyChatTemplate(messages, addGenerationPrompt: true));
    }
}
