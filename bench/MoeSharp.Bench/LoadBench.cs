using System.Diagnostics;
using System.Globalization;
using MoeSharp.Formats;
using MoeSharp.IO;
using MoeSharp.Kernels;
using MoeSharp.Models;

namespace MoeSharp.Bench;

/// <summary>
/// `load`: what loading a model costs, as `moe generate` loads it (ModelStore.Open in place, optionally quantized or
/// paged). The first open of the process includes the JIT; the repeats (--repeat N, same process) show what is left
/// once the code is compiled, so the two together split a load into JIT and work. Then the first greedy token.
///   load --model PATH [--threads T] [--repeat N] [--quantize F] [--max-memory GB]
/// Prints one line: load_s (first open), warm_s (median of the repeats), first_token_s, cpu_s (process CPU time of
/// the first open) and alloc_mb (managed bytes the first open allocated).
/// </summary>
internal static class LoadBench
{
    public static int Run(string[] args)
    {
        string Arg(string key, string fallback)
        {
            int i = Array.IndexOf(args, key);
            return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
        }
        string path = Arg("--model", "");
        if (path.Length == 0) throw new ArgumentException("load: missing --model");
        int threads = int.Parse(Arg("--threads", "2"), CultureInfo.InvariantCulture);
        int repeat = int.Parse(Arg("--repeat", "0"), CultureInfo.InvariantCulture);
        using var limit = Workers.Limit(threads);
        WeightFormat? quantize = null;
        string q = Arg("--quantize", "");
        foreach (var f in WeightFormats.All)
            if (f.ToString().Equals(q, StringComparison.OrdinalIgnoreCase)) quantize = f;
        if (q.Length > 0 && quantize is null) throw new ArgumentException($"load: unknown --quantize '{q}'");
        string mm = Arg("--max-memory", "");
        long? maxMemory = mm.Length > 0 ? (long)(double.Parse(mm, CultureInfo.InvariantCulture) * 1e9) : null;
        var options = new ModelLoadOptions { MaxContext = 64, InPlace = true, Quantize = quantize, MaxMemoryBytes = maxMemory };

        var process = Process.GetCurrentProcess();
        var cpu0 = process.TotalProcessorTime;
        long alloc0 = GC.GetTotalAllocatedBytes();
        var clock = Stopwatch.StartNew();
        var model = ModelStore.Open(path, options);
        double load = clock.Elapsed.TotalSeconds;
        process.Refresh();
        double cpu = (process.TotalProcessorTime - cpu0).TotalSeconds;
        double alloc = (GC.GetTotalAllocatedBytes() - alloc0) / 1e6;
        clock.Restart();
        foreach (var _ in Generator.Stream(model, [1, 17, 42, 99, 5], 1, new SamplingOptions { Temperature = 0 })) break;
        double first = clock.Elapsed.TotalSeconds;
        model.Dispose();
        var warm = new double[repeat]; // [repeat] seconds per open once the JIT has compiled the load
        for (int r = 0; r < repeat; r++)
        {
            clock.Restart();
            ModelStore.Open(path, options).Dispose();
            warm[r] = clock.Elapsed.TotalSeconds;
        }
        Array.Sort(warm);
        string warmText = repeat > 0 ? warm[repeat / 2].ToString("F3", CultureInfo.InvariantCulture) : "-";
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"load model={Path.GetFileName(path.TrimEnd('/'))} threads={threads} quantize={q} load_s={load:F3} warm_s={warmText} first_token_s={first:F3} cpu_s={cpu:F3} alloc_mb={alloc:F1}"));
        return 0;
    }
}
