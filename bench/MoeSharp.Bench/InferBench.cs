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
        var greedy = new SamplingOptions { Temperature = 0 };
        if (args.Contains("--check"))
        {
            int[] prompt = Ids(Arg("--check"));
            int n = int.Parse(Arg("--max-tokens", "16"), CultureInfo.InvariantCulture);
            using var model = ModelStore.Open(path, Load(Math.Max(64, prompt.Length + n + 1)));
            Console.WriteLine($"greedy impl=moesharp weights={weights} ids={string.Join(',', Generator.Greedy(model, prompt, n))}");
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
        return 0;
    }

    private static int[] Ids(string text)
    {
        if (File.Exists(text)) text = File.ReadAllText(text);
        return text.Trim().Split(',').Select(x => int.Parse(x.Trim(), CultureInfo.InvariantCulture)).ToArray();
    }
}
