using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using MoeSharp.Kernels;

namespace MoeSharp.Bench;

/// <summary>
/// The machine's fp32 FMA peak: a tight Vector512 loop with 12 independent accumulators (enough to cover the FMA
/// latency on two pipes), run on 1 and on N threads. GEMM figures are quoted as a ratio to this, measured in the same run.
/// </summary>
internal static class FmaPeak
{
    private const long Iterations = 50_000_000;

    public static void Report()
    {
        foreach (int threads in new[] { 1, Environment.ProcessorCount }.Distinct())
            Console.WriteLine($"fma-peak threads={threads} gflops={Measure(threads):F1}");
    }

    public static double Measure(int threads)
    {
        double best = 0;
        for (int rep = 0; rep < 3; rep++)
        {
            var sw = System.Diagnostics.Stopwatch.StartNew();
            float sink = 0;
            Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, _ => sink += Loop(Iterations));
            double flops = 2.0 * 16 * 12 * Iterations * threads;
            best = Math.Max(best, flops / sw.Elapsed.TotalSeconds / 1e9);
            GC.KeepAlive(sink);
        }
        return best;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static float Loop(long n)
    {
        var m = Vector512.Create(0.999999f);
        var a = Vector512.Create(1e-7f);
        Vector512<float> c0 = Vector512.Create(1f), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0,
            c6 = c0, c7 = c0, c8 = c0, c9 = c0, c10 = c0, c11 = c0;
        for (long i = 0; i < n; i++)
        {
            c0 = Vector512.FusedMultiplyAdd(c0, m, a); c1 = Vector512.FusedMultiplyAdd(c1, m, a);
            c2 = Vector512.FusedMultiplyAdd(c2, m, a); c3 = Vector512.FusedMultiplyAdd(c3, m, a);
            c4 = Vector512.FusedMultiplyAdd(c4, m, a); c5 = Vector512.FusedMultiplyAdd(c5, m, a);
            c6 = Vector512.FusedMultiplyAdd(c6, m, a); c7 = Vector512.FusedMultiplyAdd(c7, m, a);
            c8 = Vector512.FusedMultiplyAdd(c8, m, a); c9 = Vector512.FusedMultiplyAdd(c9, m, a);
            c10 = Vector512.FusedMultiplyAdd(c10, m, a); c11 = Vector512.FusedMultiplyAdd(c11, m, a);
        }
        var s = c0 + c1 + c2 + c3 + c4 + c5 + c6 + c7 + c8 + c9 + c10 + c11;
        return Vector512.Sum(s);
    }
}
