using System.Diagnostics;
using System.Text.Json.Nodes;
using MoeSharp.IO;
using MoeSharp.Models;
using MoeSharp.Tests.IO;
using MoeSharp.Tests.Models;
using MoeSharp.Text;

namespace MoeSharp.Tests.Cli;

/// <summary>
/// `moe chat`, `generate --chat`, `tokenize` and routing on a tiny random model of each architecture with a real
/// tokenizer (<see cref="TinyChatModels"/>). Replies are checked against <see cref="ChatSession"/> in this process
/// (greedy, exact text), ids against <see cref="HfTokenizer"/>.
/// </summary>
public sealed class ChatCliTests : TempFolderTest
{
    private static readonly ChatOptions Greedy = new() { MaxTokens = 6, Sampling = new SamplingOptions { Temperature = 0, Threads = 1 } };

    private static async Task<MoeCli.Result> Chat(string folder, string stdin, params string[] args)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "moe.dll"));
        foreach (string a in (string[])["chat", "--model", folder, "--temperature", "0", "--max-tokens", "6", "--threads", "1", .. args]) start.ArgumentList.Add(a);
        using var p = Process.Start(start)!;
        await p.StandardInput.WriteAsync(stdin);
        p.StandardInput.Close();
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        await p.WaitForExitAsync(timeout.Token);
        return new MoeCli.Result(p.ExitCode, await stdout, await stderr);
    }

    /// <summary>
    /// A scripted conversation: two turns (the second rendered with the first in its history), /system, /reset;
    /// each printed reply equals the library's, and --show-prompt shows what the template was given.
    /// </summary>
    [Theory]
    [MemberData(nameof(TinyChatModels.Architectures), MemberType = typeof(TinyChatModels))]
    public async Task ChatKeepsHistoryAndObeysResetAndSystem(string arch)
    {
        var tok = TinyChatModels.Write(arch, Folder);
        var r = await Chat(Folder, "Hello there\nWhat next?\n/system Be kind.\n/reset\nHello there\n", "--show-prompt");
        Assert.True(r.ExitCode == 0, r.Stderr);

        var session = new ChatSession(ModelStore.Open(Folder), tok);
        var expected = new System.Text.StringBuilder();
        void Turn(string user)
        {
            expected.Append(session.RenderPrompt(user, Greedy)).Append('\n');
            expected.Append(string.Concat(session.Reply(user, Greedy))).Append('\n');
        }
        Turn("Hello there");
        Turn("What next?");
        session.SystemPrompt = "Be kind.";
        session.Reset();
        Turn("Hello there");
        Assert.Equal(expected.ToString().ReplaceLineEndings(), r.Stdout.ReplaceLineEndings());

        string[] prompts = [session.RenderPrompt("x")];
        Assert.Contains("Be kind.", prompts[0]);
        Assert.Contains("(conversation cleared)", r.Stderr);
    }

    [Theory]
    [MemberData(nameof(TinyChatModels.Architectures), MemberType = typeof(TinyChatModels))]
    public async Task GenerateChatAnswersOneTurnAndShowsRouting(string arch)
    {
        var tok = TinyChatModels.Write(arch, Folder);
        var r = await MoeCli.Run("generate", "--model", Folder, "--chat", "Why is the sky blue?", "--temperature", "0", "--max-tokens", "6", "--threads", "1");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var model = ModelStore.Open(Folder);
        var session = new ChatSession(model, tok);
        int prompt = tok.Encode(session.RenderPrompt("Why is the sky blue?"), addSpecialTokens: false).Length;
        Assert.Equal(string.Concat(session.Reply("Why is the sky blue?", Greedy)) + "\n", r.Stdout.ReplaceLineEndings("\n"));

        var routing = await MoeCli.Run("generate", "--model", Folder, "--chat", "Why is the sky blue?", "--temperature", "0", "--max-tokens", "6", "--threads", "1", "--show-routing");
        Assert.True(routing.ExitCode == 0, routing.Stderr);
        var lines = routing.Stdout.Trim().Split('\n');
        var c = model.Config;
        int sharedExperts = c.ResolvedMoe!.SharedExperts;
        int shared = sharedExperts > 0 ? 1 : 0;
        Assert.Equal(shared + prompt + session.LastIds.Count, lines.Length);
        // DeepSeek's first_k_dense_replace makes its leading blocks dense: they have no routing to show.
        int[] moeBlocks = [.. Enumerable.Range(0, c.Layers).Where(c.IsMoeLayer)];
        Assert.Equal(arch is "deepseek_v2" or "deepseek_v3" ? [1, 2] : Enumerable.Range(0, c.Layers), moeBlocks);
        string sharedSet = string.Join(",", Enumerable.Range(0, sharedExperts).Select(s => $"s{s}"));
        if (shared == 1) Assert.Equal("shared (every token): " + string.Join(" ", moeBlocks.Select(b => $"L{b}:[{sharedSet}]")), lines[0]);
        else Assert.DoesNotContain("shared", lines[0], StringComparison.Ordinal);
        // The first generated token's experts, as the library routed them, in block order.
        string first = lines[shared + prompt];
        Assert.Equal(moeBlocks.Length, session.LastExperts[0].Count);
        for (int l = 0; l < moeBlocks.Length; l++) Assert.Contains($"L{moeBlocks[l]}:[{string.Join(",", session.LastExperts[0][l])}]", first);
        if (moeBlocks[0] > 0) Assert.DoesNotContain("L0:", first, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TokenizeTextJsonNoSpecialAndChat()
    {
        // A tokenizer folder without weights; its post-processor is made to add BOS so that --no-special shows.
        TinyChatModels.WriteTokenizer("olmoe", Folder);
        string tokenizerPath = Path.Combine(Folder, "tokenizer.json");
        var spec = JsonNode.Parse(File.ReadAllText(tokenizerPath))!;
        spec["post_processor"] = JsonNode.Parse("""
            {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<｜begin▁of▁sentence｜>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
             "pair": [], "special_tokens": {"<｜begin▁of▁sentence｜>": {"id": "<｜begin▁of▁sentence｜>", "ids": [0], "tokens": ["<｜begin▁of▁sentence｜>"]}}}
            """);
        File.WriteAllText(tokenizerPath, spec.ToJsonString());
        var tok = HfTokenizer.Load(Folder);
        const string text = "Hello, 世界!";
        var plain = await MoeCli.Run("tokenize", "--model", Folder, text);
        Assert.True(plain.ExitCode == 0, plain.Stderr);
        Assert.Equal(string.Join(",", tok.Encode(text)), plain.Stdout.Trim());
        var json = await MoeCli.Run("tokenize", "--model", Folder, text, "--json", "--no-special");
        Assert.Equal("[" + string.Join(",", tok.Encode(text, addSpecialTokens: false)) + "]", json.Stdout.Trim());
        Assert.NotEqual(tok.Encode(text).Length, tok.Encode(text, addSpecialTokens: false).Length);

        string messages = Path.Combine(Folder, "messages.json");
        File.WriteAllText(messages, """[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]""");
        var chat = await MoeCli.Run("tokenize", "--model", Folder, "--chat", messages, "--add-generation-prompt");
        Assert.True(chat.ExitCode == 0, chat.Stderr);
        string rendered = tok.ApplyChatTemplate([new("system", "Be brief."), new("user", "Hi")], addGenerationPrompt: true);
        Assert.Equal(rendered + "\n" + string.Join(",", tok.Encode(rendered, addSpecialTokens: false)) + "\n", chat.Stdout.ReplaceLineEndings("\n"));
        Assert.EndsWith("<｜Assistant｜>", rendered);
    }

    /// <summary>
    /// A request object's <c>tools</c> reach the chat template: Qwen3's template lists each tool as JSON inside
    /// &lt;tools&gt; in the system turn, which the same messages without tools do not have.
    /// </summary>
    [Fact]
    public async Task TokenizeChatPassesARequestsToolsToTheTemplate()
    {
        string folder = TestPaths.SharedTokenizer("qwen3");
        string messages = Path.Combine(Folder, "request.json");
        Directory.CreateDirectory(Folder);
        File.WriteAllText(messages, """
            {"messages": [{"role": "user", "content": "Weather in Paris?"}],
             "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Current weather",
                        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]}
            """);
        var withTools = await MoeCli.Run("tokenize", "--model", folder, "--chat", messages, "--add-generation-prompt");
        Assert.True(withTools.ExitCode == 0, withTools.Stderr);
        string rendered = withTools.Stdout.ReplaceLineEndings("\n");
        Assert.Contains("<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"get_weather\"", rendered);
        Assert.StartsWith("<|im_start|>system\n", rendered);

        File.WriteAllText(messages, """{"messages": [{"role": "user", "content": "Weather in Paris?"}]}""");
        var without = await MoeCli.Run("tokenize", "--model", folder, "--chat", messages, "--add-generation-prompt");
        Assert.True(without.ExitCode == 0, without.Stderr);
        Assert.DoesNotContain("<tools>", without.Stdout);
        Assert.StartsWith("<|im_start|>user\n", without.Stdout);
    }

    [Fact]
    public async Task InspectShowsAPromptsRoutingOnAHuggingFaceFolder()
    {
        string folder = ArchitectureGoldenTests.Folder("qwen2_moe");
        var r = await MoeCli.Run("inspect", folder, "--prompt-ids", "1,17,42", "--threads", "1");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var lines = r.Stdout.Trim().Split('\n');
        Assert.Contains("8 routed experts, top-4; 1 shared expert of width 40 (sigmoid-gated)", lines[0]);
        Assert.Equal("shared (every token): L0:[s0] L1:[s0] L2:[s0]", lines[1]);
        var trace = RoutingTrace.Of(ModelStore.Open(folder, 64), [1, 17, 42], 1);
        Assert.Equal(5, lines.Length);
        Assert.Equal($"42       L0:[{string.Join(",", trace[0].Experts[2])}]  L1:[{string.Join(",", trace[1].Experts[2])}]  L2:[{string.Join(",", trace[2].Experts[2])}]", lines[4]);
    }

    /// <summary>
    /// inspect --prompt (through the folder's real tokenizer) and --prompt-ids on every architecture: one line per
    /// token whose experts per MoE block are <see cref="RoutingTrace"/>'s, and the same table either way.
    /// </summary>
    [Theory]
    [MemberData(nameof(TinyChatModels.Architectures), MemberType = typeof(TinyChatModels))]
    public async Task InspectShowsAPromptsRoutingOnEachArchitecture(string arch)
    {
        var tok = TinyChatModels.Write(arch, Folder);
        const string text = "Hello, world";
        int[] ids = tok.Encode(text);
        var byText = await MoeCli.Run("inspect", Folder, "--prompt", text, "--threads", "1");
        Assert.True(byText.ExitCode == 0, byText.Stderr);
        var byIds = await MoeCli.Run("inspect", Folder, "--prompt-ids", string.Join(",", ids), "--threads", "1");
        Assert.True(byIds.ExitCode == 0, byIds.Stderr);

        var model = ModelStore.Open(Folder, 64);
        var c = model.Config;
        int[] moeBlocks = [.. Enumerable.Range(0, c.Layers).Where(c.IsMoeLayer)];
        var trace = RoutingTrace.Of(model, ids, 1);
        Assert.Equal(moeBlocks.Length, trace.Count);
        int shared = c.ResolvedMoe!.SharedExperts > 0 ? 1 : 0;
        string[] textLines = byText.Stdout.Trim().Split('\n');
        Assert.Equal(1 + shared + ids.Length, textLines.Length);
        // With tokenizer.json in the folder, ids are shown as their text too: the two tables are the same.
        Assert.Equal(byText.Stdout, byIds.Stdout);
        Assert.Contains($"{c.ResolvedMoe.Experts} routed experts, top-{c.ResolvedMoe.TopK}", textLines[0]);
        for (int t = 0; t < ids.Length; t++)
        {
            string routing = string.Join("  ", moeBlocks.Select((b, l) => $"L{b}:[{string.Join(",", trace[l].Experts[t])}]"));
            Assert.Equal($"{"'" + tok.Decode([ids[t]]) + "'",-8} {routing}", textLines[1 + shared + t].TrimEnd('\r'));
        }
    }

    [Fact]
    public async Task BadInputsAreOneLineAndExitCode2()
    {
        TinyChatModels.Write("qwen3_moe", Folder);
        string configPath = Path.Combine(Folder, "config.json");
        string config = File.ReadAllText(configPath);
        var c = JsonNode.Parse(config)!;

        c["model_type"] = "qwen5_moe";
        File.WriteAllText(configPath, c.ToJsonString());
        MoeCli.UserError(await Chat(Folder, ""), "model_type 'qwen5_moe' is not supported");

        c = JsonNode.Parse(config)!;
        c["num_experts_per_tok"] = 99;
        File.WriteAllText(configPath, c.ToJsonString());
        MoeCli.UserError(await MoeCli.Run("generate", "--model", Folder, "--chat", "hi"), "config.json", "99");
        File.WriteAllText(configPath, config);

        string tcPath = Path.Combine(Folder, "tokenizer_config.json");
        var tc = JsonNode.Parse(File.ReadAllText(tcPath))!;
        tc["chat_template"] = "{% for m in messages %}{{ m.content | shout }}{% endfor %}";
        File.WriteAllText(tcPath, tc.ToJsonString());
        MoeCli.UserError(await Chat(Folder, "hi\n"), "tokenizer_config.json: chat_template", "shout");

        var tj = JsonNode.Parse(File.ReadAllText(Path.Combine(Folder, "tokenizer.json")))!;
        tj["model"]!["type"] = "WordPiece";
        File.WriteAllText(Path.Combine(Folder, "tokenizer.json"), tj.ToJsonString());
        MoeCli.UserError(await MoeCli.Run("tokenize", "--model", Folder, "hi"), "tokenizer.json", "model.type", "WordPiece");

        MoeCli.UserError(await MoeCli.Run("tokenize", "--model", Path.Combine(Folder, "nowhere"), "hi"), "has no tokenizer.json");
    }
}
