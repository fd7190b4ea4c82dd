using System.CommandLine;
using MoeSharp.Classic.IO;

namespace MoeSharp.Cli.Commands;

/// <summary>
/// <c>moe predict</c>: runs a model saved by <c>moe fit</c> on a CSV, writes the rows with their predictions (and class
/// probabilities), reports accuracy or RMSE when the target column is present, and reports any expert failures.
/// </summary>
internal static class PredictCommand
{
    public static Command Create()
    {
        var model = new Option<DirectoryInfo>("--model") { Description = "Model folder written by 'moe fit'.", Required = true };
        var csv = new Option<FileInfo>("--csv") { Description = "CSV with the model's feature columns (the target column is optional).", Required = true };
        var output = new Option<FileInfo>("--out") { Description = "Where to write the predictions.", DefaultValueFactory = _ => new FileInfo("predictions.csv") };
        var topK = CliOptions.Optional("--top-k", 0, int.MaxValue, description: "Experts per row at inference (0: all; default: as saved).");
        var timeout = CliOptions.Optional("--timeout-ms", 0d, double.MaxValue, minExcluded: true, "Time budget of one call to one expert; an expert over it is left out.");
        var command = new Command("predict", "Predict with a saved classic mixture.") { model, csv, output, topK, timeout };
        command.SetAction(p =>
        {
            var options = new MixturePredictOptions
            {
                TopK = p.GetValue(topK),
                CallBudget = p.GetValue(timeout) is { } ms ? TimeSpan.FromMilliseconds(ms) : null,
            };
            var r = MixturePredict.Run(p.GetValue(model)!.FullName, p.GetValue(csv)!.FullName, p.GetValue(output)!.FullName, options);
            Console.WriteLine($"predicted {r.Rows} rows → {r.OutputPath}");
            if (r.Score is { } score)
                Console.WriteLine(r.IsClassification ? $"accuracy {score:F4}" : $"RMSE {score:F4}, R² {r.RSquared:F4}");
            if (r.Faults.Any) Console.WriteLine("expert failures (left out, gates renormalised):" + Environment.NewLine + r.Faults);
            return 0;
        });
        return command;
    }
}
