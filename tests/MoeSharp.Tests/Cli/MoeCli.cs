using System.Diagnostics;

namespace MoeSharp.Tests.Cli;

/// <summary>Runs the built `moe` command in a child process, so each test sees exactly what a user would.</summary>
public static class MoeCli
{
    public sealed record Result(int ExitCode, string Stdout, string Stderr);

    public static Task<Result> Run(params string[] args) => Run(new Dictionary<string, string>(), args);

    /// <summary>Runs `moe` with extra environment variables (e.g. MOE_FAILPOINT).</summary>
    public static async Task<Result> Run(IReadOnlyDictionary<string, string> environment, params string[] args)
    {
        string dll = Path.Combine(AppContext.BaseDirectory, "moe.dll");
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(dll);
        foreach (var a in args) start.ArgumentList.Add(a);
        start.Environment["DOTNET_TieredPGO"] = "0";
        foreach (var (name, value) in environment) start.Environment[name] = value;
        using var p = Process.Start(start)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        await p.WaitForExitAsync(timeout.Token);
        return new Result(p.ExitCode, await stdout, await stderr);
    }

    /// <summary>A tiny MoE model config: trains a handful of steps in seconds.</summary>
    public const string TinyConfig = """
        { "preset": "tiny", "d_model": 16, "layers": 2, "heads": 2, "d_ff": 32, "context": 16,
          "moe": { "experts": 4, "top_k": 2, "expert_hidden": 16 } }
        """;

    /// <summary>Asserts a user error: exit code 2 and one line on stderr that contains every fragment, no stack trace.</summary>
    /// <summary>
    /// The kill(1) option that asks a child `moe` to stop as Ctrl-C does: "-INT", or "-TERM" (which the commands treat
    /// the same) when this process ignores SIGINT. A non-interactive shell starts a background job (<c>dotnet test &amp;</c>)
    /// with SIGINT ignored, the children inherit that, and .NET then leaves SIGINT ignored in them.
    /// </summary>
    public static string StopSignal()
    {
        if (!File.Exists("/proc/self/status")) return "-INT";
        foreach (string line in File.ReadLines("/proc/self/status"))
            if (line.StartsWith("SigIgn:", StringComparison.Ordinal))
                return (Convert.ToUInt64(line[7..].Trim(), 16) & 2) != 0 ? "-TERM" : "-INT"; // bit 1: SIGINT (2)
        return "-INT";
    }

    public static void UserError(Result r, params string[] fragments)
    {
        Assert.True(r.ExitCode == 2, $"exit code {r.ExitCode}, stderr: {r.Stderr}");
        var lines = r.Stderr.Trim().Split('\n');
        Assert.True(lines.Length == 1, $"expected one line on stderr, got:\n{r.Stderr}");
        Assert.StartsWith("error: ", lines[0]);
        Assert.DoesNotContain("   at ", r.Stderr);
        foreach (var f in fragments) Assert.Contains(f, lines[0]);
    }
}
