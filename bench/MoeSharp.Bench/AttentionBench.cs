using MoeSharp.Kernels;

namespace MoeSharp.Bench;

/// <summary>Fused causal attention forward and backward at the char-LM's sizes (B=12, T=64, 4 heads of 32).</summary>
internal static class AttentionBench
{
    public static int Run(string[] args)
    {
        var s = new AttentionShape(12, 64, 64, 4, 4, 32);
        int n = s.Batch * s.QueryLength * s.Heads * s.HeadDim;
        var rng = new Random(1);
        float[] R() => Enumerable.Range(0, n).Select(_ => (float)rng.NextDouble() - 0.5f).ToArray();
        float[] q = R(), k = R(), v = R(), o = new float[n], dq = new float[n], dk = new float[n], dv = new float[n], d = R();
        var lse = new float[s.Batch * s.Heads * s.QueryLength];
        double flops = 4.0 * s.Batch * s.Heads * s.QueryLength * (s.QueryLength + 1) / 2 * s.HeadDim;
        foreach (int threads in Harness.ThreadList(args))
        {
            using var limit = Workers.Limit(threads);
            double f = Harness.Median(() => Attention.Forward(q, k, v, o, lse, s), 20);
            double b = Harness.Median(() => Attention.Backward(d, q, k, v, o, lse, dq, dk, dv, s), 20);
            Console.WriteLine($"attention impl=moesharp pass=fwd threads={threads} ms={f * 1e3:F3} gflops={flops / f / 1e9:F1}");
            Console.WriteLine($"attention impl=moesharp pass=bwd threads={threads} ms={b * 1e3:F3} gflops={2 * flops / b / 1e9:F1}");
        }
        return 0;
    }
}
