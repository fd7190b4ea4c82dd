using System.Diagnostics;
using System.Globalization;
using MoeSharp.Diagnostics;
using MoeSharp.Kernels;
using MoeSharp.Models;
using MoeSharp.Tensors;
using MoeSharp.Training;

namespace MoeSharp.Bench;

/// <summary>
/// The synthetic experiment of Ma et al. 2018 (MMoE, section 3): two regression tasks whose correlation is set by a
/// knob p, MMoE against a shared-bottom model of about the same parameter count, several seeds per p. Prints a
/// markdown table (test MSE averaged over the two tasks, mean ± std over seeds, and MMoE's lead) and writes the lead
/// against p as an SVG. `mmoe [--seeds 5] [--epochs 20] [--train 30000] [--experts 8] [--expert-hidden 16] [--lr 2e-3] [--svg docs/mmoe.svg]`.
/// </summary>
internal static class MmoeBench
{
    public static int Run(string[] args)
    {
        Workers.Threads = 1;
        int seeds = TabularBench.Arg(args, "--seeds", 5), epochs = TabularBench.Arg(args, "--epochs", 20);
        int trainRows = TabularBench.Arg(args, "--train", 30000), testRows = 2000;
        string svg = TabularBench.Option(args, "--svg") ?? "docs/mmoe.svg";
        double[] correlations = [1.0, 0.9, 0.8, 0.5, 0.2, 0.0];
        var mmoeOptions = new MultiTaskOptions
        {
            Inputs = 100, Tasks = 2, Experts = TabularBench.Arg(args, "--experts", 8), ExpertHidden = TabularBench.Arg(args, "--expert-hidden", 16), TowerHidden = 8,
        };
        int mmoeParams = new MultiGateMoe(mmoeOptions).Arena.Length;
        // Shared bottom of width B: D·B + B + T·(B·Th + Th + Th + 1) parameters; pick B to match MMoE's count.
        int t = mmoeOptions.Tasks, th = mmoeOptions.TowerHidden, d = mmoeOptions.Inputs;
        int bottom = (int)Math.Round((mmoeParams - t * (2.0 * th + 1)) / (d + 1 + t * th));
        var sbOptions = mmoeOptions with { BottomHidden = bottom };
        int sbParams = new SharedBottom(sbOptions).Arena.Length;
        var train = new MultiTaskTrainOptions { Epochs = epochs, BatchSize = 128, LearningRate = float.Parse(TabularBench.Option(args, "--lr") ?? "2e-3", CultureInfo.InvariantCulture) };
        Console.WriteLine($"# MMoE: {mmoeOptions.Experts} experts × {mmoeOptions.ExpertHidden} hidden, towers {th}: {mmoeParams} parameters; shared bottom {bottom} wide: {sbParams} parameters");
        Console.WriteLine($"# data: d = {d}, {trainRows} training and {testRows} test rows per seed; AdamW lr {train.LearningRate}, batch {train.BatchSize}, {epochs} epochs");
        var rows = new List<(double P, double[] Mmoe, double[] Sb)>();
        var trainLoss = new List<(double[] Mmoe, double[] Sb)>();
        var clock = Stopwatch.StartNew();
        foreach (double p in correlations)
        {
            var mmoe = new double[seeds];
            var sb = new double[seeds];
            var mmoeTrain = new double[seeds];
            var sbTrain = new double[seeds];
            for (int s = 0; s < seeds; s++)
            {
                ulong seed = 1 + (ulong)s;
                var gen = new MmoeSynthetic(p, new MmoeSyntheticOptions { Inputs = d }, seed);
                var (x, y) = gen.Sample(trainRows, new Rng(seed * 7919));
                var (xt, yt) = gen.Sample(testRows, new Rng(seed * 7919 + 1));
                (mmoe[s], mmoeTrain[s]) = Fit(new MultiGateMoe(mmoeOptions with { Seed = seed }), x, y, xt, yt, train with { Seed = seed });
                (sb[s], sbTrain[s]) = Fit(new SharedBottom(sbOptions with { Seed = seed }), x, y, xt, yt, train with { Seed = seed });
                Console.WriteLine(FormattableString.Invariant($"mmoe p={p} seed={seed} mmoe_test={mmoe[s]:F4} shared_bottom_test={sb[s]:F4} mmoe_train={mmoeTrain[s]:F4} shared_bottom_train={sbTrain[s]:F4} elapsed_s={clock.Elapsed.TotalSeconds:F0}"));
            }
            rows.Add((p, mmoe, sb));
            trainLoss.Add((mmoeTrain, sbTrain));
        }
        Console.WriteLine();
        Console.WriteLine("| task correlation p | shared-bottom test MSE | MMoE test MSE | MMoE lead (SB − MMoE) | lead / SB | shared-bottom train MSE | MMoE train MSE |");
        Console.WriteLine("|---|---|---|---|---|---|---|");
        for (int i = 0; i < rows.Count; i++)
        {
            var (p, m, b) = rows[i];
            var lead = b.Zip(m, (u, v) => u - v).ToArray();
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {p:F1} | {MeanStd(b)} | {MeanStd(m)} | {MeanStd(lead)} | {lead.Average() / b.Average():P0} | {MeanStd(trainLoss[i].Sb)} | {MeanStd(trainLoss[i].Mmoe)} |"));
        }
        var ps = rows.Select(r => r.P).ToArray();
        string chart = SvgPlot.Lines("MMoE vs shared-bottom on the synthetic tasks (Ma et al. 2018)", "task correlation p", "test MSE (mean of the two tasks)",
        [
            new("shared-bottom", SvgPlot.Palette[1], ps, rows.Select(r => r.Sb.Average()).ToArray(), rows.Select(r => Std(r.Sb)).ToArray()),
            new("MMoE", SvgPlot.Palette[0], ps, rows.Select(r => r.Mmoe.Average()).ToArray(), rows.Select(r => Std(r.Mmoe)).ToArray()),
            new("lead (shared-bottom − MMoE)", SvgPlot.Palette[2], ps, rows.Select(r => r.Sb.Zip(r.Mmoe, (u, v) => u - v).Average()).ToArray(),
                rows.Select(r => Std(r.Sb.Zip(r.Mmoe, (u, v) => u - v).ToArray())).ToArray()),
        ]);
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(svg))!);
        File.WriteAllText(svg, chart);
        Console.WriteLine($"# wrote {Path.GetFullPath(svg)}; {clock.Elapsed.TotalSeconds:F0} s in all");
        return 0;
    }

    /// <summary>Trains; returns the test and the final training MSE, each averaged over the tasks.</summary>
    private static (double Test, double Train) Fit(IMultiTaskModel model, Tensor x, float[] y, Tensor xt, float[] yt, MultiTaskTrainOptions options)
    {
        MultiTaskTrainer.Train(model, x, y, options);
        return (MultiTaskTrainer.Evaluate(model, xt, yt).Average(), MultiTaskTrainer.Evaluate(model, x, y).Average());
    }

    private static double Std(double[] v)
    {
        double mean = v.Average();
        return Math.Sqrt(v.Sum(x => (x - mean) * (x - mean)) / Math.Max(1, v.Length - 1));
    }

    private static string MeanStd(double[] v) => string.Create(CultureInfo.InvariantCulture, $"{v.Average():F4} ± {Std(v):F4}");
}
