using System.CommandLine;
using System.Diagnostics;
using MoeSharp.Data;
using MoeSharp.Diagnostics;
using MoeSharp.Experts;
using MoeSharp.IO;
using MoeSharp.Kernels;
using MoeSharp.Models;
using MoeSharp.Training;

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
        var output = new Option<DirectoryInfo>("--out") { Description = "Output folder for the model and the report.", DefaultValueFactory = _ => new DirectoryInfo("runs/moe-fit") };
        var command = new Command("fit", "Fit a classic mixture of experts to a CSV table.")
        {
            csv, target, task, experts, phases, partition, holdout, groups, exclude, topK, gateHidden, hidden, expertEpochs, treeDepth, ridge,
            epochs, emIterations, lr, entropy, balance, seed, threads, output,
        };
        command.SetAction(p =>
        {
            Workers.Threads = p.GetValue(threads);
            var file = p.GetValue(csv)!;
            var table = CsvTable.Load(file.FullName);
            string partitionSpec = p.GetValue(partition)!;
            var excluded = (p.GetValue(exclude) ?? "").Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
            var schema = TabularSchema.Fit(table, p.GetValue(target)!, ParseTask(p.GetValue(task)), excluded);
            var data = schema.Encode(table);
            var kinds = ExpertFactory.ParseKinds(p.GetValue(experts)!);
            int groupCount = p.GetValue(groups);
            if (groupCount < 0) throw new ArgumentException($"--groups must be 0 (a flat mixture) or positive, got {groupCount}.");
            int total = kinds.Count * Math.Max(1, groupCount);
            if (data.Rows < total)
                throw new ArgumentException($"{file.FullName}: {data.Rows} rows are fewer than the {total} experts; use fewer experts.");
            var factory = new ExpertFactory
            {
                Mlp = new MlpExpertOptions { Hidden = p.GetValue(hidden), Epochs = p.GetValue(expertEpochs), LearningRate = p.GetValue(lr), Seed = p.GetValue(seed) },
                Linear = new LinearExpertOptions { Ridge = p.GetValue(ridge) },
                Tree = new TreeExpertOptions { MaxDepth = p.GetValue(treeDepth) },
            };
            var gate = new GateOptions { Hidden = p.GetValue(gateHidden), TopK = p.GetValue(topK), Seed = p.GetValue(seed) };
            var trainOptions = new MixtureTrainOptions
            {
                Phases = ParsePhases(p.GetValue(phases)!),
                GateEpochs = p.GetValue(epochs), JointEpochs = p.GetValue(epochs), EmIterations = p.GetValue(emIterations),
                LearningRate = p.GetValue(lr), EntropyCoef = p.GetValue(entropy), BalanceCoef = p.GetValue(balance), Seed = p.GetValue(seed),
                GateHoldout = p.GetValue(holdout), ExpertStart = partitionSpec == "all" ? ExpertStart.AllRows : ExpertStart.KMeans,
            };
            string taskText = data.IsClassification ? $"classification, {data.Classes} classes" : "regression";
            Console.WriteLine($"data: {file.Name}, {data.Rows} rows, {data.Features} features, target '{schema.Target}' ({taskText})");
            var clock = Stopwatch.StartNew();
            SavedMixture saved;
            if (groupCount == 0)
            {
                var model = new MixtureOfExperts(MixtureOptions.For(data, gate), kinds.Select((k, i) => factory.Create(k, data.Features, data.Outputs, data.Task, i)));
                var parts = partitionSpec is "kmeans" or "all" ? null : Partition.FromColumn(table.Column(partitionSpec), model.Count, partitionSpec);
                Console.WriteLine($"mixture: {string.Join(", ", kinds)}; gate {(gate.Hidden > 0 ? $"MLP ({gate.Hidden} hidden)" : "linear")}, {(gate.TopK > 0 ? $"top-{gate.TopK}" : "dense")}; phases {string.Join(" → ", trainOptions.Phases).ToLowerInvariant()}");
                foreach (var r in new MixtureTrainer(model, trainOptions).Fit(data, parts)) Print(r);
                MixtureFile.Save(p.GetValue(output)!.FullName, model, schema);
                saved = new SavedMixture(model, null, schema);
            }
            else
            {
                var hme = new HierarchicalMixture(Enumerable.Range(0, groupCount).Select(g => new MixtureOfExperts(MixtureOptions.For(data, gate),
                    kinds.Select((k, i) => factory.Create(k, data.Features, data.Outputs, data.Task, g * kinds.Count + i)))).ToArray(), gate with { TopK = 0 });
                Console.WriteLine($"hierarchical mixture: {groupCount} groups of {string.Join(", ", kinds)}; k-means start, then EM");
                var trainer = new HierarchicalTrainer(hme, trainOptions);
                Print(trainer.Initialize(data));
                Print(trainer.RunEm(data));
                MixtureFile.Save(p.GetValue(output)!.FullName, hme, schema);
                saved = new SavedMixture(null, hme, schema);
            }
            var folder = p.GetValue(output)!.FullName;
            var report = MixtureReport.Build(saved, data, schema);
            report.Write(folder, $"moe fit: {file.Name} → {schema.Target}");
            Console.WriteLine($"trained in {clock.Elapsed.TotalSeconds:F1} s; saved the model, report.txt and report.html to {folder}");
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
