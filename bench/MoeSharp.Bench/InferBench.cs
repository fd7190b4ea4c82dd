using System.Diagnostics;
using System.Globalization;
using MoeSharp.Formats;
using MoeSharp.IO;
using MoeSharp.Kernels;
using MoeSharp.Models;

namespace MoeSharp.Bench;

/// <summary>
/// `infer`: load, prompt and decode speed of a model folder or GGUF file, in the line format of bench/peer/llamacpp's
/// C driver, through the calls `moe generate` makes (ModelStore.Open, Generator.Stream, greedy). `moe bench` times
/// training and has no prompt length, hence this command. Weights load as `moe generate` loads them: in place from
/// the mapped GGUF or safetensors files, quantized once on load with --quantize FORMAT.
///   infer --model PATH --weights f32 --threads T [--quantize F] --pp-ids FILE|ids --decode-ids ids --decode-tokens N [--cpu-time]
///   infer --model PATH --weights f32 --threads T [--quantize F] --check ids --max-tokens N      (the greedy continuation)
/// and after the timed runs, optionally: --profile (a decode timed per op class), --ab LEVER (a lever on and off, interleaved).
/// </summary>
internal static class InferBench
{
    public static int Run(string[] args)
    {
        string Arg(string key, string? fallback = null)
        {
            int i = Array.IndexOf(args, key);
            return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback ?? throw new ArgumentException($"infer: missing {key}");
        }
        string path = Arg("--model"), weights = Arg("--weights", "f32");
        int threads = int.Parse(Arg("--threads", "2"), CultureInfo.InvariantCulture);
        using var limit = Workers.Limit(threads);
        WeightFormat? quantize = null;
        if (args.Contains("--quantize"))
        {
            string name = Arg("--quantize");
            foreach (var f in WeightFormats.All)
                if (f.ToString().Equals(name, StringComparison.OrdinalIgnoreCase)) quantize = f;
            if (quantize is null) throw new ArgumentException($"infer: --quantize expected one of {string.Join(", ", WeightFormats.All.ToArray())}, got '{name}'");
        }
        ModelLoadOptions Load(int maxContext) => new() { MaxContext = maxContext, InPlace = true, Quantize = quantize };
        // Generator.Stream scopes its passes to the sampling options' thread count, which would override the limit above.
        var greedy = new SamplingOptions { Temperature = 0, Threads = threads };
        if (args.Contains("--check"))
        {
            int[] prompt = Ids(Arg("--check"));
            int n = int.Parse(Arg("--max-tokens", "16"), CultureInfo.InvariantCulture);
            using var model = ModelStore.Open(path, Load(Math.Max(64, prompt.Length + n + 1)));
            Console.WriteLine($"greedy impl=moesharp weights={weights} ids={string.Join(',', Generator.Greedy(model, prompt, n, threads))}");
            return 0;
        }
        int[] pp = Ids(Arg("--pp-ids")), dec = Ids(Arg("--decode-ids", "1,17,42,99,5"));
        int decodeTokens = int.Parse(Arg("--decode-tokens", "128"), CultureInfo.InvariantCulture);
        var clock = Stopwatch.StartNew();
        using var lm = ModelStore.Open(path, Load(Math.Max(64, Math.Max(pp.Length + 1, dec.Length + decodeTokens + 1))));
        double load = clock.Elapsed.TotalSeconds;
        double[] Times(int[] prompt, int count) // [count]: seconds from the start to each sampled token
        {
            var times = new double[count];
            int i = 0;
            var t = Stopwatch.StartNew();
            foreach (var _ in Generator.Stream(lm, prompt, count, greedy)) times[i++] = t.Elapsed.TotalSeconds;
            return times;
        }
        Times([.. Enumerable.Repeat(dec, 4).SelectMany(x => x).Take(16)], 8); // warm-up: the JIT's final tier
        // With --cpu-time, the prompt's CPU seconds too (every thread of the process): on a shared machine wall time counts the neighbours.
        var cpu = Process.GetCurrentProcess().TotalProcessorTime;
        double ppSeconds = Times(pp, 1)[0];
        double ppCpu = (Process.GetCurrentProcess().TotalProcessorTime - cpu).TotalSeconds;
        var d = Times(dec, decodeTokens + 1);
        // decode is timed from the first sampled token, so the prompt pass stays out of it
        double decodeSeconds = d[decodeTokens] - d[0];
        Console.WriteLine($"llm impl=moesharp weights={weights} threads={threads} pp={pp.Length} decode={decodeTokens} " +
                          $"load_s={load:F3} pp_tok_s={pp.Length / ppSeconds:F2} decode_tok_s={decodeTokens / decodeSeconds:F3}" +
                          (args.Contains("--cpu-time") ? $" pp_cpu_s={ppCpu:F2}" : ""));
        if (args.Contains("--profile")) Profile(Times, dec, decodeTokens, weights, threads);
        if (args.Contains("--ab")) AB(Arg("--ab"), Times, dec, decodeTokens, weights, threads);
        return 0;
    }

    /// <summary>
    /// A lever's decode speed on and off, alternated run by run in this process so that the load from elsewhere hits
    /// both alike: `--ab prefetch` (MatVecKernels.PrefetchAhead), `--ab reuse` (Q8Activation.Reuse: an x quantized once for
    /// all the products that take it), `--ab items` (64 rows per decode work item against 16), `--ab group` (MatVecGroup.Enabled:
    /// decode's selected experts' W1/W3 in one parallel loop, their W2 in another and the stored q/k/v projections in a
    /// third, against one loop per matrix). Medians of 5 runs each.
    /// </summary>
    private static void AB(string lever, Func<int[], int, double[]> times, int[] dec, int decodeTokens, string weights, int threads)
    {
        Action<bool> set = lever switch
        {
            "prefetch" => on => MatVecKernels.PrefetchAhead = on,
            "reuse" => on => Q8Activation.Reuse = on,
            "items" => on => QuantizedMatrix.RowsPerItem = on ? 64 : 16,
            "group" => on => MatVecGroup.Enabled = on,
            _ => throw new ArgumentException($"infer: --ab expected prefetch, reuse, items or group, got '{lever}'"),
        };
        var rates = new List<double>[] { [], [] }; // [on, off] tokens per second
        // The process's CPU time per token too: on a loaded machine, wall time also counts the time others held the cores.
        var cpu = new List<double>[] { [], [] }; // [on, off] CPU milliseconds per token, prompt pass included
        using var process = Process.GetCurrentProcess();
        for (int round = 0; round < 5; round++)
            for (int side = 0; side < 2; side++)
            {
                set(side == 0);
                process.Refresh();
                var before = process.TotalProcessorTime;
                var d = times(dec, decodeTokens + 1);
                process.Refresh();
                cpu[side].Add((process.TotalProcessorTime - before).TotalMilliseconds / (decodeTokens + 1));
                rates[side].Add(decodeTokens / (d[decodeTokens] - d[0]));
            }
        set(true);
        double Median(List<double> r) { r.Sort(); return r[r.Count / 2]; }
        Console.WriteLine($"ab lever={lever} weights={weights} threads={threads} on_tok_s={Median(rates[0]):F2} off_tok_s={Median(rates[1]):F2} " +
                          $"speedup={Median(rates[0]) / Median(rates[1]):F3} on_cpu_ms_per_token={Median(cpu[0]):F2} off_cpu_ms_per_token={Median(cpu[1]):F2} " +
                          $"cpu_ratio_off_on={Median(cpu[1]) / Median(cpu[0]):F3}");
    }

    /// <summary>A second decode run, timed per op class (DecodeProfile); the prompt pass and the first token are left out.</summary>
    private static void Profile(Func<int[], int, double[]> times, int[] dec, int decodeTokens, string weights, int threads)
    {
        // The first sampled token carries the prompt pass: profile from the second on by subtracting a 1-token run.
        DecodeProfile.Reset();
        DecodeProfile.Enabled = true;
        times(dec, 1);
        var prompt = new double[(int)DecodeProfile.Op.Count]; // [ops]
        for (int o = 0; o < prompt.Length; o++) prompt[o] = DecodeProfile.Seconds((DecodeProfile.Op)o);
        double promptWait = DecodeProfile.WaitSeconds;
        long promptLoops = DecodeProfile.Loops;
        var d = times(dec, decodeTokens + 1);
        DecodeProfile.Enabled = false;
        double total = d[decodeTokens] - d[0], charged = 0;
        for (int o = 0; o < prompt.Length; o++)
        {
            var op = (DecodeProfile.Op)o;
            double s = DecodeProfile.Seconds(op) - 2 * prompt[o];
            charged += s;
            Console.WriteLine($"profile weights={weights} threads={threads} op={op} ms_per_token={1e3 * s / decodeTokens:F3} share={100 * s / total:F1}%");
        }
        Console.WriteLine($"profile weights={weights} threads={threads} op=Uncharged ms_per_token={1e3 * (total - charged) / decodeTokens:F3} share={100 * (total - charged) / total:F1}%");
        double wait = DecodeProfile.WaitSeconds - 2 * promptWait;
        long loops = DecodeProfile.Loops - 2 * promptLoops;
        Console.WriteLine($"profile weights={weights} threads={threads} total_ms_per_token={1e3 * total / decodeTokens:F3} decode_tok_s={decodeTokens / total:F3} " +
                          $"parallel_loops_per_token={(double)loops / decodeTokens:F1} wait_for_helpers_ms_per_token={1e3 * wait / decodeTokens:F3}");
    }

    private static int[] Ids(string text)
    {
        if (File.Exists(text)) text = File.ReadAllText(text);
        return text.Trim().Split(',').Select(x => int.Parse(x.Trim(), CultureInfo.InvariantCulture)).ToArray();
    }
}
