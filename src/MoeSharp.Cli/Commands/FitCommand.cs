using System.CommandLine;
using MoeSharp.Classic.Data;
using MoeSharp.Classic.IO;
using MoeSharp.Classic.Training;

namespace MoeSharp.Cli.Commands;

/// <summary>
/// <c>moe fit</c>: the options of <see cref="MixtureFit"/> from the command line, and its progress on the console.
/// </summary>
internal static class FitCommand
{
    public static Command Create()
    {
        var csv = new Option<FileInfo>("--csv") { Description = "Numeric CSV with a header row.", Required = true };
        var target = new Option<string>("--target") { Description = "The column to predict.", Required = true };
        var task = new Option<string?>("--task") { Description = "classification or regression (default: inferred from the target)." };
        var d = MixtureFitOptions.Default;
        var experts = new Option<string>("--experts") { Description = "Expert kinds, e.g. 'mlp,linear,tree' or '4*mlp'.", DefaultValueFactory = _ => d.Experts };
        var phases = new Option<string>("--phases") { Description = "Training phases in order, from experts, gate, joint, em.", DefaultValueFactory = _ => string.Join(',', d.Phases).ToLowerInvariant() };
        var partition = new Option<string>("--partition") { Description = "Rows of each expert in the experts phase: 'kmeans', 'all' (every row), or a column with one value per expert.", DefaultValueFactory = _ => d.Partition };
        var holdout = CliOptions.Number("--gate-holdout", d.GateHoldout, 0f, 0.5f, description: "Share of rows (0 to 0.5) the experts never fit, kept for the gate.");
        var groups = CliOptions.Int("--groups", d.Groups, 0, "Two-level HME with this many groups, each holding the --experts list (trained by k-means start + EM).");
        var exclude = new Option<string?>("--exclude") { Description = "Comma-separated columns that are not features (ids, …)." };
        var topK = CliOptions.Int("--top-k", d.TopK, 0, "Experts per row (0: all).");
        var gateHidden = CliOptions.Int("--gate-hidden", d.GateHidden, 0, "Hidden width of an MLP gate (0: linear gate).");
        var hidden = CliOptions.Int("--hidden", d.Hidden, 1, "Hidden width of each MLP expert.");
        var expertEpochs = CliOptions.Int("--expert-epochs", d.ExpertEpochs, 1, "Epochs of each MLP expert fit (experts phase, EM M-steps, refits).");
        var treeDepth = CliOptions.Int("--tree-depth", d.TreeDepth, 1, "Maximum depth of a tree expert.");
        var ridge = CliOptions.Optional("--ridge", 0f, float.MaxValue, description: "L2 penalty of linear experts (default: 1 for classification, 1e-6 for regression).");
        var epochs = CliOptions.Int("--epochs", d.Epochs, 1, "Epochs of the gate and joint phases.");
        var emIterations = CliOptions.Int("--em-iterations", d.EmIterations, 1, "Iterations of the em phase.");
        var lr = CliOptions.Positive("--lr", d.LearningRate, "Learning rate.");
        var entropy = CliOptions.Number("--entropy", d.Entropy, float.MinValue, float.MaxValue, description: "Gate entropy coefficient (positive sharpens, negative softens).");
        var balance = CliOptions.Number("--balance", d.Balance, 0f, float.MaxValue, description: "Load-balancing (importance CV²) coefficient.");
        var seed = CliOptions.Seed(d.Seed);
        var threads = CliOptions.Threads(d.Threads, "Worker threads (default: 1; tabular models are small).");
        var testFraction = CliOptions.Number("--test-fraction", d.TestFraction, 0f, 0.5f, description: "Share of rows (0 to 0.5) held out to score the model: stratified by class for classification, random for regression. The saved model is the one trained on the other rows. 0: train and score on every row.");
        var cv = CliOptions.Int("--cv", d.Folds, 0, "Score by K-fold cross-validation instead (stratified for classification), then save a model refit on every row.");
        var output = new Option<DirectoryInfo>("--out") { Description = "Output folder for the model and the report.", DefaultValueFactory = _ => new DirectoryInfo("runs/moe-fit") };
        var command = new Command("fit", "Fit a classic mixture of experts to a CSV table.")
        {
            csv, target, task, experts, phases, partition, holdout, groups, exclude, topK, gateHidden, hidden, expertEpochs, treeDepth, ridge,
            epochs, emIterations, lr, entropy, balance, testFraction, cv, seed, threads, output,
        };
        command.SetAction(p =>
        {
            if (p.GetValue(cv) != 0 && p.GetResult(testFraction) is { Implicit: false })
                throw new ArgumentException("--cv and --test-fraction are two ways to score the model; give one of them.");
            var options = new MixtureFitOptions
            {
                Target = p.GetValue(target)!, Task = ParseTask(p.GetValue(task)), Experts = p.GetValue(experts)!, Phases = ParsePhases(p.GetValue(phases)!),
                Partition = p.GetValue(partition)!, GateHoldout = p.GetValue(holdout), Groups = p.GetValue(groups),
                Exclude = (p.GetValue(exclude) ?? "").Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries),
                TopK = p.GetValue(topK), GateHidden = p.GetValue(gateHidden), Hidden = p.GetValue(hidden), ExpertEpochs = p.GetValue(expertEpochs),
                TreeDepth = p.GetValue(treeDepth), Ridge = p.GetValue(ridge), Epochs = p.GetValue(epochs), EmIterations = p.GetValue(emIterations),
                LearningRate = p.GetValue(lr), Entropy = p.GetValue(entropy), Balance = p.GetValue(balance), TestFraction = p.GetValue(testFraction),
                Folds = p.GetValue(cv), Seed = p.GetValue(seed), Threads = p.GetValue(threads),
            };
            try
            {
                MixtureFit.Run(p.GetValue(csv)!.FullName, p.GetValue(output)!.FullName, options, Console.Out);
            }
            catch (ArgumentException ex) when (ex.Message.StartsWith("MixtureFitOptions.", StringComparison.Ordinal) && Flags.TryGetValue(ex.ParamName ?? "", out var flag))
            {
                // The library names its own fields; a command-line user wrote the flag.
                throw new ArgumentException(flag + " " + ex.Message[(ex.Message.IndexOf(':', StringComparison.Ordinal) + 2)..], ex);
            }
            return 0;
        });
        return command;
    }

    private static readonly Dictionary<string, string> Flags = new()
    {
        [nameof(MixtureFitOptions.Folds)] = "--cv",
        [nameof(MixtureFitOptions.TestFraction)] = "--test-fraction",
    };

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
}
