using MoeSharp.IO;
using MoeSharp.Models;
using MoeSharp.Tests.IO;
using MoeSharp.Text;

namespace MoeSharp.Tests.Models;

/// <summary>
/// <see cref="ChatSession"/> on a tiny random Qwen3-MoE with Qwen3's real tokenizer and template. The reference for
/// each reply is <see cref="Generator.Greedy"/> on the template rendered by hand from the same messages, decoded
/// whole; stops are checked by cutting that reference where the stop falls (exact).
/// </summary>
public sealed class ChatSessionTests : TempFolderTest
{
    private (ChatSession Session, MoeTransformer Model, HfTokenizer Tokenizer) Open()
    {
        var tok = TinyChatModels.Write("qwen3_moe", Folder);
        var model = ModelStore.Open(Folder);
        return (new ChatSession(model, tok), model, tok);
    }

    private static readonly ChatOptions Greedy = new() { MaxTokens = 12, Sampling = new SamplingOptions { Temperature = 0, Threads = 1 }, StopTokenIds = [] };

    private static int[] Reference(MoeTransformer model, HfTokenizer tok, IReadOnlyList<ChatMessage> messages, int n) =>
        Generator.Greedy(model, tok.Encode(tok.ApplyChatTemplate(messages, addGenerationPrompt: true), addSpecialTokens: false), n, threads: 1);

    [Fact]
    public void RepliesAreTheGreedyContinuationOfTheRenderedHistory()
    {
        var (chat, model, tok) = Open();
        chat.SystemPrompt = "You are terse.";
        string first = string.Concat(chat.Reply("Hello?", Greedy));
        int[] want = Reference(model, tok, [new("system", "You are terse."), new("user", "Hello?")], 12);
        Assert.Equal(want, chat.LastIds);
        Assert.Equal(tok.Decode(want, skipSpecialTokens: true), first);

        string second = string.Concat(chat.Reply("And then?", Greedy));
        int[] want2 = Reference(model, tok, [new("system", "You are terse."), new("user", "Hello?"), new("assistant", first), new("user", "And then?")], 12);
        Assert.Equal(want2, chat.LastIds);
        Assert.Equal(tok.Decode(want2, skipSpecialTokens: true), second);
        Assert.Equal(4, chat.History.Count);

        chat.Reset();
        Assert.Empty(chat.History);
        string again = string.Concat(chat.Reply("Hello?", Greedy));
        Assert.Equal(first, again);
        Assert.Equal(ChatStop.Length, chat.LastStop);
    }

    [Fact]
    public void AStopIdEndsTheReplyBeforeIt()
    {
        var (chat, model, tok) = Open();
        int[] free = Reference(model, tok, [new("user", "Hi")], 12);
        string text = string.Concat(chat.Reply("Hi", Greedy with { StopTokenIds = [free[3]] }));
        int first = Array.IndexOf(free, free[3]); // the id may come earlier too
        Assert.Equal(free[..(first + 1)], chat.LastIds);
        Assert.Equal(tok.Decode(free[..first], skipSpecialTokens: true), text);
        Assert.Equal(ChatStop.EndOfTurn, chat.LastStop);
        Assert.Equal(text, chat.History[^1].Content);
    }

    [Fact]
    public void AStopStringCutsTheReplyAndIsNeverShown()
    {
        var (chat, model, tok) = Open();
        string full = tok.Decode(Reference(model, tok, [new("user", "Hi")], 12), skipSpecialTokens: true);
        Assert.True(full.Length >= 6, $"reply '{full}' too short to cut");
        string stop = full.Substring(full.Length / 2, 3);
        var pieces = chat.Reply("Hi", Greedy with { StopStrings = [stop] }).ToList();
        Assert.Equal(full[..full.IndexOf(stop, StringComparison.Ordinal)], string.Concat(pieces));
        Assert.Equal(ChatStop.StopString, chat.LastStop);
    }

    [Fact]
    public void CancellingKeepsThePartialReplyInTheHistory()
    {
        var (chat, _, _) = Open();
        using var cancel = new CancellationTokenSource();
        var shown = new List<string>();
        foreach (string piece in chat.Reply("Hi", Greedy, cancel.Token))
        {
            shown.Add(piece);
            cancel.Cancel();
        }
        Assert.Equal(ChatStop.Cancelled, chat.LastStop);
        Assert.True(chat.LastIds.Count < 12, $"{chat.LastIds.Count} tokens after cancelling");
        Assert.Equal(string.Concat(shown), chat.History[^1].Content);
        Assert.Equal("Hi", chat.History[^2].Content);
    }
}
