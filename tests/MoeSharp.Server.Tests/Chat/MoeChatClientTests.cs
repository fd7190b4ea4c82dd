using Microsoft.Extensions.AI;
using MoeSharp.Models;
using MoeSharp.Server.Chat;
using MoeSharp.Server.Generation;
using ChatOptions = Microsoft.Extensions.AI.ChatOptions;
using TemplateMessage = MoeSharp.Text.ChatMessage;

namespace MoeSharp.Server.Tests.Chat;

/// <summary>
/// <see cref="MoeChatClient"/> on the tiny Qwen3-MoE. The reference for every reply is <see cref="Generator.Greedy"/>
/// on the template rendered by hand from the same messages, on a separate model instance, decoded whole (exact).
/// </summary>
[Collection(TinyServerCollection.Name)]
public sealed class MoeChatClientTests(TinyServer tiny)
{
    private static readonly ChatOptions Greedy = new() { Temperature = 0, MaxOutputTokens = 10 };

    private MoeChatClient NewClient() => new(tiny.NewModel(), TinyServer.Greedy);

    [Fact]
    public async Task AReplyIsTheGreedyContinuationWithItsUsage()
    {
        using var client = NewClient();
        var response = await client.GetResponseAsync([new ChatMessage(ChatRole.System, "Be brief."), new ChatMessage(ChatRole.User, "Hello?")], Greedy);
        TemplateMessage[] rendered = [new("system", "Be brief."), new("user", "Hello?")];
        int[] prompt = tiny.ChatPrompt(rendered);
        int[] ids = tiny.GreedyIds(prompt, 10);
        Assert.Equal(tiny.Text(ids), response.Text);
        Assert.Equal(prompt.Length, response.Usage!.InputTokenCount);
        Assert.Equal(ids.Length, response.Usage.OutputTokenCount);
        Assert.Equal(prompt.Length + ids.Length, response.Usage.TotalTokenCount);
        Assert.Equal(ids.Length == 10 && !tiny.Tokenizer.StopTokenIds.Contains(ids[^1]) ? ChatFinishReason.Length : ChatFinishReason.Stop, response.FinishReason);
        Assert.Equal(TinyServer.Id, response.ModelId);
    }

    [Fact]
    public async Task StreamedPiecesJoinToTheWholeReplyAndEndWithUsage()
    {
        using var client = NewClient();
        ChatMessage[] messages = [new(ChatRole.User, "Tell me a story.")];
        var whole = await client.GetResponseAsync(messages, Greedy);
        var updates = new List<ChatResponseUpdate>();
        await foreach (var u in client.GetStreamingResponseAsync(messages, Greedy)) updates.Add(u);
        Assert.Equal(whole.Text, string.Concat(updates.Select(u => u.Text)));
        Assert.True(updates.Count >= 2, $"expected several updates, got {updates.Count}");
        var usage = Assert.Single(updates[^1].Contents.OfType<UsageContent>());
        Assert.Equal(whole.Usage!.OutputTokenCount, usage.Details.OutputTokenCount);
        Assert.Equal(whole.FinishReason, updates[^1].FinishReason);
        Assert.Single(updates.Select(u => u.ResponseId).Distinct());
    }

    [Fact]
    public async Task AStopSequenceCutsTheReplyAndInstructionsBecomeTheSystemMessage()
    {
        using var client = NewClient();
        string full = tiny.GreedyChat([new("system", "Answer in French."), new("user", "Hi")], 16);
        Assert.True(full.Length >= 6, $"reply '{full}' too short to cut");
        string stop = full.Substring(full.Length / 2, 3);
        var options = new ChatOptions { Temperature = 0, MaxOutputTokens = 16, StopSequences = [stop], Instructions = "Answer in French." };
        var response = await client.GetResponseAsync([new ChatMessage(ChatRole.User, "Hi")], options);
        Assert.Equal(full[..full.IndexOf(stop, StringComparison.Ordinal)], response.Text);
        Assert.Equal(ChatFinishReason.Stop, response.FinishReason);
    }

    [Fact]
    public async Task InAChatClientBuilderPipelineWithItsServices()
    {
        using var inner = NewClient();
        int calls = 0;
        using IChatClient pipeline = new ChatClientBuilder(inner)
            .ConfigureOptions(o => o.MaxOutputTokens ??= 6)
            .Use(async (messages, options, next, ct) =>
            {
                Interlocked.Increment(ref calls);
                await next(messages, options, ct);
            })
            .Build();
        var response = await pipeline.GetResponseAsync("Hello?", new ChatOptions { Temperature = 0 });
        Assert.Equal(tiny.GreedyChat([new("user", "Hello?")], 6), response.Text);
        Assert.Equal(1, calls);

        Assert.Same(inner.Model.Model, pipeline.GetService<MoeTransformer>());
        Assert.Equal(TinyServer.Id, pipeline.GetService<ChatClientMetadata>()!.DefaultModelId);
        var load = pipeline.GetService<ExpertLoad>()!;
        // Every generated token took top-k = 2 of the 8 experts in each of the 3 MoE blocks.
        Assert.Equal(3, load.Blocks.Count);
        Assert.Equal(response.Usage!.OutputTokenCount, load.Tokens);
        for (int m = 0; m < 3; m++)
            Assert.Equal(2 * load.Tokens, Enumerable.Range(0, load.Experts).Sum(e => load.Count(m, e)));
    }

    [Fact]
    public void OptionsMapToSampling()
    {
        using var client = NewClient();
        var s = client.ToSampling(new ChatOptions { Temperature = 0.5f, TopP = 0.9f, Seed = -1, AdditionalProperties = new() { ["top_k"] = 40 } });
        Assert.Equal(new SamplingOptions { Temperature = 0.5f, TopP = 0.9f, TopK = 40, Seed = ulong.MaxValue, Threads = 1 }, s);
        Assert.Equal(7, client.ToSampling(new ChatOptions { TopK = 7, AdditionalProperties = new() { ["top_k"] = 40 } }).TopK);
        // Without a seed, each request gets a fresh one (two equal draws of 64 bits: chance 2⁻⁶⁴).
        SamplingOptions unset = client.ToSampling(null), again = client.ToSampling(new ChatOptions());
        Assert.Equal(TinyServer.Greedy with { Seed = unset.Seed }, unset);
        Assert.NotEqual(unset.Seed, again.Seed);
        Assert.Throws<ArgumentException>(() => client.ToSampling(new ChatOptions { AdditionalProperties = new() { ["top_k"] = "many" } }));
    }

    [Fact]
    public async Task AMaxOutputPastTheContextIsRefused()
    {
        using var client = NewClient();
        var e = await Assert.ThrowsAsync<ContextLengthExceededException>(() => client.GetResponseAsync("Hi", new ChatOptions { MaxOutputTokens = 600 }));
        Assert.Equal(512, e.Context);
    }
}
