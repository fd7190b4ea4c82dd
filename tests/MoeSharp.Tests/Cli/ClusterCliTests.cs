using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using MoeSharp.Cluster.Config;
using MoeSharp.Tests.IO;
using MoeSharp.Tests.Models;

namespace MoeSharp.Tests.Cli;

/// <summary>
/// `moe silo` and `--cluster` as a user runs them: silos as child processes on free loopback ports, generation whose
/// ids equal the single-process ids, Ctrl-C stopping a silo cleanly; every bad configuration one line and exit code 2.
/// The model is the tiny random Mixtral (2 MoE layers of 4 experts, top 2).
/// </summary>
public sealed class ClusterCliTests : TempFolderTest
{
    private const string Prompt = "1,2,3,4,5";

    private string Model => Path.Combine(Folder, "model");

    /// <summary>Writes the tiny model and a configuration of <paramref name="silos"/> silos on free loopback ports; returns its path.</summary>
    private string Setup(int silos, string extra = "", Func<int, string>? siloExtra = null, int connectMs = 20_000)
    {
        TinyChatModels.Write("mixtral", Model);
        var entries = new List<string>();
        for (int i = 0; i < silos; i++)
            entries.Add($$"""{ "host": "127.0.0.1", "port": {{FreePort()}}, "gateway_port": {{FreePort()}} {{siloExtra?.Invoke(i) ?? ""}} }""");
        string config = Path.Combine(Folder, "cluster.json");
        File.WriteAllText(config, $$"""
            { "silos": [ {{string.Join(", ", entries)}} ], "checkpoint": "model", "fingerprint": "{{CheckpointFingerprint.Of(Model)}}",
              "connect_timeout_ms": {{connectMs}}, "call_timeout_ms": 20000 {{extra}} }
            """);
        return config;
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private Task<MoeCli.Result> Generate(params string[] extra) =>
        MoeCli.Run(["generate", "--model", Model, "--prompt-ids", Prompt, "--max-tokens", "6", "--temperature", "0", "--print-ids", "--threads", "1", .. extra]);

    /// <summary>
    /// Two silos (the plan: round robin, experts 0 and 2 of each layer on silo 0, 1 and 3 on silo 1), greedy fp32
    /// generation through them: the ids equal the single-process run's exactly (the remote experts run the same
    /// kernels on the same rows, and the combine keeps each token's pair order). SIGINT then stops each silo with
    /// exit code 0.
    /// </summary>
    [Fact]
    public async Task GenerateThroughTwoSilosEqualsOneProcess()
    {
        if (!OperatingSystem.IsLinux() && !OperatingSystem.IsMacOS()) Assert.Skip("SIGINT is sent with kill(1)");
        string config = Setup(2);
        var local = await Generate();
        Assert.True(local.ExitCode == 0, local.Stderr);

        var silos = new List<Process>();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        try
        {
            for (int i = 0; i < 2; i++) silos.Add(StartSilo(config, i));
            for (int i = 0; i < 2; i++)
            {
                string line = await silos[i].StandardError.ReadLineAsync(timeout.Token) ?? "";
                Assert.StartsWith($"silo {i} of 2 at 127.0.0.1:", line);
            }
            var remote = await Generate("--cluster", config);
            Assert.True(remote.ExitCode == 0, remote.Stderr);
            Assert.Equal(local.Stdout, remote.Stdout);
            // The experts did run remotely: 6 tokens × 2 layers, one or two calls each, nothing degraded.
            var report = System.Text.RegularExpressions.Regex.Match(remote.Stderr, @"cluster: 2 silos, (\d+) calls, ([\d,]+) bytes sent, ([\d,]+) received \(fp32\), 0 degraded layer steps");
            Assert.True(report.Success, remote.Stderr);
            Assert.InRange(int.Parse(report.Groups[1].Value, CultureInfo.InvariantCulture), 12, 24);

            foreach (var silo in silos)
            {
                using (var kill = Process.Start("kill", [MoeCli.StopSignal(), silo.Id.ToString(CultureInfo.InvariantCulture)])) await kill.WaitForExitAsync(timeout.Token);
                await silo.WaitForExitAsync(timeout.Token);
                Assert.Equal(0, silo.ExitCode);
                Assert.Contains("stopped", await silo.StandardError.ReadToEndAsync(timeout.Token));
            }
        }
        finally
        {
            foreach (var silo in silos)
            {
                if (!silo.HasExited) silo.Kill();
                silo.Dispose();
            }
        }
    }

    private static Process StartSilo(string config, int index)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string a in (string[])[Path.Combine(AppContext.BaseDirectory, "moe.dll"), "silo", "--cluster", config, "--index", index.ToString(CultureInfo.InvariantCulture)])
            start.ArgumentList.Add(a);
        return Process.Start(start)!;
    }

    [Fact]
    public async Task FingerprintIsPrintedForTheConfiguration()
    {
        TinyChatModels.Write("mixtral", Model);
        var r = await MoeCli.Run("silo", "--fingerprint", Model);
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Equal(CheckpointFingerprint.Of(Model), r.Stdout.Trim());
    }

    [Fact]
    public async Task AMissingOrMalformedConfigurationIsOneLine()
    {
        TinyChatModels.Write("mixtral", Model);
        MoeCli.UserError(await Generate("--cluster", Path.Combine(Folder, "absent.json")), "absent.json' does not exist");
        MoeCli.UserError(await MoeCli.Run("serve", "--model", Model, "--port", "0", "--cluster", Path.Combine(Folder, "absent.json")), "absent.json' does not exist");
        string bad = Path.Combine(Folder, "bad.json");
        File.WriteAllText(bad, """{ "silos": [ { "host": "127.0.0.1", "port": "x", "gateway_port": 2 } ], "checkpoint": "model" }""");
        MoeCli.UserError(await Generate("--cluster", bad), "bad.json: silos[0].port: expected an integer from 1 to 65535, got \"x\"");
        File.WriteAllText(bad, """{ "silos": [ """);
        MoeCli.UserError(await MoeCli.Run("silo", "--cluster", bad, "--index", "0"), "bad.json: not valid JSON");
    }

    [Fact]
    public async Task APlanThatOmitsAnExpertIsOneLine()
    {
        string config = Setup(2, """, "plan": { "shards": [ { "layer": 0, "shard": 0, "experts": [0, 1, 2], "silos": [0] }, { "layer": 1, "shard": 0, "experts": [0, 1, 2, 3], "silos": [1] } ] }""");
        MoeCli.UserError(await Generate("--cluster", config), "cluster.json: plan: expert 3 of MoE layer 0 is in no shard");
        MoeCli.UserError(await MoeCli.Run("silo", "--cluster", config, "--index", "1"), "expert 3 of MoE layer 0 is in no shard");
        MoeCli.UserError(await Generate("--cluster", config, "--quantize", "bf16"), "--cluster: the silos run the experts as the checkpoint stores them; --quantize");
    }

    /// <summary>Nothing listens on the configured gateways: one line within the 1.5 s connect timeout plus start-up, never a hang.</summary>
    [Fact]
    public async Task NoReachableSiloIsOneLineWithinTheTimeout()
    {
        string config = Setup(2, connectMs: 1500);
        var clock = Stopwatch.StartNew();
        var r = await Generate("--cluster", config);
        MoeCli.UserError(r, "no reachable silo within 1.5 s", "gateways tried: 127.0.0.1:");
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(60), $"took {clock.Elapsed}");
    }

    /// <summary>Silo 1's own checkpoint is a different random model: it refuses to start, naming both fingerprints.</summary>
    [Fact]
    public async Task MismatchedCheckpointsAreOneLine()
    {
        string other = Path.Combine(Folder, "other");
        string config = Setup(2, siloExtra: i => i == 1 ? """, "checkpoint": "other" """ : "");
        TinyChatModels.Write("mixtral", other, seed: 2);
        var r = await MoeCli.Run("silo", "--cluster", config, "--index", "1");
        MoeCli.UserError(r, $"silo 1's checkpoint '{other}' has fingerprint sha256:", "every silo must open the same checkpoint");
        MoeCli.UserError(await MoeCli.Run("silo", "--cluster", config, "--index", "2"), "--index: silo 2 is out of range");
        MoeCli.UserError(await MoeCli.Run("silo", "--index", "0"), "--cluster");
    }
}
