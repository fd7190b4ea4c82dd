using System.ClientModel;
using System.ClientModel.Primitives;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.AI;
using OpenAI;
using OpenAI.Chat;
using ChatFinishReason = OpenAI.Chat.ChatFinishReason;
using TemplateMessage = MoeSharp.Text.ChatMessage;

namespace MoeSharp.Server.Tests.Http;

/// <summary>
/// The server through the official <c>OpenAI</c> .NET client, <c>Microsoft.Extensions.AI.OpenAI</c> and plain HTTP.
/// Every text is checked exactly against <see cref="Models.Generator.Greedy"/> on the rendered prompt, decoded whole.
/// </summary>
[Collection(TinyServerCollection.Name)]
public sealed class OpenAiClientTests(TinyServer tiny)
{
    internal static ChatClient Client(Uri address, string key = "unused") =>
        new(TinyServer.Id, new ApiKeyCredential(key), new OpenAIClientOptions { Endpoint = new Uri(address, "v1"), RetryPolicy = new ClientRetryPolicy(0) });

    private static ChatCompletionOptions Greedy(int max) => new() { Temperature = 0, MaxOutputTokenCount = max };

    [Fact]
    public async Task AChatCompletionIsTheGreedyReplyWithItsUsage()
    {
        ChatCompletion c = await Client(tiny.Address).CompleteChatAsync([new SystemChatMessage("Be brief."), new UserChatMessage("Hello?")], Greedy(10));
        int[] prompt = tiny.ChatPrompt([new TemplateMessage("system", "Be brief."), new TemplateMessage("user", "Hello?")]);
        int[] ids = tiny.GreedyIds(prompt, 10);
        Assert.Equal(tiny.Text(ids), c.Content[0].Text);
        Assert.Equal(prompt.Length, c.Usage.InputTokenCount);
        Assert.Equal(ids.Length, c.Usage.OutputTokenCount);
        Assert.Equal(prompt.Length + ids.Length, c.Usage.TotalTokenCount);
        Assert.Equal(ChatMessageRole.Assistant, c.Role);
        Assert.Equal(TinyServer.Id, c.Model);
    }

    [Fact]
    public async Task StreamedChunksArriveInOrderAndJoinToTheWholeReply()
    {
        var client = Client(tiny.Address);
        UserChatMessage[] messages = [new("Write a long story about a cat.")];
        ChatCompletion whole = await client.CompleteChatAsync(messages, Greedy(24));
        var pieces = new List<string>();
        ChatFinishReason? finish = null;
        ChatTokenUsage? usage = null;
        await foreach (StreamingChatCompletionUpdate u in client.CompleteChatStreamingAsync(messages, Greedy(24)))
        {
            pieces.AddRange(u.ContentUpdate.Select(p => p.Text));
            finish ??= u.FinishReason;
            usage ??= u.Usage;
        }
        Assert.Equal(whole.Content[0].Text, string.Concat(pieces));
        Assert.Equal(tiny.GreedyChat([new("user", "Write a long story about a cat.")], 24), string.Concat(pieces));
        Assert.True(pieces.Count >= 2, $"expected several chunks, got {pieces.Count}");
        Assert.Equal(whole.FinishReason, finish);
        Assert.Equal(whole.Usage.OutputTokenCount, usage?.OutputTokenCount);
    }

    [Fact]
    public async Task AStopSequenceEndsTheReplyBeforeIt()
    {
        string full = tiny.GreedyChat([new("user", "Hi")], 16);
        Assert.True(full.Length >= 6, $"reply '{full}' too short to cut");
        string stop = full.Substring(full.Length / 2, 3);
        var options = Greedy(16);
        options.StopSequences.Add(stop);
        var client = Client(tiny.Address);
        ChatCompletion c = await client.CompleteChatAsync([new UserChatMessage("Hi")], options);
        string want = full[..full.IndexOf(stop, StringComparison.Ordinal)];
        Assert.Equal(want, c.Content.Count == 0 ? "" : c.Content[0].Text);
        Assert.Equal(ChatFinishReason.Stop, c.FinishReason);
        var streamed = new List<string>();
        await foreach (var u in client.CompleteChatStreamingAsync([new UserChatMessage("Hi")], options)) streamed.AddRange(u.ContentUpdate.Select(p => p.Text));
        Assert.Equal(want, string.Concat(streamed));
    }

    [Fact]
    public async Task MicrosoftExtensionsAiOpenAiTalksToTheServer()
    {
        using IChatClient client = Client(tiny.Address).AsIChatClient();
        var response = await client.GetResponseAsync("Hello?", new Microsoft.Extensions.AI.ChatOptions { Temperature = 0, MaxOutputTokens = 8 });
        Assert.Equal(tiny.GreedyChat([new("user", "Hello?")], 8), response.Text);
        Assert.Equal(tiny.GreedyIds(tiny.ChatPrompt([new("user", "Hello?")]), 8).Length, response.Usage!.OutputTokenCount);
        var streamed = new List<string>();
        await foreach (var u in client.GetStreamingResponseAsync("Hello?", new Microsoft.Extensions.AI.ChatOptions { Temperature = 0, MaxOutputTokens = 8 })) streamed.Add(u.Text);
        Assert.Equal(response.Text, string.Concat(streamed));
    }

    [Fact]
    public async Task ModelsListsTheServedModel()
    {
        var models = await new OpenAIClient(new ApiKeyCredential("unused"), new OpenAIClientOptions { Endpoint = new Uri(tiny.Address, "v1") })
            .GetOpenAIModelClient().GetModelsAsync();
        Assert.Equal([TinyServer.Id], models.Value.Select(m => m.Id));
        using var http = new HttpClient { BaseAddress = tiny.Address };
        using var doc = JsonDocument.Parse(await http.GetStringAsync("/v1/models"));
        Assert.Equal("list", doc.RootElement.GetProperty("object").GetString());
        Assert.Equal(512, doc.RootElement.GetProperty("data")[0].GetProperty("context_length").GetInt32());
        Assert.Equal("ok\n", await http.GetStringAsync("/health"));
    }

    [Fact]
    public async Task TextCompletionsTakeTextOrTokenIds()
    {
        using var http = new HttpClient { BaseAddress = tiny.Address };
        const string prompt = "Once upon a time";
        int[] promptIds = tiny.Tokenizer.Encode(prompt, addSpecialTokens: true);
        int[] ids = tiny.GreedyIds(promptIds, 12);
        foreach (object p in new object[] { prompt, promptIds })
        {
            var r = await http.PostAsJsonAsync("/v1/completions", new { model = TinyServer.Id, prompt = p, max_tokens = 12, temperature = 0 });
            Assert.Equal(200, (int)r.StatusCode);
            using var doc = JsonDocument.Parse(await r.Content.ReadAsStringAsync());
            var choice = doc.RootElement.GetProperty("choices")[0];
            Assert.Equal(tiny.Text(ids), choice.GetProperty("text").GetString());
            Assert.Equal("text_completion", doc.RootElement.GetProperty("object").GetString());
            Assert.Equal(promptIds.Length, doc.RootElement.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
            Assert.Equal(ids.Length, doc.RootElement.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        }

        // As `curl -d` sends it: no JSON content type.
        var curl = await http.PostAsync("/v1/completions", new StringContent($$"""{"prompt": "{{prompt}}", "max_tokens": 12, "temperature": 0}""", System.Text.Encoding.UTF8, "application/x-www-form-urlencoded"));
        using (var doc = JsonDocument.Parse(await curl.Content.ReadAsStringAsync()))
            Assert.Equal(tiny.Text(ids), doc.RootElement.GetProperty("choices")[0].GetProperty("text").GetString());

        // Streamed: "data: " events in order, the last one "[DONE]".
        var stream = await http.PostAsJsonAsync("/v1/completions", new { prompt, max_tokens = 12, temperature = 0, stream = true });
        Assert.Equal("text/event-stream", stream.Content.Headers.ContentType!.MediaType);
        string[] events = (await stream.Content.ReadAsStringAsync()).Split("\n\n", StringSplitOptions.RemoveEmptyEntries);
        Assert.All(events, e => Assert.StartsWith("data: ", e));
        Assert.Equal("data: [DONE]", events[^1]);
        string text = string.Concat(events[..^1].Select(e => JsonDocument.Parse(e["data: ".Length..]).RootElement.GetProperty("choices")[0].GetProperty("text").GetString()));
        Assert.Equal(tiny.Text(ids), text);
    }

    [Theory]
    [InlineData(2)]
    [InlineData(8)]
    public async Task ConcurrentGreedyRequestsEqualTheirSequentialOutputs(int n)
    {
        var client = Client(tiny.Address);
        string[] questions = Enumerable.Range(0, n).Select(i => $"Question {i}: what is {i} plus {i * 3}?").ToArray();
        string[] sequential = new string[n];
        for (int i = 0; i < n; i++) sequential[i] = (await client.CompleteChatAsync([new UserChatMessage(questions[i])], Greedy(6))).Value.Content[0].Text;
        var concurrent = await Task.WhenAll(questions.Select(async q => (await client.CompleteChatAsync([new UserChatMessage(q)], Greedy(6))).Value.Content[0].Text));
        Assert.Equal(sequential, concurrent);
        for (int i = 0; i < n; i++) Assert.Equal(tiny.GreedyChat([new("user", questions[i])], 6), sequential[i]);
    }
}
