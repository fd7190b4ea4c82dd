using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using MoeSharp.Classic.Data;
using MoeSharp.Classic.Diagnostics;
using MoeSharp.Classic.Experts;
using MoeSharp.Classic.IO;
using MoeSharp.Classic.Models;
using MoeSharp.Classic.Training;
using MoeSharp.Kernels;

namespace MoeSharp.Cli.Commands;

/// <summary>
/// <c>moe fit</c>: trains a classic mixture of experts (or a two-level HME) on a numeric CSV, saves it as
/// model.safetensors + config.json, and writes report.txt and report.html (which expert handles which region).
/// </summary>
internal static class FitCommand
{
    public static Command Create()
    {
        var csv = new Option<FileInfo>("--csv") { Description = "Numeric CSV with a header row.", Required = true };
        var target = new Option<string>("--target") { Description = "The column to predict.", Required = true };
        var task = new Option<string?>("--task") { Description = "classification or regression (default: inferred from the target)." };
        var experts = new Option<string>("--experts") { Description = "Expert kinds, e.g. 'mlp,linear,tree' or '4*mlp'.", DefaultValueFactory = _ => "4*mlp" };
        var phases = new Option<string>("--phases") { Description = "Training phases in order, from experts, gate, joint, em.", DefaultValueFactory = _ => "experts,gate,joint" };
        var partition = new Option<string>("--partition") { Description = "Rows of each expert in the experts phase: 'kmeans', 'all' (every row), or a column with one value per expert.", DefaultValueFactory = _ => "kmeans" };
        var holdout = CliOptions.Number("--gate-holdout", 0f, 0f, 0.5f, description: "Share of rows (0 to 0.5) the experts never fit, kept for the gate.");
        var groups = CliOptions.Int("--groups", 0, 0, "Two-level HME with this many groups, each holding the --experts list (trained by k-means start + EM).");
        var exclude = new Option<string?>("--exclude") { Description = "Comma-separated columns that are not features (ids, …)." };
        var topK = CliOptions.Int("--top-k", 0, 0, "Experts per row (0: all).");
        var gateHidden = CliOptions.Int("--gate-hidden", 0, 0, "Hidden width of an MLP gate (0: linear gate).");
        var hidden = CliOptions.Int("--hidden", 16, 1, "Hidden width of each MLP expert.");
        var expertEpochs = CliOptions.Int("--expert-epochs", 100, 1, "Epochs of each MLP expert fit (experts phase, EM M-steps, refits).");
        var treeDepth = CliOptions.Int("--tree-depth", 6, 1, "Maximum depth of a tree expert.");
        var ridge = CliOptions.Optional("--ridge", 0f, float.MaxValue, description: "L2 penalty of linear experts (default: 1 for classification, 1e-6 for regression).");
        var epochs = CliOptions.Int("--epochs", 50, 1, "Epochs of the gate and joint phases.");
        var emIterations = CliOptions.Int("--em-iterations", 20, 1, "Iterations of the em phase.");
        var lr = CliOptions.Positive("--lr", 1e-2f, "Learning rate.");
        var entropy = CliOptions.Number("--entropy", 0f, float.MinValue, float.MaxValue, description: "Gate entropy coefficient (positive sharpens, negative softens).");
        var balance = CliOptions.Number("--balance", 0f, 0f, float.MaxValue, description: "Load-balancing (importance CV²) coefficient.");
        var seed = CliOptions.Seed(1UL);
        var threads = CliOptions.Threads(1, "Worker threads (default: 1; tabular models are small).");
        var testFraction = CliOptions.Number("--test-fraction", 0.2f, 0f, 0.5f, description: "Share of rows (0 to 0.5) held out to score the model: stratified by class for classification, random for regression. The saved model is the one trained on the other rows. 0: train and score on every row.");
        var cv = CliOptions.Int("--cv", 0, 0, "Score by K-fold cross-validation instead (stratified for classification), then save a model refit on every row.");
        var output = new Option<DirectoryInfo>("--out") { Description = "Output folder for the model and the report.", DefaultValueFactory = _ => new DirectoryInfo("runs/moe-fit") };
        var command = new Command("fit", "Fit a classic mixture of experts to a CSV table.")
        {
            csv, target, task, experts, phases, partition, holdout, groups, exclude, topK, gateHidden, hidden, expertEpochs, treeDepth, ridge,
            epochs, emIterations, lr, entropy, balance, testFraction, cv, seed, threads, output,
        };
        command.SetAction(p =>
        {
            using var limit = Workers.Limit(p.GetValue(threads));
            var file = p.GetValue(csv)!;
            var table = CsvTable.Load(file.FullName);
            string partitionSpec = p.GetValue(partition)!;
            string targetName = p.GetValue(target)!;
            var excluded = (p.GetValue(exclude) ?? "").Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
            // A schema over every row settles the task and the classes, and names bad input, before any split.
            var whole = TabularSchema.Fit(table, targetName, ParseTask(p.GetValue(task)), excluded);
            var data = whole.Encode(table);
            var kinds = ExpertFactory.ParseKinds(p.GetValue(experts)!);
            int groupCount = p.GetValue(groups);
            int total = kinds.Count * Math.Max(1, groupCount);
            if (data.Rows < total)
                throw new ArgumentException($"{file.FullName}: {data.Rows} rows are fewer than the {total} experts; use fewer experts.");
            float fraction = p.GetValue(testFraction);
            int folds = p.GetValue(cv);
            if (folds != 0 && (folds < 2 || folds > data.Rows)) throw new ArgumentException($"--cv must be 0 (off) or between 2 and the {data.Rows} rows, got {folds}.");
            if (folds != 0 && p.GetResult(testFraction) is { Implicit: false })
                throw new ArgumentException("--cv and --test-fraction are two ways to score the model; give one of them.");
            ulong seedValue = p.GetValue(seed);
            var factory = new ExpertFactory
            {
                Mlp = new MlpExpertOptions { Hidden = p.GetValue(hidden), Epochs = p.GetValue(expertEpochs), LearningRate = p.GetValue(lr), Seed = seedValue },
                Linear = new LinearExpertOptions { Ridge = p.GetValue(ridge) },
                Tree = new TreeExpertOptions { MaxDepth = p.GetValue(treeDepth) },
            };
            var gate = new GateOptions { Hidden = p.GetValue(gateHidden), TopK = p.GetValue(topK), Seed = seedValue };
            var trainOptions = new MixtureTrainOptions
            {
                Phases = ParsePhases(p.GetValue(phases)!),
                GateEpochs = p.GetValue(epochs), JointEpochs = p.GetValue(epochs), EmIterations = p.GetValue(emIterations),
                LearningRate = p.GetValue(lr), EntropyCoef = p.GetValue(entropy), BalanceCoef = p.GetValue(balance), Seed = seedValue,
                GateHoldout = p.GetValue(holdout), ExpertStart = partitionSpec == "all" ? ExpertStart.AllRows : ExpertStart.KMeans,
            };
            var partitionColumn = groupCount > 0 || partitionSpec is "kmeans" or "all" ? null : Partition.FromColumn(table.Column(partitionSpec), kinds.Count, partitionSpec);
            string taskText = data.IsClassification ? $"classification, {data.Classes} classes" : "regression";
            Console.WriteLine($"data: {file.Name}, {data.Rows} rows, {data.Features} features, target '{whole.Target}' ({taskText})");
            if (groupCount == 0)
                Console.WriteLine($"mixture: {string.Join(", ", kinds)}; gate {(gate.Hidden > 0 ? $"MLP ({gate.Hidden} hidden)" : "linear")}, {(gate.TopK > 0 ? $"top-{gate.TopK}" : "dense")}; phases {string.Join(" → ", trainOptions.Phases).ToLowerInvariant()}");
            else
                Console.WriteLine($"hierarchical mixture: {groupCount} groups of {string.Join(", ", kinds)}; k-means start, then EM");
            var clock = Stopwatch.StartNew();

            // Trains on these rows alone: the standardisation too is fitted on them, so no test row leaks into training.
            (SavedMixture Model, TabularData Encoded) Train(int[] rows, bool verbose)
            {
                var schema = TabularSchema.Fit(table, targetName, whole.Task, excluded, rows);
                var encoded = schema.Encode(table);
                var train = encoded.Subset(rows);
                if (groupCount == 0)
                {
                    var model = new MixtureOfExperts(MixtureOptions.For(train, gate), kinds.Select((k, i) => factory.Create(k, train.Features, train.Outputs, train.Task, i)));
                    var parts = partitionColumn is null ? null : rows.Select(r => partitionColumn[r]).ToArray();
                    foreach (var r in new MixtureTrainer(model, trainOptions).Fit(train, parts))
                        if (verbose) Print(r);
                    return (new SavedMixture(model, null, schema), encoded);
                }
                var hme = new HierarchicalMixture(Enumerable.Range(0, groupCount).Select(g => new MixtureOfExperts(MixtureOptions.For(train, gate),
                    kinds.Select((k, i) => factory.Create(k, train.Features, train.Outputs, train.Task, g * kinds.Count + i)))).ToArray(), gate with { TopK = 0 });
                var trainer = new HierarchicalTrainer(hme, trainOptions);
                var start = trainer.Initialize(train);
                var em = trainer.RunEm(train);
                if (verbose)
                {
                    Print(start);
                    Print(em);
                }
                return (new SavedMixture(null, hme, schema), encoded);
            }

            int[] everyRow = Enumerable.Range(0, data.Rows).ToArray();
            int[]? labels = data.IsClassification ? data.Labels : null;
            string how = data.IsClassification ? "stratified" : "random";
            string metric = data.IsClassification ? "accuracy" : "RMSE";
            SavedMixture saved;
            TabularData reportRows;
            string reportWhat, savedWhat;
            if (folds > 0)
            {
                var split = Folds.Split(data.Rows, folds, seedValue, labels);
                var scores = new List<Score>();
                for (int f = 0; f < folds; f++)
                {
                    var (model, encoded) = Train(Folds.Complement(data.Rows, split[f]), verbose: false);
                    scores.Add(Evaluate(model, encoded.Subset(split[f])));
                    Console.WriteLine($"  fold {f + 1}/{folds}: {scores[^1].Format(metric)} on {split[f].Length} rows");
                }
                Console.WriteLine($"{folds}-fold cross-validation, {how}: {metric} {MeanSd(scores.Select(s => s.Value), data.IsClassification ? "F4" : "G4")}"
                    + (data.IsClassification ? "" : $", R² {MeanSd(scores.Select(s => s.R2), "F4")}") + " (mean ± standard deviation over the folds)");
                Console.WriteLine($"refitting on all {data.Rows} rows for the saved model");
                (saved, reportRows) = Train(everyRow, verbose: true);
                reportWhat = $"all {data.Rows} rows, which the saved model trained on";
                savedWhat = $"the model refit on all {data.Rows} rows (the score above is the cross-validated estimate for it)";
            }
            else if (fraction > 0)
            {
                var testRows = Folds.Holdout(data.Rows, fraction, seedValue, labels);
                var trainRows = Folds.Complement(data.Rows, testRows);
                if (testRows.Length == 0)
                    throw new ArgumentException($"--test-fraction {fraction} of {data.Rows} rows holds out no row; raise it, or give --test-fraction 0 to score on the training rows.");
                if (trainRows.Length < total)
                    throw new ArgumentException($"{file.FullName}: {trainRows.Length} training rows, after holding out {testRows.Length}, are fewer than the {total} experts; use fewer experts or a smaller --test-fraction.");
                string share = $"{fraction:P0}".Replace(" ", "", StringComparison.Ordinal);
                Console.WriteLine($"holding out {share} of the rows ({testRows.Length}, {how}, seed {seedValue}) to score the model; training on the other {trainRows.Length}");
                var (model, encoded) = Train(trainRows, verbose: true);
                var test = encoded.Subset(testRows);
                Console.WriteLine($"held-out {share}, {how}: {Evaluate(model, test).Format(metric)} ({testRows.Length} rows the model never saw)");
                saved = model;
                reportRows = test;
                reportWhat = $"the {testRows.Length} held-out rows";
                savedWhat = $"the model trained on the other {trainRows.Length} rows, the one scored above (not refit on all rows; give --test-fraction 0 for that)";
            }
            else
            {
                (saved, reportRows) = Train(everyRow, verbose: true);
                Console.WriteLine($"no rows held out (--test-fraction 0): {Evaluate(saved, reportRows).Format(metric)} on the training rows, which says little about new rows");
                reportWhat = $"all {data.Rows} rows, which the model trained on";
                savedWhat = $"the model trained on all {data.Rows} rows";
            }
            var folder = p.GetValue(output)!.FullName;
            if (saved.Mixture is { } flat) MixtureFile.Save(folder, flat, saved.Schema);
            else MixtureFile.Save(folder, saved.Hierarchy!, saved.Schema);
            var report = MixtureReport.Build(saved, reportRows, saved.Schema);
            report.Write(folder, $"moe fit: {file.Name} → {whole.Target} (scored on {reportWhat})");
            Console.WriteLine($"trained in {clock.Elapsed.TotalSeconds:F1} s; saved {savedWhat}, with report.txt and report.html, to {folder}");
            Console.WriteLine($"report on {reportWhat}:");
            Console.Write(report.ToText());
            return 0;
        });
        return command;
    }

    internal static TabularTask? ParseTask(string? text) => text?.ToLowerInvariant() switch
    {
        null => null,
        "classification" => TabularTask.Classification,
        "regression" => TabularTask.Regression,
        _ => throw new ArgumentException($"--task must be 'classification' or 'regression', got '{text}'."),
    };

    internal static IReadOnlyList<MixturePhase> ParsePhases(string spec) =>
        spec.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).Select(s => s.ToLowerInvariant() switch
        {
            "experts" => MixturePhase.Experts,
            "gate" => MixturePhase.Gate,
            "joint" => MixturePhase.Joint,
            "em" => MixturePhase.Em,
            _ => throw new ArgumentException($"--phases: unknown phase '{s}'; the phases are experts, gate, joint, em."),
        }).ToArray();

    /// <summary>A score on rows the model did not train on: accuracy, or RMSE in the target's units with R².</summary>
    private readonly record struct Score(double Value, double R2)
    {
        public string Format(string metric) => double.IsNaN(R2) ? $"{metric} {Value:F4}" : $"{metric} {Value:G4}, R² {R2:F4}";
    }

    private static Score Evaluate(SavedMixture model, TabularData rows)
    {
        var output = model.Predict(rows.X.Span).Output;
        double scale = rows.IsClassification ? 1 : model.Schema!.TargetStd;
        return new Score(MixtureReport.Evaluate(rows, output, Enumerable.Range(0, rows.Rows).ToArray(), scale),
            rows.IsClassification ? double.NaN : MixtureReport.RSquared(rows.Targets, output));
    }

    /// <summary>Mean ± sample standard deviation (n − 1).</summary>
    private static string MeanSd(IEnumerable<double> values, string format)
    {
        var v = values.ToArray();
        double mean = v.Average();
        double sd = Math.Sqrt(v.Sum(x => (x - mean) * (x - mean)) / Math.Max(1, v.Length - 1));
        return $"{mean.ToString(format, CultureInfo.InvariantCulture)} ± {sd.ToString(format, CultureInfo.InvariantCulture)}";
    }

    private static void Print(PhaseReport r)
    {
        string steps = r.Phase switch
        {
            MixturePhase.Experts => "fit",
            MixturePhase.Em => $"{r.Loss.Count - 1} iterations",
            _ => $"{r.Loss.Count} epochs",
        };
        Console.WriteLine($"  {r.Phase.ToString().ToLowerInvariant(),-8} loss {r.Loss[0]:F4} → {r.FinalLoss:F4} ({steps}, {r.Seconds:F1} s)");
    }
}
