using System.Diagnostics;
using System.Globalization;
using MoeSharp.Classic.Data;
using MoeSharp.Classic.Diagnostics;
using MoeSharp.Classic.Experts;
using MoeSharp.Classic.Models;
using MoeSharp.Classic.Training;
using MoeSharp.Kernels;
using MoeSharp.Tensors;

namespace MoeSharp.Bench;

/// <summary>
/// Classic mixtures against single models on the shared tabular sets, by 5-fold cross-validation (stratified for
/// classification; standardisation fitted on each training fold). Prints a markdown table of mean ± std over folds:
/// accuracy for digits, breast_cancer and wine, R² for diabetes. `tabular [--datasets a,b] [--folds 5] [--seed 0]`.
/// </summary>
internal static class TabularBench
{
    private sealed record Dataset(string Name, string Target, TabularTask Task);

    /// <summary>A model recipe bound to a training fold: fits on it and returns its predictions [N,O] on the test rows.</summary>
    private sealed record Candidate(string Name, Func<TabularData, float[]> FitPredict);

    private static readonly Dataset[] Sets =
    [
        new("digits", "label", TabularTask.Classification),
        new("breast_cancer", "label", TabularTask.Classification),
        new("wine", "label", TabularTask.Classification),
        new("diabetes", "target", TabularTask.Regression),
    ];

    /// <summary>Width of one MLP expert, and the mixture's expert count.</summary>
    private const int ExpertHidden = 16, Experts = 4;

    public static int Run(string[] args)
    {
        using var limit = Workers.Limit(1); // tiny matrices: a second thread costs more in hand-off than it saves
        int folds = Arg(args, "--folds", 5);
        ulong seed = (ulong)Arg(args, "--seed", 0);
        var names = Option(args, "--datasets")?.Split(',') ?? Sets.Select(s => s.Name).ToArray();
        string root = FindShared();
        var results = new Dictionary<(string Model, string Set), List<double>>();
        var order = new List<string>();
        foreach (var set in Sets.Where(s => names.Contains(s.Name)))
        {
            string path = Path.Combine(root, "datasets", "tabular", set.Name + ".csv");
            if (!File.Exists(path))
            {
                Console.WriteLine($"# {set.Name}: {path} not found, skipped");
                continue;
            }
            var table = CsvTable.Load(path);
            var all = TabularSchema.Fit(table, set.Target, set.Task).Encode(table);
            var split = Folds.Split(table.Rows, folds, seed, all.IsClassification ? all.Labels : null);
            int matched = MatchedHidden(all.Features, all.Outputs);
            Console.WriteLine($"# {set.Name}: {table.Rows} rows, {all.Features} features; the size-matched MLP has {matched} hidden units " +
                $"({matched * (all.Features + 1) + all.Outputs * (matched + 1)} parameters against the mixture's {Experts * (ExpertHidden * (all.Features + 1) + all.Outputs * (ExpertHidden + 1)) + Experts * (all.Features + 1)})");
            var clock = Stopwatch.StartNew();
            for (int f = 0; f < folds; f++)
            {
                var trainRows = Folds.Complement(table.Rows, split[f]);
                var schema = TabularSchema.Fit(table, set.Target, set.Task, rows: trainRows);
                var encoded = schema.Encode(table);
                var train = encoded.Subset(trainRows);
                var test = encoded.Subset(split[f]);
                foreach (var c in Candidates(train, seed + (ulong)f))
                {
                    var sw = Stopwatch.StartNew();
                    var output = c.FitPredict(test);
                    double score = test.IsClassification
                        ? MixtureReport.Evaluate(test, output, Enumerable.Range(0, test.Rows).ToArray(), 1)
                        : MixtureReport.RSquared(test.Targets, output);
                    if (!results.TryGetValue((c.Name, set.Name), out var list)) results[(c.Name, set.Name)] = list = [];
                    list.Add(score);
                    if (!order.Contains(c.Name)) order.Add(c.Name);
                    Console.WriteLine(FormattableString.Invariant($"tabular set={set.Name} fold={f} model=\"{c.Name}\" score={score:F4} seconds={sw.Elapsed.TotalSeconds:F2}"));
                }
            }
            Console.WriteLine(FormattableString.Invariant($"# {set.Name}: {folds} folds in {clock.Elapsed.TotalSeconds:F0} s"));
        }
        var sets = Sets.Where(s => results.Keys.Any(k => k.Set == s.Name)).ToArray();
        Console.WriteLine();
        Console.WriteLine("| model | " + string.Join(" | ", sets.Select(s => $"{s.Name} ({(s.Task == TabularTask.Classification ? "accuracy" : "R²")})")) + " |");
        Console.WriteLine("|---|" + string.Concat(sets.Select(_ => "---|")));
        foreach (var model in order)
            Console.WriteLine($"| {model} | " + string.Join(" | ", sets.Select(s => results.TryGetValue((model, s.Name), out var v) ? MeanStd(v) : "")) + " |");
        return 0;
    }

    private static IEnumerable<Candidate> Candidates(TabularData train, ulong seed)
    {
        int d = train.Features, o = train.Outputs;
        var task = train.Task;
        bool classes = train.IsClassification;
        var mlp = new MlpExpertOptions { Hidden = ExpertHidden, Epochs = 100, BatchSize = 32, LearningRate = 5e-3f, WeightDecay = 1e-3f, Seed = seed };
        var tree = classes ? new TreeExpertOptions { MaxDepth = 8, MinSamplesLeaf = 2 } : new TreeExpertOptions { MaxDepth = 4, MinSamplesLeaf = 10 };
        int matched = MatchedHidden(d, o);
        var phases = new MixtureTrainOptions { Phases = [MixturePhase.Experts, MixturePhase.Gate, MixturePhase.Joint], GateEpochs = 30, JointEpochs = 60, BatchSize = 32, LearningRate = 5e-3f, WeightDecay = 1e-3f, Seed = seed };
        var ones = Enumerable.Repeat(1f, train.Rows).ToArray();

        float[] Alone(IExpert e, TabularData test)
        {
            e.Fit(train, ones);
            var y = new float[test.Rows * o];
            e.Predict(test.X.Span, y);
            return y;
        }

        float[] Mixture(IEnumerable<IExpert> experts, TabularData test, MixtureTrainOptions options)
        {
            var model = new MixtureOfExperts(MixtureOptions.For(train), experts);
            new MixtureTrainer(model, options).Fit(train);
            return model.Predict(test.X.Span).Output;
        }

        // One name per model on every set: classification and regression baselines share a row.
        yield return new Candidate("logistic / linear regression", t => Alone(new LinearExpert(d, o, task), t));
        yield return new Candidate("tree (CART)", t => Alone(new TreeExpert(d, o, task, tree), t));
        yield return new Candidate($"MLP, {ExpertHidden} hidden (one expert alone)", t => Alone(new MlpExpert(d, o, task, mlp), t));
        yield return new Candidate("MLP of the MLP mixture's size", t => Alone(new MlpExpert(d, o, task, mlp with { Hidden = matched }), t));
        yield return new Candidate($"MoE: {Experts} × MLP (k-means → gate → joint)", t =>
            Mixture(Enumerable.Range(0, Experts).Select(i => (IExpert)new MlpExpert(d, o, task, mlp with { Seed = seed + 100 * (ulong)i })), t, phases));
        yield return new Candidate($"MoE: {Experts} × MLP, 20 % of rows held out for the gate", t =>
            Mixture(Enumerable.Range(0, Experts).Select(i => (IExpert)new MlpExpert(d, o, task, mlp with { Seed = seed + 100 * (ulong)i })), t, phases with { GateHoldout = 0.2f }));
        yield return new Candidate("MoE: linear + MLP + tree (all rows → held-out gate)", t =>
            Mixture([new LinearExpert(d, o, task), new MlpExpert(d, o, task, mlp), new TreeExpert(d, o, task, tree)], t,
                phases with { Phases = [MixturePhase.Experts, MixturePhase.Gate], ExpertStart = ExpertStart.AllRows, GateHoldout = 0.25f }));
        yield return new Candidate("MoE: 2 × linear, EM (held-out gate)", t =>
            Mixture([new LinearExpert(d, o, task), new LinearExpert(d, o, task)], t,
                phases with { Phases = [MixturePhase.Experts, MixturePhase.Gate, MixturePhase.Em], EmIterations = 10, GateHoldout = 0.2f }));
    }

    /// <summary>The hidden width of one MLP whose parameter count matches the MLP mixture's: E experts of H(D+1) + O(H+1) plus the gate's E(D+1).</summary>
    private static int MatchedHidden(int d, int o)
    {
        int mixtureParams = Experts * (ExpertHidden * (d + 1) + o * (ExpertHidden + 1)) + Experts * (d + 1);
        return (mixtureParams - o) / (d + 1 + o);
    }

    private static string MeanStd(List<double> v)
    {
        double mean = v.Average(), std = Math.Sqrt(v.Sum(x => (x - mean) * (x - mean)) / Math.Max(1, v.Count - 1));
        return string.Create(CultureInfo.InvariantCulture, $"{mean:F3} ± {std:F3}");
    }

    internal static string FindShared()
    {
        foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
                if (File.Exists(Path.Combine(dir.FullName, "MoeSharp.slnx"))) return Path.GetFullPath(Path.Combine(dir.FullName, "..", "shared"));
        throw new DirectoryNotFoundException("MoeSharp.slnx not found above the current or the program's folder.");
    }

    internal static string? Option(string[] args, string name)
    {
        int i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
    }

    internal static int Arg(string[] args, string name, int fallback) => Option(args, name) is { } v ? int.Parse(v, CultureInfo.InvariantCulture) : fallback;
}
