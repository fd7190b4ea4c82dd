using System.Runtime.CompilerServices;
using MoeSharp.Models;
using MoeSharp.Server.Engine;
using MoeSharp.Server.Generation;

namespace MoeSharp.Server.Tests.Generation;

/// <summary>
/// <see cref="Completion"/> over an engine that plays back chosen ids, with Qwen3's real tokenizer: the expected
/// texts are the tokenizer's own whole decodes (exact), so only the streaming, stops and counts are under test.
/// </summary>
[Collection(TinyServerCollection.Name)]
public sealed class CompletionTests(TinyServer tiny)
{
    /// <summary>Yields <paramref name="ids"/> (at most maxTokens), each routed to experts {0,1}, {2,3}, {4,5} of the three MoE blocks.</summary>
    private sealed class Playback(params int[] ids) : IGenerationEngine
    {
        public async IAsyncEnumerable<GeneratedToken> Generate(int[] prompt, int maxTokens, SamplingOptions sampling, [EnumeratorCancellation] CancellationToken ct)
        {
            foreach (int id in ids.Take(maxTokens))
            {
                await Task.Yield();
                yield return new GeneratedToken(id, [[0, 1], [2, 3], [4, 5]]);
            }
        }

        public EngineStats Stats => default;

        public ValueTask DisposeAsync() => default;
    }

    private static async Task<List<string>> Read(Completion c)
    {
        var pieces = new List<string>();
        await foreach (string p in c.Text()) pieces.Add(p);
        return pieces;
    }

    [Fact]
    public async Task CharactersSplitAcrossTokensComeOutWhole()
    {
        const string text = "Grüße 👩‍👩‍👧 und 𒀀 🦀, 日本語 ok";
        int[] ids = tiny.Tokenizer.Encode(text, addSpecialTokens: false);
        // The test can fail: some token alone ends inside a character.
        Assert.Contains(ids, id => tiny.Tokenizer.Decode([id]).Contains('\uFFFD', StringComparison.Ordinal));
        var model = tiny.NewModel();
        var c = model.Complete(new Playback(ids), [1, 2, 3], ids.Length, TinyServer.Greedy);
        var pieces = await Read(c);
        Assert.All(pieces, p => Assert.DoesNotContain('\uFFFD', p));
        Assert.Equal(text, string.Concat(pieces));
        Assert.Equal((ChatStop.Length, ids.Length, 3), (c.Stop, c.CompletionTokens, c.PromptTokens));
        Assert.Equal(ids.Length, model.Load.Tokens);
        Assert.Equal([ids.Length, ids.Length, 0], new[] { model.Load.Count(0, 0), model.Load.Count(2, 5), model.Load.Count(1, 0) });
    }

    [Fact]
    public async Task AnEndOfTurnIdEndsTheTextAndIsCountedButNotShown()
    {
        int[] before = tiny.Tokenizer.Encode("All done.", addSpecialTokens: false);
        int endOfTurn = tiny.Tokenizer.StopTokenIds[0];
        int[] ids = [.. before, endOfTurn, .. tiny.Tokenizer.Encode(" never shown", addSpecialTokens: false)];
        var c = tiny.NewModel().Complete(new Playback(ids), [1], maxTokens: 50, TinyServer.Greedy);
        Assert.Equal("All done.", string.Concat(await Read(c)));
        Assert.Equal((ChatStop.EndOfTurn, before.Length + 1), (c.Stop, c.CompletionTokens));
    }

    [Fact]
    public async Task AStopSequenceInsideATokenCutsThereAndStopsTheEngine()
    {
        int[] ids = tiny.Tokenizer.Encode("Hello world, and more words after it", addSpecialTokens: false);
        var c = tiny.NewModel().Complete(new Playback(ids), [1], maxTokens: 50, TinyServer.Greedy, stop: ["o w"]);
        Assert.Equal("Hell", string.Concat(await Read(c)));
        Assert.Equal(ChatStop.StopString, c.Stop);
        // The engine is asked for nothing past the token that completed the stop.
        int through = Enumerable.Range(1, ids.Length).First(n => tiny.Tokenizer.Decode(ids[..n]).Contains("o w", StringComparison.Ordinal));
        Assert.Equal(through, c.CompletionTokens);
    }

    [Fact]
    public void PromptsThatLeaveNoRoomAreRefusedBeforeTheEngine()
    {
        var model = tiny.NewModel();
        var full = Assert.Throws<ContextLengthExceededException>(() => model.Complete(new Playback(), new int[512], null, TinyServer.Greedy));
        Assert.Equal((512, 512, (int?)null), (full.Context, full.PromptTokens, full.Requested));
        var over = Assert.Throws<ContextLengthExceededException>(() => model.Complete(new Playback(), new int[500], 13, TinyServer.Greedy));
        Assert.Contains("at most 12", over.Message);
        Assert.Equal(12, model.Complete(new Playback(), new int[500], null, TinyServer.Greedy).MaxTokens);
    }
}
