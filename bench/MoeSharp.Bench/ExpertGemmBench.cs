using MoeSharp.Kernels;

namespace MoeSharp.Bench;

/// <summary>
/// Serial GEMM GFLOP/s at the MoE layer's expert shapes (D=512, H=1024) for a given number of rows per expert:
/// the six products of one expert's forward and backward, one thread, best of rounds in thread CPU time.
/// `expert-gemm --rows 64,512 [--experts 64] [--decode] [--ab prefetch]`.
/// </summary>
internal static unsafe class ExpertGemmBench
{
    public static int Run(string[] args)
    {
        const int d = 512, h = 1024;
        int at = Array.IndexOf(args, "--rows");
        int[] rowsList = at >= 0 ? args[at + 1].Split(',').Select(int.Parse).ToArray() : [64, 512];
        var rng = new Random(1);
        float[] Fill(int n) { var a = new float[n]; for (int i = 0; i < n; i++) a[i] = (float)rng.NextDouble() - 0.5f; return a; }
        // --experts E: E distinct weight matrices used in turn, so at E = 64 (128 MiB) they come from memory as in the layer.
        int at2 = Array.IndexOf(args, "--experts");
        int experts = at2 >= 0 ? int.Parse(args[at2 + 1]) : 1;
        var w = Fill(h * d * experts);
        int maxRows = rowsList.Max();
        var x = Fill(maxRows * h);
        var c = Fill(Math.Max(maxRows * h, h * d));
        // name, transA, transB, m(rows?), n, k, accumulate
        var cases = new (string Name, Func<int, (bool Ta, bool Tb, int M, int N, int K, bool Acc, int Ldb)> Shape)[]
        {
            ("fwd  Xs·W1ᵀ [n,D]x[H,D]ᵀ", n => (false, true, n, h, d, false, d)),
            ("fwd  Act·W2ᵀ [n,H]x[D,H]ᵀ", n => (false, true, n, d, h, false, h)),
            ("bwd  dYs·W2 [n,D]x[D,H]", n => (false, false, n, h, d, false, h)),
            ("bwd  dG·W1 [n,H]x[H,D]", n => (false, false, n, d, h, true, d)),
            ("bwd  dGᵀ·Xs [H,n]ᵀx[n,D]", n => (true, false, h, d, n, true, d)),
            ("bwd  dYsᵀ·Act [D,n]ᵀx[n,H]", n => (true, false, d, h, n, true, h)),
        };
        if (args.Contains("--decode"))
            cases =
            [
                ("dec x·Wᵀ [1,128]x[512,128]ᵀ", n => (false, true, n, 512, 128, false, 128)),
                ("dec x·Wᵀ [1,512]x[128,512]ᵀ", n => (false, true, n, 128, 512, false, 512)),
                ("dec x·Wᵀ [1,128]x[128,128]ᵀ", n => (false, true, n, 128, 128, false, 128)),
                ("dec x·Wᵀ [1,128]x[65,128]ᵀ", n => (false, true, n, 65, 128, false, 128)),
                ("dec x·Wᵀ [1,1024]x[1024,1024]ᵀ", n => (false, true, n, 1024, 1024, false, 1024)),
            ];
        const int rounds = 7;
        // --ab prefetch: each round times the serial path packing all of B first, then with the per-panel prefetch.
        bool[] variants = args.Contains("--ab") ? [false, true] : [Gemm.PrefetchB];
        foreach (var (name, shape) in cases)
            foreach (int rows in rowsList)
            {
                var (ta, tb, m, n, k, acc, ldb) = shape(rows);
                var best = new double[variants.Length];
                Array.Fill(best, double.MaxValue);
                fixed (float* pa = x, pb = w, pc = c)
                {
                    int lda = ta ? m : k;
                    for (int r = 0; r < rounds + 2; r++)
                        for (int v = 0; v < variants.Length; v++)
                        {
                            Gemm.PrefetchB = variants[v];
                            // CPU time of this thread, not wall time: on a shared machine the wall clock also counts other processes.
                            double c0 = MoeAbBench.ThreadCpu();
                            int reps = 0;
                            do { Gemm.MultiplyCore(pa, lda, ta, pb + (long)(reps % experts) * h * d, ldb, tb, pc, n, m, n, k, acc, false); reps++; } while (MoeAbBench.ThreadCpu() - c0 < 0.03);
                            if (r >= 2) best[v] = Math.Min(best[v], (MoeAbBench.ThreadCpu() - c0) / reps);
                        }
                }
                Gemm.PrefetchB = true;
                for (int v = 0; v < variants.Length; v++)
                    Console.WriteLine($"{name,-30} rows={rows,4} {(variants[v] ? "prefetch" : "pack-all"),-8} {best[v] * 1e3,7:F3} ms  {2.0 * m * n * k / best[v] / 1e9,6:F1} GFLOP/s");
            }
        return 0;
    }
}
