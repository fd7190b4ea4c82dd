using System.Diagnostics;
using MoeSharp.Tests.Diagnostics;

namespace MoeSharp.Tests.Cli;

/// <summary>Runs the real <c>moe</c> executable (built beside the tests) so the command's registration is tested too.</summary>
public sealed class InspectCommandTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), $"moe-inspect-{Guid.NewGuid():N}");

    public void Dispose()
    {
        if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true);
    }

    private static (int Code, string Out, string Err) Moe(params string[] args)
    {
        var start = new ProcessStartInfo(Path.Combine(AppContext.BaseDirectory, OperatingSystem.IsWindows() ? "moe.exe" : "moe"))
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (string a in args) start.ArgumentList.Add(a);
        using var p = Process.Start(start)!;
        var stderr = p.StandardError.ReadToEndAsync();
        string stdout = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, stdout, stderr.Result);
    }

    [Fact]
    public void InspectWritesTheReportAndPrintsItsPath()
    {
        SyntheticRun.Write(_dir, steps: 200);
        var (code, stdout, stderr) = Moe("inspect", _dir);
        Assert.True(code == 0, stderr);
        Assert.Equal(Path.Combine(_dir, "report.html"), stdout.Trim());
        Assert.True(File.Exists(stdout.Trim()));
    }

    [Fact]
    public void InspectReportsABadRunFolderInOneLine()
    {
        var (code, stdout, stderr) = Moe("inspect", _dir);
        Assert.Equal(2, code);
        Assert.Equal("", stdout);
        Assert.StartsWith("error: ", stderr);
        Assert.Contains(_dir, stderr);
        Assert.Single(stderr.Trim().Split('\n')); // no stack trace

        Directory.CreateDirectory(_dir);
        File.WriteAllText(Path.Combine(_dir, "metrics.jsonl"), "{\"step\": 1, \"loss\": 2}\n{oops\n");
        (code, _, stderr) = Moe("inspect", _dir);
        Assert.Equal(2, code);
        Assert.Contains("metrics.jsonl, line 2", stderr);
    }
}
