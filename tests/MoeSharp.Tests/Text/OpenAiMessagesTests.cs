using MoeSharp.Text;

namespace MoeSharp.Tests.Text;

public sealed class OpenAiMessagesTests
{
    [Fact]
    public void ReadsTheOpenAiShapes()
    {
        var m = OpenAiMessages.Parse("""
            {"model": "x", "messages": [
              {"role": "system", "content": "Be brief."},
              {"role": "user", "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}]},
              {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]},
              {"role": "tool", "tool_call_id": "c1", "content": "2"}
            ]}
            """, "m.json");
        Assert.Equal(["system", "user", "assistant", "tool"], m.Select(x => x.Role));
        Assert.Equal("Hi there", m[1].Content);
        Assert.Null(m[2].Content);
        Assert.Equal(new ChatToolCall("f", "{\"a\":1}", "c1"), m[2].ToolCalls![0]);
        Assert.Equal("c1", m[3].ToolCallId);
    }

    [Theory]
    [InlineData("""{"messages": 3}""", "m.json: expected a JSON array")]
    [InlineData("""[{"content": "x"}]""", "m.json: messages[0].role is missing")]
    [InlineData("""[{"role": "user", "content": 5}]""", "m.json: messages[0].content is Number")]
    [InlineData("""[{"role": "user", "content": [{"type": "image_url"}]}]""", "messages[0].content[0] is not a text part")]
    [InlineData("[{", "m.json: not valid JSON")]
    public void BadMessagesNameTheField(string json, string message) =>
        Assert.Contains(message, Assert.Throws<InvalidDataException>(() => OpenAiMessages.Parse(json, "m.json")).Message);
}
