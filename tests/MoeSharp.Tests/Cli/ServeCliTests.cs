using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.Json;
using MoeSharp.IO;
using MoeSharp.Models;
using MoeSharp.Tests.IO;
using MoeSharp.Tests.Models;
using MoeSharp.Text;

namespace MoeSharp.Tests.Cli;

/// <summary>
/// `moe serve` as a user runs it: a child process on a port of the system's choosing, answering HTTP with the text
/// <see cref="Generator.Greedy"/> gives in this process (exact), and stopping on SIGINT after draining; bad input is
/// one line and exit code 2 before anything listens.
/// </summary>
public sealed class ServeCliTests : TempFolderTest
{
    [Fact]
    public async Task ServesChatCompletionsAndStopsOnSigint()
    {
        if (!OperatingSystem.IsLinux() && !OperatingSystem.IsMacOS()) Assert.Skip("SIGINT is sent with kill(1)");
        var tok = TinyChatModels.Write("qwen3_moe", Folder);
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string a in (string[])[Path.Combine(AppContext.BaseDirectory, "moe.dll"), "serve", "--model", Folder, "--port", "0", "--threads", "1"]) start.ArgumentList.Add(a);
        using var p = Process.Start(start)!;
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        try
        {
            // "serving 'NAME' (context N) at http://127.0.0.1:PORT/v1 ; ..."
            string line = await p.StandardError.ReadLineAsync(timeout.Token) ?? throw new InvalidOperationException("moe serve printed nothing");
            Assert.StartsWith($"serving '{Path.GetFileName(Folder)}' (context 512) at http://127.0.0.1:", line);
            var address = new Uri(line.Split(' ')[5]);
            using var http = new HttpClient();
            Assert.Equal("ok\n", await http.GetStringAsync(new Uri(address, "/health"), timeout.Token));

            var r = await http.PostAsJsonAsync(new Uri(address, "v1/chat/completions"), new { messages = new[] { new { role = "user", content = "Hello?" } }, max_tokens = 6, temperature = 0 }, timeout.Token);
            Assert.True(r.IsSuccessStatusCode, await r.Content.ReadAsStringAsync(timeout.Token));
            using var doc = JsonDocument.Parse(await r.Content.ReadAsStringAsync(timeout.Token));
            int[] prompt = tok.Encode(tok.ApplyChatTemplate([new ChatMessage("user", "Hello?")], addGenerationPrompt: true), addSpecialTokens: false);
            int[] ids = Generator.Greedy(ModelStore.Open(Folder), prompt, 6, threads: 1);
            int end = Array.FindIndex(ids, tok.StopTokenIds.Contains);
            string want = tok.Decode(end < 0 ? ids : ids[..end], skipSpecialTokens: true);
            Assert.Equal(want, doc.RootElement.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString());

            using (var kill = Process.Start("kill", [MoeCli.StopSignal(), p.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])) await kill.WaitForExitAsync(timeout.Token);
            await p.WaitForExitAsync(timeout.Token);
            Assert.Equal(0, p.ExitCode);
            Assert.Contains("stopped", await p.StandardError.ReadToEndAsync(timeout.Token));
        }
        finally
        {
            if (!p.HasExited) p.Kill();
        }
    }

    [Fact]
    public async Task BadInputIsOneLineBeforeAnythingListens()
    {
        MoeCli.UserError(await MoeCli.Run("serve", "--model", Path.Combine(Folder, "absent")), "absent", "tokenizer.json");
        MoeCli.UserError(await MoeCli.Run("serve", "--model", Folder, "--port", "70000"), "--port");
        TinyChatModels.WriteTokenizer("qwen3_moe", Folder);
        MoeCli.UserError(await MoeCli.Run("serve", "--model", Folder), "config.json");
        MoeCli.UserError(await MoeCli.Run("serve", "--model", Folder, "--host", "example.invalid"), "example.invalid", "IP address");
    }
}
