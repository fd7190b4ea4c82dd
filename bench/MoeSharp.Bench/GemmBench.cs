using MoeSharp.Kernels;

namespace MoeSharp.Bench;

/// <summary>GEMM GFLOP/s for the square shapes and the MoE expert shapes, at each thread count, plus the FMA peak.</summary>
internal static class GemmBench
{
    private static readonly (string Layout, int M, int N, int K)[] Cases =
    [
        ("NN", 512, 512, 512), ("NN", 1024, 1024, 1024), ("NN", 2048, 2048, 2048),
        ("NN", 2048, 1024, 512), ("NT", 2048, 512, 1024), ("TN", 512, 1024, 2048),
    ];

    /// <summary>The char-LM's shapes (768 tokens, width 128, MLP 512): forward x·Wᵀ, input grad dy·W, weight grad dyᵀ·x.</summary>
    private static readonly (string Layout, int M, int N, int K)[] SmallCases =
    [
        ("NT", 768, 128, 128), ("NN", 768, 128, 128), ("TN", 128, 128, 768),
        ("NT", 768, 512, 128), ("TN", 512, 128, 768), ("TN", 128, 512, 768),
    ];

    public static int Run(string[] args)
    {
        Console.WriteLine($"# vector path: {Gemm.VectorBits}-bit");
        FmaPeak.Report();
        foreach (int threads in Harness.ThreadList(args))
        {
            using var limit = Workers.Limit(threads);
            foreach (var (layout, m, n, k) in args.Contains("--small") ? SmallCases : Cases)
            {
                bool ta = layout[0] == 'T', tb = layout[1] == 'T';
                var rng = new Random(1);
                var a = new float[m * k];
                var b = new float[k * n];
                var c = new float[m * n];
                for (int i = 0; i < a.Length; i++) a[i] = (float)rng.NextDouble() - 0.5f;
                for (int i = 0; i < b.Length; i++) b[i] = (float)rng.NextDouble() - 0.5f;
                double s = Harness.Median(() => Gemm.Multiply(a, b, c, m, n, k, ta, tb), repeats: 5);
                Console.WriteLine($"gemm impl=moesharp layout={layout} m={m} n={n} k={k} threads={threads} gflops={2.0 * m * n * k / s / 1e9:F1}");
            }
        }
        return 0;
    }
}
