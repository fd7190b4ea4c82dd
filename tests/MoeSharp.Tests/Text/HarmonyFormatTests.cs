using MoeSharp.Text;

namespace MoeSharp.Tests.Text;

/// <summary>GPT-OSS's harmony format, against strings written by hand from OpenAI's published description of it.</summary>
public sealed class HarmonyFormatTests
{
    private const string System =
        "<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.\nKnowledge cutoff: 2024-06\nCurrent date: 2025-06-28\n\n" +
        "Reasoning: high\n\n# Valid channels: analysis, commentary, final. Channel must be included for every message.";

    private static readonly HarmonyOptions Options = new() { CurrentDate = "2025-06-28", ReasoningEffort = "high" };

    [Fact]
    public void ChatDropsEarlierReasoningAndOpensTheAssistantTurn()
    {
        ChatMessage[] chat =
        [
            new("system", "Be brief."),
            new("user", "What is 2 + 2?"),
            new("assistant", "4.") { ReasoningContent = "Simple arithmetic." },
            new("user", "And 9 / 2?"),
        ];
        string expected = System + "<|end|>" +
            "<|start|>developer<|message|># Instructions\n\nBe brief.<|end|>" +
            "<|start|>user<|message|>What is 2 + 2?<|end|>" +
            "<|start|>assistant<|channel|>final<|message|>4.<|end|>" +
            "<|start|>user<|message|>And 9 / 2?<|end|>" +
            "<|start|>assistant";
        Assert.Equal(expected, HarmonyFormat.Render(chat, addGenerationPrompt: true, Options));
    }

    [Fact]
    public void ToolCallKeepsItsReasoningAndTheToolAnswersOnCommentary()
    {
        ChatMessage[] chat =
        [
            new("user", "Weather in SF?"),
            new("assistant", null) { ReasoningContent = "Need get_weather.", ToolCalls = [new ChatToolCall("get_weather", "{\"location\":\"San Francisco\"}", "c1")] },
            new("tool", "{\"sunny\": true}") { ToolCallId = "c1" },
        ];
        string expected = System + "\nCalls to these tools must go to the commentary channel: 'functions'.<|end|>" +
            "<|start|>user<|message|>Weather in SF?<|end|>" +
            "<|start|>assistant<|channel|>analysis<|message|>Need get_weather.<|end|>" +
            "<|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{\"location\":\"San Francisco\"}<|call|>" +
            "<|start|>functions.get_weather to=assistant<|channel|>commentary<|message|>{\"sunny\": true}<|end|>" +
            "<|start|>assistant";
        Assert.Equal(expected, HarmonyFormat.Render(chat, addGenerationPrompt: true, Options));
    }

    [Fact]
    public void GptOssTokenizerUsesHarmonyAndEncodesItsMarkersAsSingleTokens()
    {
        HfTokenizer tok = HfTokenizerSharedTests.Load("gptoss");
        string prompt = tok.ApplyChatTemplate([new ChatMessage("user", "Hi")], addGenerationPrompt: true, harmony: Options);
        Assert.EndsWith("<|start|>user<|message|>Hi<|end|><|start|>assistant", prompt);
        int[] ids = tok.Encode(prompt, addSpecialTokens: false);
        // <|start|> 200006, <|message|> 200008, <|end|> 200007 (the published harmony token ids)
        Assert.Equal([200006, 1428, 200008, 12194, 200007, 200006, 173781], ids[^7..]);
        Assert.Equal(prompt, tok.Decode(ids));
    }
}
