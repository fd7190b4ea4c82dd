using System.Diagnostics;

namespace MoeSharp.Bench;

/// <summary>
/// Side-by-side harness: each command prints one line per measurement in the `key=value` format that the peer
/// scripts in bench/peer print too, so that bench/peer/join.py can pair them up and print ratios.
/// </summary>
internal static class Harness
{
    public static readonly Dictionary<string, Func<string[], int>> Commands = new()
    {
        ["gemm"] = GemmBench.Run,
        ["expert-gemm"] = ExpertGemmBench.Run,
        ["peak"] = _ => { FmaPeak.Report(); return 0; },
        ["lm-profile"] = LmBench.Profile,
        ["lm"] = LmBench.Run,
        ["lm-ab"] = LmBench.Ab,
        ["attention"] = AttentionBench.Run,
        ["moe"] = MoeBench.Run,
        ["moe-ab"] = MoeAbBench.Run,
        ["tabular"] = TabularBench.Run,
        ["mmoe"] = MmoeBench.Run,
        ["patch"] = PatchBench.Run,
        ["quant"] = QuantBench.Run,
        ["infer"] = InferBench.Run,
        ["load"] = LoadBench.Run,
        ["batch"] = BatchBench.Run,
        ["cluster"] = ClusterBench.Run,
    };

    public static int Usage()
    {
        Console.Error.WriteLine($"usage: MoeSharp.Bench <{string.Join('|', Commands.Keys)}> [options]");
        return 2;
    }

    /// <summary>Median seconds of at least <paramref name="repeats"/> runs, after warm-up runs long enough for the JIT's final tier.</summary>
    public static double Median(Action body, int repeats, double minSeconds = 0.2)
    {
        var warm = Stopwatch.StartNew();
        do body(); while (warm.Elapsed.TotalSeconds < 0.3);
        var times = new List<double>();
        var total = Stopwatch.StartNew();
        while (times.Count < repeats || total.Elapsed.TotalSeconds < minSeconds)
        {
            var sw = Stopwatch.StartNew();
            body();
            times.Add(sw.Elapsed.TotalSeconds);
            if (times.Count >= 50 * repeats) break;
        }
        times.Sort();
        return times[times.Count / 2];
    }

    public static int[] ThreadList(string[] args)
    {
        int i = Array.IndexOf(args, "--threads");
        return i >= 0 && i + 1 < args.Length ? args[i + 1].Split(',').Select(int.Parse).ToArray() : [1, 2];
    }
}
