using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using MoeSharp.Formats;
using MoeSharp.Kernels;

namespace MoeSharp.Bench;

/// <summary>
/// Decode's figure of merit: matrix-vector GB/s of each weight format against a plain Vector512 read of the same
/// bytes in the same run, on 1 and N threads. Weights are sized well past the caches, so both are memory reads.
/// Prefill's: GFLOP/s of Y[T, N] = X[T, K]·Wᵀ for T = 64 and 512 over a [--prefill-rows, cols] slice of the same
/// weights, the row-exact MatMul and the prompt pass's Prefill interleaved, against the FMA peak measured in the same run.
/// Usage: quant [--mb 256] [--cols 4096] [--prefill-rows 1024 (0: none)] [--threads 1,2] [--formats Q8_0,MXFP4] [--cpu-time] [--ab-prefetch]
/// (--ab-prefetch: decode with and without prefetching the next rows, interleaved, as a speed-up ratio).
/// </summary>
internal static unsafe class QuantBench
{
    public static int Run(string[] args)
    {
        int mb = Option(args, "--mb", 256), cols = Option(args, "--cols", 4096), prefillRows = Option(args, "--prefill-rows", 1024);
        int formatsAt = Array.IndexOf(args, "--formats");
        string[]? only = formatsAt >= 0 && formatsAt + 1 < args.Length ? args[formatsAt + 1].Split(',') : null;
        // .NET 10 exposes 512-bit VNNI (vpdpbusd) only through AVX10.1; AvxVnni is the 256-bit VEX form.
        Console.WriteLine($"isa avx512bw={Avx512BW.IsSupported} avx512vbmi={Avx512Vbmi.IsSupported} avxvnni={AvxVnni.IsSupported} " +
                          $"avx10v1={Avx10v1.IsSupported} avx10v1_v512={Avx10v1.V512.IsSupported}");
        foreach (int threads in Harness.ThreadList(args))
        {
            s_cpuTime = threads == 1 && args.Contains("--cpu-time");
            double peak = FmaPeak.Measure(threads);
            Console.WriteLine($"fma-peak threads={threads} gflops={peak:F1}");
            using var limit = Workers.Limit(threads);
            foreach (var format in WeightFormats.All)
            {
                if (only is not null && !only.Contains(format.ToString(), StringComparer.OrdinalIgnoreCase)) continue;
                long rowBytes = format.RowBytes(cols);
                int rows = (int)((long)mb * (1 << 20) / rowBytes);
                var data = GC.AllocateUninitializedArray<byte>((int)(rows * rowBytes), pinned: true);
                // 64 quantized rows tiled over the matrix: real scales (no denormals, no NaN) without quantizing it all.
                const int Distinct = 64;
                var values = new float[cols];
                var rng = new Random(1);
                for (int r = 0; r < Distinct; r++)
                {
                    for (int i = 0; i < cols; i++) values[i] = (float)(rng.NextDouble() * 2 - 1);
                    Quantizer.QuantizeRow(format, values, data.AsSpan((int)(r * rowBytes), (int)rowBytes));
                }
                for (int r = Distinct; r < rows; r++)
                    data.AsSpan((int)(r % Distinct * rowBytes), (int)rowBytes).CopyTo(data.AsSpan((int)(r * rowBytes)));
                var matrix = new QuantizedMatrix(data, format, rows, cols);
                var x = new float[cols];
                for (int i = 0; i < cols; i++) x[i] = (float)(rng.NextDouble() - 0.5);
                var y = new float[rows];

                // The matvec and its read peer interleaved round by round, so that load from elsewhere hits both alike.
                var (matvec, read) = Interleaved(() => matrix.MatVec(x, y), () => Read(data), 7);
                double gb = data.Length / 1e9;
                Console.WriteLine($"quant-matvec format={format} threads={threads} rows={rows} cols={cols} mb={data.Length >> 20} " +
                    $"matvec_gbs={gb / matvec:F1} read_gbs={gb / read:F1} share={read / matvec:P0}");
                if (args.Contains("--ab-prefetch"))
                {
                    // The same matvec with and without prefetching the next rows, interleaved.
                    var (on, off) = Interleaved(() => { MatVecKernels.PrefetchAhead = true; matrix.MatVec(x, y); },
                        () => { MatVecKernels.PrefetchAhead = false; matrix.MatVec(x, y); }, 7);
                    MatVecKernels.PrefetchAhead = true;
                    Console.WriteLine($"quant-ab lever=prefetch format={format} threads={threads} cols={cols} on_gbs={gb / on:F1} off_gbs={gb / off:F1} speedup={off / on:F2}");
                }
                if (prefillRows == 0) continue;
                int n = Math.Min(rows, prefillRows);
                var slice = new QuantizedMatrix(data.AsMemory(0, (int)(n * rowBytes)), format, n, cols);
                foreach (int tokens in new[] { 64, 512 })
                {
                    var xs = new float[tokens * cols]; // [T, K]
                    for (int i = 0; i < xs.Length; i++) xs[i] = (float)(rng.NextDouble() - 0.5);
                    var ys = new float[tokens * n]; // [T, N]
                    // The row-exact product (decode rows batched) and the prompt pass's panel GEMM, interleaved.
                    var (exact, panels) = Interleaved(() => slice.MatMul(xs, ys, tokens), () => slice.Prefill(xs, ys, tokens), 3);
                    double flop = 2.0 * tokens * n * cols / 1e9;
                    Console.WriteLine($"quant-prefill format={format} threads={threads} tokens={tokens} rows={n} cols={cols} " +
                        $"exact_gflops={flop / exact:F1} prefill_gflops={flop / panels:F1} peak_share={flop / panels / peak:P0} speedup={exact / panels:F2}");
                }
            }
        }
        return 0;
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "clock_gettime")]
    private static extern int ClockGetTime(int clock, out TimeSpec time);

    private struct TimeSpec
    {
        public long Seconds, Nanoseconds;
    }

    /// <summary>
    /// Seconds on the clock the measurement uses: with --cpu-time on one thread, the calling thread's CPU time
    /// (Workers runs a one-thread loop inline), which other processes' preemptions do not inflate on a shared
    /// machine; otherwise wall time.
    /// </summary>
    private static double Now()
    {
        if (!s_cpuTime) return System.Diagnostics.Stopwatch.GetTimestamp() / (double)System.Diagnostics.Stopwatch.Frequency;
        ClockGetTime(3, out var t); // CLOCK_THREAD_CPUTIME_ID
        return t.Seconds + t.Nanoseconds * 1e-9;
    }

    private static bool s_cpuTime;

    /// <summary>Median seconds of each body, run in turn within every round after a warm-up of each.</summary>
    private static (double A, double B) Interleaved(Action a, Action b, int rounds)
    {
        Action[] bodies = [a, b];
        var times = new List<double>[bodies.Length];
        for (int i = 0; i < bodies.Length; i++)
        {
            times[i] = [];
            var warm = System.Diagnostics.Stopwatch.StartNew();
            do bodies[i](); while (warm.Elapsed.TotalSeconds < 0.2);
        }
        var total = System.Diagnostics.Stopwatch.StartNew();
        for (int round = 0; round < rounds || (total.Elapsed.TotalSeconds < 0.5 && round < 50 * rounds); round++)
            for (int i = 0; i < bodies.Length; i++)
            {
                double start = Now();
                bodies[i]();
                times[i].Add(Now() - start);
            }
        double Median(List<double> t) { t.Sort(); return t[t.Count / 2]; }
        return (Median(times[0]), Median(times[1]));
    }

    private static int Option(string[] args, string name, int fallback)
    {
        int i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? int.Parse(args[i + 1]) : fallback;
    }

    /// <summary>The bandwidth peer: XOR-fold every 64-byte line, split over the workers like the matvec's rows.</summary>
    private static void Read(byte[] data)
    {
        fixed (byte* p = data)
        {
            var job = new ReadJob { Data = p, Length = data.Length, Chunk = 1 << 20 };
            Workers.For((data.Length + job.Chunk - 1) / job.Chunk, job);
        }
    }

    private struct ReadJob : IWorkItem
    {
        public byte* Data;
        public long Length;
        public int Chunk;
        public static int Sink;

        public readonly void Invoke(int index)
        {
            long start = (long)index * Chunk, end = Math.Min(Length, start + Chunk);
            Vector512<int> a0 = default, a1 = default, a2 = default, a3 = default;
            long i = start;
            for (; i + 256 <= end; i += 256)
            {
                a0 ^= Vector512.Load((int*)(Data + i));
                a1 ^= Vector512.Load((int*)(Data + i + 64));
                a2 ^= Vector512.Load((int*)(Data + i + 128));
                a3 ^= Vector512.Load((int*)(Data + i + 192));
            }
            Sink ^= Vector512.Sum((a0 ^ a1) ^ (a2 ^ a3));
        }
    }
}
