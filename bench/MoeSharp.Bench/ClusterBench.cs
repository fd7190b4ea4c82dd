using System.Diagnostics;
using System.Globalization;
using MoeSharp.Autograd;
using MoeSharp.Cluster.Config;
using MoeSharp.Cluster.Planning;
using MoeSharp.Data;
using MoeSharp.Experts;
using MoeSharp.IO;
using MoeSharp.Kernels;
using MoeSharp.Models;

namespace MoeSharp.Bench;

/// <summary>
/// `cluster`: one side of bench/cluster.sh. Prefill and decode speed of a run folder with its routed experts in this
/// process or on the silos of a cluster configuration (started beforehand with `moe silo`), the mean time one MoE
/// layer's experts take per forward pass (the runner's Run: local kernels, or the calls to the silos and back), the
/// bytes sent and received per token per MoE layer, and how skewed the routing was. The prompt is text from --text
/// encoded with the run's tokenizer, so the routing is the trained model's.
///   cluster --model RUN --text FILE --impl NAME [--cluster CONFIG] [--pp 64] [--decode-tokens 64] [--threads 2]
///   cluster --model RUN --text FILE --plan-out FILE --silos N [--window 4096]   (the planner's plan from the routing)
/// </summary>
internal static class ClusterBench
{
    public static int Run(string[] args)
    {
        string Arg(string key, string? fallback = null)
        {
            int i = Array.IndexOf(args, key);
            return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback ?? throw new ArgumentException($"cluster: missing {key}");
        }
        int Int(string key, int fallback) => int.Parse(Arg(key, fallback.ToString(CultureInfo.InvariantCulture)), CultureInfo.InvariantCulture);
        string path = Arg("--model");
        var run = new RunFolder(path).ReadConfig();
        var tokenizer = LmData.TokenizerFor(run.Data, run.Alphabet) ?? throw new ArgumentException($"cluster: run {path} has no tokenizer");
        int[] text = tokenizer.Encode(File.ReadAllText(Arg("--text")));
        int threads = Int("--threads", 2);
        using var limit = Workers.Limit(threads);
        if (args.Contains("--plan-out")) return Plan(path, text, Arg("--plan-out"), Int("--silos", 2), Int("--window", 4096));

        int pp = Int("--pp", 64), decode = Int("--decode-tokens", 64);
        using var model = ModelStore.Open(path, new ModelLoadOptions { InPlace = true, MaxContext = pp + decode + 1 });
        using var connection = args.Contains("--cluster") ? ClusterConnection.Open(model, path, ClusterConfig.Load(Arg("--cluster"))).GetAwaiter().GetResult() : null;
        var timers = new TimedRunner[model.MoeLayers.Count];
        for (int l = 0; l < timers.Length; l++)
        {
            var bank = model.MoeLayers[l].Bank;
            bank.Runner = timers[l] = new TimedRunner(bank.Runner ?? LocalExpertRunner.Instance);
        }
        var greedy = new SamplingOptions { Temperature = 0, Threads = threads };
        int[] prompt = text[..pp], decodePrompt = text[pp..(pp + 4)];

        foreach (var _ in Generator.Stream(model, decodePrompt, 8, greedy)) { } // warm-up: the JIT's final tier, the silos' activations
        Reset(timers);
        var clock = Stopwatch.StartNew();
        foreach (var _ in Generator.Stream(model, prompt, 1, greedy)) { }
        double ppSeconds = clock.Elapsed.TotalSeconds;
        double ppLayerMs = MeanMs(timers);

        var load = new ExpertLoad(ClusterConnection.ExpertsPerLayer(model));
        long bytes0 = connection?.Bytes ?? 0;
        Reset(timers);
        double first = 0;
        int made = 0;
        clock.Restart();
        foreach (var token in Generator.Stream(model, decodePrompt, decode + 1, greedy))
        {
            // decode is timed from the first sampled token, so the prompt pass stays out of it
            if (made++ == 0)
            {
                first = clock.Elapsed.TotalSeconds;
                Reset(timers);
                bytes0 = connection?.Bytes ?? 0;
                continue;
            }
            for (int l = 0; l < token.Experts.Count; l++)
            {
                var counts = new int[load.Experts(l)];
                foreach (int e in token.Experts[l]) counts[e]++;
                load.Add(l, counts);
            }
        }
        double decodeSeconds = clock.Elapsed.TotalSeconds - first;
        double decodeLayerMs = MeanMs(timers);
        double bytesPerTokenLayer = connection is null ? 0 : (double)(connection.Bytes - bytes0) / decode / timers.Length;
        double maxShare = 0;
        for (int l = 0; l < load.Layers; l++)
        {
            long total = 0, most = 0;
            foreach (long c in load.Of(l)) { total += c; most = Math.Max(most, c); }
            maxShare = Math.Max(maxShare, total == 0 ? 0 : (double)most / total);
        }
        string transport = connection is null ? "none" : connection.Config.Transport.ToString().ToLowerInvariant();
        int silos = connection?.Config.Silos.Count ?? 0;
        // rounds.py takes the median of the fields it knows as metrics (tok_s, ms) and keys on the others, so the
        // per-layer times go on lines of their own; bytes, skew and degraded steps are the same in every run.
        string impl = Arg("--impl");
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"cluster impl={impl} silos={silos} transport={transport} threads={threads} pp={pp} decode={decode} " +
            $"bytes_tok_layer={bytesPerTokenLayer:F0} max_expert_share={maxShare:F3} degraded={connection?.Degraded ?? 0} " +
            $"pp_tok_s={pp / ppSeconds:F2} decode_tok_s={decode / decodeSeconds:F3}"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"cluster-layer impl={impl} phase=prefill tokens={pp} ms={ppLayerMs:F3}"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"cluster-layer impl={impl} phase=decode tokens=1 ms={decodeLayerMs:F4}"));
        return 0;
    }

    /// <summary>
    /// The routing of <paramref name="window"/> tokens of text, forward passes of the model's context in one process,
    /// into <see cref="PlacementPlanner"/>; writes its plan and prints each layer's expected silo imbalance (largest
    /// silo load over the mean) under round robin and under the plan.
    /// </summary>
    private static int Plan(string path, int[] text, string output, int silos, int window)
    {
        using var model = ModelStore.Open(path, new ModelLoadOptions { InPlace = true });
        int context = model.Config.Context;
        var experts = ClusterConnection.ExpertsPerLayer(model);
        var load = new ExpertLoad(experts);
        var tape = new Tape();
        for (int start = 0; start + context <= Math.Min(window, text.Length); start += context)
        {
            using (tape.NoGrad())
            {
                var output1 = model.Forward(tape, text[start..(start + context)], 1);
                for (int l = 0; l < output1.Moe.Count; l++) load.Add(l, output1.Moe[l].Stats.TokensPerExpert);
            }
            tape.Reset();
        }
        var plan = PlacementPlanner.Plan(load, new PlannerOptions { Silos = silos });
        File.WriteAllText(output, PlanFile.Write(plan));
        var before = PlacementPlanner.SiloLoads(PlanFile.RoundRobin(experts, silos), load, silos);
        var after = PlacementPlanner.SiloLoads(plan, load, silos);
        for (int l = 0; l < load.Layers; l++)
        {
            long total = 0, most = 0;
            foreach (long c in load.Of(l)) { total += c; most = Math.Max(most, c); }
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"plan layer={l} silos={silos} tokens={total} max_expert_share={(double)most / total:F3} imbalance_round_robin={PlacementPlanner.Imbalance(before[l]):F3} imbalance_planned={PlacementPlanner.Imbalance(after[l]):F3}"));
        }
        return 0;
    }

    private static void Reset(TimedRunner[] timers)
    {
        foreach (var t in timers) t.Reset();
    }

    /// <summary>Mean milliseconds of one MoE layer's expert run, over every layer and call since the last reset.</summary>
    private static double MeanMs(TimedRunner[] timers)
    {
        long ticks = 0, calls = 0;
        foreach (var t in timers) { ticks += t.Ticks; calls += t.Calls; }
        return calls == 0 ? 0 : ticks * 1000.0 / Stopwatch.Frequency / calls;
    }

    /// <summary>Times another runner's calls.</summary>
    private sealed class TimedRunner(IExpertRunner inner) : IExpertRunner
    {
        public long Ticks { get; private set; }
        public long Calls { get; private set; }

        public void Reset() => (Ticks, Calls) = (0, 0);

        public void Run(ExpertBank bank, ReadOnlySpan<float> xs, ReadOnlySpan<int> expertOffsets, Span<float> ys, Span<bool> answered)
        {
            long t0 = Stopwatch.GetTimestamp();
            inner.Run(bank, xs, expertOffsets, ys, answered);
            Ticks += Stopwatch.GetTimestamp() - t0;
            Calls++;
        }
    }
}
