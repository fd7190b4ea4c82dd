using System.Diagnostics;
using System.Globalization;
using MoeSharp.Classic.Data;
using MoeSharp.Kernels;
using MoeSharp.Layers;
using MoeSharp.Models;
using MoeSharp.Routing;
using MoeSharp.Tensors;
using MoeSharp.Training;

namespace MoeSharp.Bench;

/// <summary>
/// Image-patch routing on the 8×8 digits: 4×4-pixel patches as tokens, one routed FFN, by stratified 5-fold
/// cross-validation. Compares routed experts with dense FFNs of the same active and of the same total size, and prints,
/// for the first fold, which expert the patches at each position go to. `patch [--epochs 60] [--folds 5]`.
/// </summary>
internal static class PatchBench
{
    public static int Run(string[] args)
    {
        using var limit = Workers.Limit(1);
        int folds = TabularBench.Arg(args, "--folds", 5), epochs = TabularBench.Arg(args, "--epochs", 60);
        string path = Path.Combine(TabularBench.FindShared(), "datasets", "tabular", "digits.csv");
        if (!File.Exists(path))
        {
            Console.WriteLine($"# {path} not found");
            return 1;
        }
        var table = CsvTable.Load(path);
        int n = table.Rows, label = table.ColumnIndex("label"), pixels = table.Columns.Length - 1;
        var images = new Tensor(n, pixels); // [N, 64], pixels scaled from 0..16 to 0..1
        var labels = new int[n];
        for (int r = 0; r < n; r++)
        {
            for (int c = 0, j = 0; c < table.Columns.Length; c++)
                if (c != label) images[r * pixels + j++] = (float)(table[r, c] / 16);
            labels[r] = (int)table[r, label];
        }
        var moe = new MoeOptions { Experts = 4, TopK = 1, ExpertHidden = 64, Router = RouterKind.SoftmaxTopK, LoadBalanceCoef = 0.01f, ZLossCoef = 0 };
        var candidates = new (string Name, PatchMoeOptions Options)[]
        {
            ("dense FFN of 64 (same active size)", new PatchMoeOptions { Moe = moe with { Experts = 1, LoadBalanceCoef = 0 } }),
            ("dense FFN of 256 (same total size)", new PatchMoeOptions { Moe = moe with { Experts = 1, ExpertHidden = 256, LoadBalanceCoef = 0 } }),
            ("4 experts of 64, top-1", new PatchMoeOptions { Moe = moe }),
            ("8 experts of 32, top-2", new PatchMoeOptions { Moe = moe with { Experts = 8, TopK = 2, ExpertHidden = 32 } }),
        };
        var train = new PatchMoeTrainOptions { Epochs = epochs };
        Console.WriteLine($"# digits: {n} images of 8×8, 4×4 patches (4 tokens per image), d = 32; AdamW lr {train.LearningRate}, batch {train.BatchSize}, {epochs} epochs; stratified {folds}-fold CV, seed 0");
        var split = Folds.Split(n, folds, 0, labels);
        var scores = candidates.Select(_ => new List<double>()).ToArray();
        var clock = Stopwatch.StartNew();
        for (int f = 0; f < folds; f++)
        {
            var trainRows = Folds.Complement(n, split[f]);
            var (xTrain, yTrain) = Rows(images, labels, trainRows);
            var (xTest, yTest) = Rows(images, labels, split[f]);
            for (int m = 0; m < candidates.Length; m++)
            {
                var model = new PatchMoeClassifier(candidates[m].Options with { Seed = 1 + (ulong)f });
                PatchMoeTrainer.Train(model, xTrain, yTrain, train with { Seed = 1 + (ulong)f });
                double accuracy = model.Predict(xTest).Zip(yTest, (a, b) => a == b ? 1.0 : 0).Average();
                scores[m].Add(accuracy);
                Console.WriteLine(FormattableString.Invariant($"patch fold={f} model=\"{candidates[m].Name}\" accuracy={accuracy:F4} parameters={model.Arena.Length} elapsed_s={clock.Elapsed.TotalSeconds:F0}"));
                if (f == 0 && m == 2) PrintRouting(model, xTest);
            }
        }
        Console.WriteLine();
        Console.WriteLine($"| model | parameters | digits accuracy ({folds}-fold) |");
        Console.WriteLine("|---|---|---|");
        for (int m = 0; m < candidates.Length; m++)
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {candidates[m].Name} | {new PatchMoeClassifier(candidates[m].Options).Arena.Length:N0} | {scores[m].Average():F3} ± {Std(scores[m]):F3} |"));
        Console.WriteLine($"# {clock.Elapsed.TotalSeconds:F0} s in all");
        return 0;
    }

    /// <summary>Which expert each patch position's tokens go to.</summary>
    private static void PrintRouting(PatchMoeClassifier model, Tensor x)
    {
        var counts = model.PositionExpertCounts(x);
        Console.WriteLine("# fold 0, 4 experts top-1: share of each patch position's tokens per expert");
        string[] positions = ["top-left", "top-right", "bottom-left", "bottom-right"];
        for (int p = 0; p < counts.GetLength(0); p++)
        {
            long total = 0;
            for (int e = 0; e < counts.GetLength(1); e++) total += counts[p, e];
            Console.WriteLine("#   " + positions[p].PadRight(13) + string.Concat(Enumerable.Range(0, counts.GetLength(1)).Select(e => string.Create(CultureInfo.InvariantCulture, $"  e{e} {(double)counts[p, e] / total,5:P0}"))));
        }
    }

    private static (Tensor X, int[] Y) Rows(Tensor images, int[] labels, int[] rows)
    {
        int d = images.Dim(1);
        var x = new Tensor(rows.Length, d);
        for (int i = 0; i < rows.Length; i++) images.Span.Slice(rows[i] * d, d).CopyTo(x.Span.Slice(i * d, d));
        return (x, rows.Select(r => labels[r]).ToArray());
    }

    private static double Std(List<double> v)
    {
        double mean = v.Average();
        return Math.Sqrt(v.Sum(x => (x - mean) * (x - mean)) / Math.Max(1, v.Count - 1));
    }
}
