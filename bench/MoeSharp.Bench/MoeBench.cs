using MoeSharp.Autograd;
using MoeSharp.Kernels;
using MoeSharp.Layers;
using MoeSharp.Nn;
using MoeSharp.Tensors;

namespace MoeSharp.Bench;

/// <summary>
/// The MoE layer's throughput in the shape of bench/peer/moe_layer.py: T=2048, D=512, H=1024, SwiGLU, E=8, K=2,
/// forward and forward+backward at 1 and 2 threads, then forward+backward at 2 threads for E ∈ {8,16,32,64}
/// (active parameters fixed). GFLOP/s count active FLOPs: forward 2·T·K·3·D·H + 2·T·D·E, and 3× that for fwd+bwd.
/// </summary>
internal static class MoeBench
{
    private static bool Profile;

    public static int Run(string[] args)
    {
        Profile = args.Contains("--profile");
        const int t = 2048, d = 512, h = 1024, k = 2;
        var threads = Harness.ThreadList(args);
        foreach (int n in threads)
            foreach (string pass in new[] { "fwd", "fwdbwd" })
                Measure(pass, t, d, h, 8, k, n);
        if (!args.Contains("--no-sweep"))
            foreach (int e in new[] { 8, 16, 32, 64 })
                if (e != 8 || !threads.Contains(2)) Measure("fwdbwd", t, d, h, e, k, 2);
        return 0;
    }

    private static void Measure(string pass, int t, int d, int h, int e, int k, int threads)
    {
        using var limit = Workers.Limit(threads);
        var arena = new ParameterArena();
        var layer = new MoeLayer(new MoeOptions { Dim = d, Experts = e, TopK = k, ExpertHidden = h, LoadBalanceCoef = 0, ZLossCoef = 0 }, arena, "moe");
        arena.Build(1);
        var rng = new Rng(2);
        var x = new Tensor(t, d);
        rng.FillNormal(x.Span, 0, 1);
        var dy = new float[t * d];
        rng.FillNormal(dy, 0, 1);
        var tape = new Tape();
        bool backward = pass == "fwdbwd";
        x.RequiresGrad = backward;
        double seconds = Harness.Median(() =>
        {
            if (backward)
            {
                arena.ZeroGrad();
                var r = layer.Forward(tape, x);
                tape.Backward(r.Output, dy);
            }
            else
            {
                using (tape.NoGrad()) layer.Forward(tape, x);
            }
            tape.Reset();
        }, repeats: 5);
        double flops = 2.0 * t * k * 3 * d * h + 2.0 * t * d * e;
        if (backward) flops *= 3;
        Console.WriteLine($"moe impl=moesharp pass={pass} T={t} D={d} H={h} E={e} K={k} threads={threads} tok_s={t / seconds:F0} gflops={flops / seconds / 1e9:F1}");
        if (!Profile) return;
        var profile = new OpProfile();
        tape.Profile = profile;
        const int steps = 5;
        for (int i = 0; i < steps; i++)
        {
            profile.Mark();
            var r = layer.Forward(tape, x);
            if (backward) tape.Backward(r.Output, dy);
            tape.Reset();
        }
        tape.Profile = null;
        foreach (var (op, f, b, _) in profile.Rows)
            Console.WriteLine($"#   {op,-18} fwd {f / steps * 1e3,8:F2} ms  bwd {b / steps * 1e3,8:F2} ms");
    }
}
