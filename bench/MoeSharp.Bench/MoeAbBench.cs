using System.Diagnostics;
using MoeSharp.Autograd;
using MoeSharp.Dispatch;
using MoeSharp.Kernels;
using MoeSharp.Layers;
using MoeSharp.Nn;
using MoeSharp.Tensors;

namespace MoeSharp.Bench;

/// <summary>
/// In-process interleaved comparison of the MoE layer (T=2048, D=512, H=1024, K=2) across expert counts and
/// variants: every round runs each configuration once, so load from other processes hits them alike; prints the
/// median and minimum of the wall time, and the caller thread's CPU time (at 1 thread, what an idle machine would
/// show). `moe-ab --experts 8,64 --threads 1 --rounds 9 [--fwd] [--ab lazy-zero|prefetch|columns|round]`.
/// </summary>
internal static unsafe class MoeAbBench
{
    [System.Runtime.InteropServices.DllImport("libc")]
    private static extern int clock_gettime(int clock, long* ts);

    /// <summary>CPU seconds of the calling thread (CLOCK_THREAD_CPUTIME_ID): at 1 thread, the time the step would take on an idle machine.</summary>
    public static double ThreadCpu()
    {
        long* ts = stackalloc long[2];
        clock_gettime(3, ts);
        return ts[0] + ts[1] * 1e-9;
    }

    /// <summary>Variants to compare: a name and a switch to set on the layer before each run.</summary>
    private static List<(string Name, Action<MoeLayer> Set)> Variants(string[] args) => Arg(args, "--ab", "") switch
    {
        // Lazy gradient zeroing of the stacked expert weights against clearing them in ZeroGrad.
        "lazy-zero" => [("eager-zero", l => Lazy(l, false)), ("lazy-zero", l => Lazy(l, true))],
        // Serial GEMMs pack all of B before computing, or pack each panel at first use with the next one prefetched.
        "prefetch" => [("pack-all", _ => Gemm.PrefetchB = false), ("prefetch", _ => Gemm.PrefetchB = true)],
        // This round's two changes together: before, pack all of B and 128-column weight-gradient items; after, both changes.
        "round" => [("before", _ => { Gemm.PrefetchB = false; ExpertFfnOp.ColumnBlockOverride = 128; }),
                    ("after", _ => { Gemm.PrefetchB = true; ExpertFfnOp.ColumnBlockOverride = 0; })],
        // Columns of H per weight-gradient item: each item packs the expert's Xs (and dYsᵀ) again.
        "columns" => [("col128", _ => ExpertFfnOp.ColumnBlockOverride = 128), ("col256", _ => ExpertFfnOp.ColumnBlockOverride = 256), ("col512", _ => ExpertFfnOp.ColumnBlockOverride = 512), ("col-auto", _ => ExpertFfnOp.ColumnBlockOverride = 0)],
        _ => [("base", _ => { })],
    };

    private static void Lazy(MoeLayer layer, bool lazy)
    {
        layer.Bank.W1.ZeroLazily = layer.Bank.W2.ZeroLazily = lazy;
        if (layer.Bank.W3 is { } w3) w3.ZeroLazily = lazy;
    }

    public static int Run(string[] args)
    {
        const int t = 2048, d = 512, h = 1024, k = 2;
        int[] experts = Arg(args, "--experts", "8,64").Split(',').Select(int.Parse).ToArray();
        int threads = int.Parse(Arg(args, "--threads", "2"));
        int rounds = int.Parse(Arg(args, "--rounds", "7"));
        bool backward = !args.Contains("--fwd");
        using var limit = Workers.Limit(threads);
        var variants = Variants(args);
        var setups = new List<(string Name, Action Set, Action Step)>();
        foreach (int e in experts)
        {
            var arena = new ParameterArena();
            var layer = new MoeLayer(new MoeOptions { Dim = d, Experts = e, TopK = k, ExpertHidden = h, LoadBalanceCoef = 0, ZLossCoef = 0 }, arena, "moe");
            arena.Build(1);
            var rng = new Rng(2);
            var x = new Tensor(t, d);
            rng.FillNormal(x.Span, 0, 1);
            var dy = new float[t * d];
            rng.FillNormal(dy, 0, 1);
            var tape = new Tape();
            x.RequiresGrad = backward;
            foreach (var (vn, set) in variants)
                setups.Add(($"E={e} {vn}", () => set(layer), () =>
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
                }));
        }
        var times = setups.Select(_ => new List<double>()).ToArray();
        var cpu = setups.Select(_ => new List<double>()).ToArray();
        for (int r = -1; r < rounds; r++)
            for (int j = 0; j < setups.Count; j++)
            {
                int i = (j + Math.Max(r, 0)) % setups.Count; // rotate the order each round
                setups[i].Set();
                double c0 = ThreadCpu();
                var sw = Stopwatch.StartNew();
                setups[i].Step();
                if (r >= 0) { times[i].Add(sw.Elapsed.TotalSeconds); cpu[i].Add(ThreadCpu() - c0); }
            }
        double flops = 2.0 * t * k * 3 * d * h * (backward ? 3 : 1);
        for (int i = 0; i < setups.Count; i++)
        {
            var s = times[i].Order().ToArray();
            var c = cpu[i].Order().ToArray();
            Console.WriteLine($"{setups[i].Name,-16} {(backward ? "fwdbwd" : "fwd")} threads={threads} wall median {s[s.Length / 2] * 1e3,7:F1} ms  min {s[0] * 1e3,7:F1} ms" +
                $"  caller-cpu median {c[c.Length / 2] * 1e3,7:F1} ms ({flops / c[c.Length / 2] / 1e9:F0} GFLOP/s)");
        }
        return 0;
    }

    private static string Arg(string[] args, string name, string fallback)
    {
        int i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
    }
}
