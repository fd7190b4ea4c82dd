using System.Diagnostics;
using System.Globalization;
using MoeSharp.Classic.Data;
using MoeSharp.Classic.Diagnostics;
using MoeSharp.Classic.Experts;
using MoeSharp.Classic.Models;
using MoeSharp.Classic.Training;
using MoeSharp.Kernels;

namespace MoeSharp.Classic.IO;

/// <summary>The settings of <see cref="MixtureFit.Run"/>; the defaults are <c>moe fit</c>'s.</summary>
public sealed record MixtureFitOptions
{
    /// <summary>The defaults.</summary>
    public static MixtureFitOptions Default { get; } = new();

    /// <summary>The column to predict.</summary>
    public string Target { get; init; } = "";

    /// <summary>Classification or regression; null infers it from the target.</summary>
    public TabularTask? Task { get; init; }

    /// <summary>Expert kinds, e.g. "mlp,linear,tree" or "4*mlp" (<see cref="ExpertFactory.ParseKinds"/>).</summary>
    public string Experts { get; init; } = "4*mlp";

    /// <summary>Training phases in order.</summary>
    public IReadOnlyList<MixturePhase> Phases { get; init; } = [MixturePhase.Experts, MixturePhase.Gate, MixturePhase.Joint];

    /// <summary>Rows of each expert in the experts phase: "kmeans", "all" (every row), or a column with one value per expert.</summary>
    public string Partition { get; init; } = "kmeans";

    /// <summary>Share of rows (0 to 0.5) the experts never fit, kept for the gate.</summary>
    public float GateHoldout { get; init; }

    /// <summary>A two-level HME with this many groups, each holding the <see cref="Experts"/> list (k-means start, then EM); 0 for a flat mixture.</summary>
    public int Groups { get; init; }

    /// <summary>Columns that are not features (ids, ...).</summary>
    public IReadOnlyList<string> Exclude { get; init; } = [];

    /// <summary>Experts per row (0: all).</summary>
    public int TopK { get; init; }

    /// <summary>Hidden width of an MLP gate (0: a linear gate).</summary>
    public int GateHidden { get; init; }

    /// <summary>Hidden width of each MLP expert.</summary>
    public int Hidden { get; init; } = 16;

    /// <summary>Epochs of each MLP expert fit (experts phase, EM M-steps, refits).</summary>
    public int ExpertEpochs { get; init; } = 100;

    /// <summary>Maximum depth of a tree expert.</summary>
    public int TreeDepth { get; init; } = 6;

    /// <summary>L2 penalty of linear experts; null: 1 for classification, 1e-6 for regression.</summary>
    public float? Ridge { get; init; }

    /// <summary>Epochs of the gate and joint phases.</summary>
    public int Epochs { get; init; } = 50;

    /// <summary>Iterations of the EM phase.</summary>
    public int EmIterations { get; init; } = 20;

    /// <summary>Learning rate of the gate, the joint phase and the MLP experts.</summary>
    public float LearningRate { get; init; } = 1e-2f;

    /// <summary>Gate entropy coefficient (positive sharpens, negative softens).</summary>
    public float Entropy { get; init; }

    /// <summary>Load-balancing (importance CV²) coefficient.</summary>
    public float Balance { get; init; }

    /// <summary>
    /// Share of rows (0 to 0.5) held out to score the model: stratified by class for classification, random for
    /// regression; the saved model is the one trained on the other rows. 0: train and score on every row. Not used
    /// when <see cref="Folds"/> is set.
    /// </summary>
    public float TestFraction { get; init; } = 0.2f;

    /// <summary>K-fold cross-validation (stratified for classification) instead of a held-out share, then a model refit on every row is saved; 0: off.</summary>
    public int Folds { get; init; }

    /// <summary>Seeds the split, the experts and the gate.</summary>
    public ulong Seed { get; init; } = 1;

    /// <summary>Worker threads (tabular models are small).</summary>
    public int Threads { get; init; } = 1;
}

/// <summary>Which rows scored the model: a held-out share, K folds, or the training rows themselves.</summary>
public enum FitScoring
{
    /// <summary>A held-out share of the rows (<see cref="MixtureFitOptions.TestFraction"/>).</summary>
    HeldOut,

    /// <summary>K-fold cross-validation (<see cref="MixtureFitOptions.Folds"/>); the scores are one per fold.</summary>
    CrossValidation,

    /// <summary>The rows the model trained on, which says little about new rows.</summary>
    TrainingRows,
}

/// <summary>What <see cref="MixtureFit.Run"/> did.</summary>
/// <param name="Scoring">Which rows the scores are on.</param>
/// <param name="Metric">"accuracy" or "RMSE" (in the target's units).</param>
/// <param name="Scores">The score, or one per fold.</param>
/// <param name="RSquared">R² beside each score for regression; empty for classification.</param>
/// <param name="ScoredRows">Rows behind each score.</param>
/// <param name="ModelFolder">The folder with model.safetensors, config.json, report.txt and report.html.</param>
/// <param name="Report">The report on the scored rows (held out, or all rows for cross-validation and training rows).</param>
/// <param name="Model">The saved model.</param>
public sealed record MixtureFitResult(
    FitScoring Scoring, string Metric, IReadOnlyList<double> Scores, IReadOnlyList<double> RSquared, IReadOnlyList<int> ScoredRows,
    string ModelFolder, MixtureReport Report, SavedMixture Model);

/// <summary>
/// <c>moe fit</c>: trains a classic mixture of experts (or a two-level HME) on a numeric CSV, scores it on rows it did
/// not train on, saves it as model.safetensors + config.json, and writes report.txt and report.html (which expert
/// handles which region), so a program gets the same folder as the command.
/// </summary>
public static class MixtureFit
{
    /// <summary>Fits <paramref name="csvPath"/> under <paramref name="options"/> into <paramref name="folder"/>; progress lines go to <paramref name="log"/>.</summary>
    public static MixtureFitResult Run(string csvPath, string folder, MixtureFitOptions options, TextWriter? log = null)
    {
        log ??= TextWriter.Null;
        var o = options;
        using var limit = Parallelism.Limit(o.Threads);
        var table = CsvTable.Load(csvPath);
        string name = Path.GetFileName(csvPath);
        var excluded = o.Exclude.ToArray();
        // A schema over every row settles the task and the classes, and names bad input, before any split.
        var whole = TabularSchema.Fit(table, o.Target, o.Task, excluded);
        var data = whole.Encode(table);
        var kinds = ExpertFactory.ParseKinds(o.Experts);
        int total = kinds.Count * Math.Max(1, o.Groups);
        if (data.Rows < total)
            throw new ArgumentException($"{Path.GetFullPath(csvPath)}: {data.Rows} rows are fewer than the {total} experts; use fewer experts.");
        if (o.Folds != 0 && (o.Folds < 2 || o.Folds > data.Rows))
            throw new ArgumentException($"MixtureFitOptions.Folds: must be 0 (off) or between 2 and the {data.Rows} rows, got {o.Folds}.", nameof(o.Folds));
        var factory = new ExpertFactory
        {
            Mlp = new MlpExpertOptions { Hidden = o.Hidden, Epochs = o.ExpertEpochs, LearningRate = o.LearningRate, Seed = o.Seed },
            Linear = new LinearExpertOptions { Ridge = o.Ridge },
            Tree = new TreeExpertOptions { MaxDepth = o.TreeDepth },
        };
        var gate = new GateOptions { Hidden = o.GateHidden, TopK = o.TopK, Seed = o.Seed };
        var trainOptions = new MixtureTrainOptions
        {
            Phases = o.Phases,
            GateEpochs = o.Epochs, JointEpochs = o.Epochs, EmIterations = o.EmIterations,
            LearningRate = o.LearningRate, EntropyCoef = o.Entropy, BalanceCoef = o.Balance, Seed = o.Seed,
            GateHoldout = o.GateHoldout, ExpertStart = o.Partition == "all" ? ExpertStart.AllRows : ExpertStart.KMeans,
        };
        var partitionColumn = o.Groups > 0 || o.Partition is "kmeans" or "all" ? null : Partition.FromColumn(table.Column(o.Partition), kinds.Count, o.Partition);
        string taskText = data.IsClassification ? $"classification, {data.Classes} classes" : "regression";
        log.WriteLine($"data: {name}, {data.Rows} rows, {data.Features} features, target '{whole.Target}' ({taskText})");
        if (o.Groups == 0)
            log.WriteLine($"mixture: {string.Join(", ", kinds)}; gate {(gate.Hidden > 0 ? $"MLP ({gate.Hidden} hidden)" : "linear")}, {(gate.TopK > 0 ? $"top-{gate.TopK}" : "dense")}; phases {string.Join(" → ", trainOptions.Phases).ToLowerInvariant()}");
        else
            log.WriteLine($"hierarchical mixture: {o.Groups} groups of {string.Join(", ", kinds)}; k-means start, then EM");
        var clock = Stopwatch.StartNew();

        // Trains on these rows alone: the standardisation too is fitted on them, so no test row leaks into training.
        (SavedMixture Model, TabularData Encoded) Train(int[] rows, bool verbose)
        {
            var schema = TabularSchema.Fit(table, o.Target, whole.Task, excluded, rows);
            var encoded = schema.Encode(table);
            var train = encoded.Subset(rows);
            if (o.Groups == 0)
            {
                var model = new MixtureOfExperts(MixtureOptions.For(train, gate), kinds.Select((k, i) => factory.Create(k, train.Features, train.Outputs, train.Task, i)));
                var parts = partitionColumn is null ? null : rows.Select(r => partitionColumn[r]).ToArray();
                foreach (var r in new MixtureTrainer(model, trainOptions).Fit(train, parts))
                    if (verbose) Print(log, r);
                return (new SavedMixture(model, null, schema), encoded);
            }
            var hme = new HierarchicalMixture(Enumerable.Range(0, o.Groups).Select(g => new MixtureOfExperts(MixtureOptions.For(train, gate),
                kinds.Select((k, i) => factory.Create(k, train.Features, train.Outputs, train.Task, g * kinds.Count + i)))).ToArray(), gate with { TopK = 0 });
            var trainer = new HierarchicalTrainer(hme, trainOptions);
            var start = trainer.Initialize(train);
            var em = trainer.RunEm(train);
            if (verbose)
            {
                Print(log, start);
                Print(log, em);
            }
            return (new SavedMixture(null, hme, schema), encoded);
        }

        int[] everyRow = Enumerable.Range(0, data.Rows).ToArray();
        int[]? labels = data.IsClassification ? data.Labels : null;
        string how = data.IsClassification ? "stratified" : "random";
        string metric = data.IsClassification ? "accuracy" : "RMSE";
        var scores = new List<Score>();
        var scored = new List<int>();
        FitScoring scoring;
        SavedMixture saved;
        TabularData reportRows;
        string reportWhat, savedWhat;
        if (o.Folds > 0)
        {
            scoring = FitScoring.CrossValidation;
            var split = Folds.Split(data.Rows, o.Folds, o.Seed, labels);
            for (int f = 0; f < o.Folds; f++)
            {
                var (model, encoded) = Train(Folds.Complement(data.Rows, split[f]), verbose: false);
                scores.Add(Evaluate(model, encoded.Subset(split[f])));
                scored.Add(split[f].Length);
                log.WriteLine($"  fold {f + 1}/{o.Folds}: {scores[^1].Format(metric)} on {split[f].Length} rows");
            }
            log.WriteLine($"{o.Folds}-fold cross-validation, {how}: {metric} {MeanSd(scores.Select(s => s.Value), data.IsClassification ? "F4" : "G4")}"
                + (data.IsClassification ? "" : $", R² {MeanSd(scores.Select(s => s.R2), "F4")}") + " (mean ± standard deviation over the folds)");
            log.WriteLine($"refitting on all {data.Rows} rows for the saved model");
            (saved, reportRows) = Train(everyRow, verbose: true);
            reportWhat = $"all {data.Rows} rows, which the saved model trained on";
            savedWhat = $"the model refit on all {data.Rows} rows (the score above is the cross-validated estimate for it)";
        }
        else if (o.TestFraction > 0)
        {
            scoring = FitScoring.HeldOut;
            var testRows = Folds.Holdout(data.Rows, o.TestFraction, o.Seed, labels);
            var trainRows = Folds.Complement(data.Rows, testRows);
            if (testRows.Length == 0)
                throw new ArgumentException($"MixtureFitOptions.TestFraction: {o.TestFraction} of {data.Rows} rows holds out no row; raise it, or give 0 to score on the training rows.", nameof(o.TestFraction));
            if (trainRows.Length < total)
                throw new ArgumentException($"{Path.GetFullPath(csvPath)}: {trainRows.Length} training rows, after holding out {testRows.Length}, are fewer than the {total} experts; use fewer experts or a smaller test fraction.");
            string share = $"{o.TestFraction:P0}".Replace(" ", "", StringComparison.Ordinal);
            log.WriteLine($"holding out {share} of the rows ({testRows.Length}, {how}, seed {o.Seed}) to score the model; training on the other {trainRows.Length}");
            var (model, encoded) = Train(trainRows, verbose: true);
            var test = encoded.Subset(testRows);
            scores.Add(Evaluate(model, test));
            scored.Add(testRows.Length);
            log.WriteLine($"held-out {share}, {how}: {scores[0].Format(metric)} ({testRows.Length} rows the model never saw)");
            saved = model;
            reportRows = test;
            reportWhat = $"the {testRows.Length} held-out rows";
            savedWhat = $"the model trained on the other {trainRows.Length} rows, the one scored above (not refit on all rows; give --test-fraction 0 for that)";
        }
        else
        {
            scoring = FitScoring.TrainingRows;
            (saved, reportRows) = Train(everyRow, verbose: true);
            scores.Add(Evaluate(saved, reportRows));
            scored.Add(data.Rows);
            log.WriteLine($"no rows held out (--test-fraction 0): {scores[0].Format(metric)} on the training rows, which says little about new rows");
            reportWhat = $"all {data.Rows} rows, which the model trained on";
            savedWhat = $"the model trained on all {data.Rows} rows";
        }
        if (saved.Mixture is { } flat) MixtureFile.Save(folder, flat, saved.Schema);
        else MixtureFile.Save(folder, saved.Hierarchy!, saved.Schema);
        var report = MixtureReport.Build(saved, reportRows, saved.Schema);
        report.Write(folder, $"moe fit: {name} → {whole.Target} (scored on {reportWhat})");
        log.WriteLine($"trained in {clock.Elapsed.TotalSeconds:F1} s; saved {savedWhat}, with report.txt and report.html, to {folder}");
        log.WriteLine($"report on {reportWhat}:");
        log.Write(report.ToText());
        return new MixtureFitResult(scoring, metric, scores.Select(s => s.Value).ToArray(),
            data.IsClassification ? [] : scores.Select(s => s.R2).ToArray(), scored, folder, report, saved);
    }

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

    private static void Print(TextWriter log, PhaseReport r)
    {
        string steps = r.Phase switch
        {
            MixturePhase.Experts => "fit",
            MixturePhase.Em => $"{r.Loss.Count - 1} iterations",
            _ => $"{r.Loss.Count} epochs",
        };
        log.WriteLine($"  {r.Phase.ToString().ToLowerInvariant(),-8} loss {r.Loss[0]:F4} → {r.FinalLoss:F4} ({steps}, {r.Seconds:F1} s)");
    }
}
