using System.CommandLine;
using System.Globalization;
using MoeSharp.Classic.Data;
using MoeSharp.Classic.Diagnostics;
using MoeSharp.Classic.IO;
using MoeSharp.Classic.Models;

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
            var saved = MixtureFile.Load(p.GetValue(model)!.FullName);
            var schema = saved.Schema ?? throw new InvalidDataException($"{p.GetValue(model)!.FullName}: the model has no data schema (it was not saved by 'moe fit').");
            if (p.GetValue(topK) is { } k)
            {
                if (saved.Mixture is null) throw new ArgumentException("--top-k applies to flat mixtures; this model is hierarchical.");
                saved.Mixture.TopK = k;
            }
            var policy = p.GetValue(timeout) is { } ms ? new FaultPolicy { CallBudget = TimeSpan.FromMilliseconds(ms) } : FaultPolicy.Default;
            var table = CsvTable.Load(p.GetValue(csv)!.FullName);
            var x = schema.Inputs(table);
            var prediction = saved.Predict(x.Span, policy);
            Write(p.GetValue(output)!.FullName, table, schema, prediction.Output);
            Console.WriteLine($"predicted {table.Rows} rows → {p.GetValue(output)!.FullName}");
            if (table.HasColumn(schema.Target))
            {
                var data = schema.Encode(table);
                double score = MixtureReport.Evaluate(data, prediction.Output, Enumerable.Range(0, data.Rows).ToArray(), schema.TargetStd);
                Console.WriteLine(data.IsClassification
                    ? $"accuracy {score:F4}"
                    : $"RMSE {score:F4}, R² {MixtureReport.RSquared(data.Targets, prediction.Output):F4}");
            }
            if (prediction.Faults.Any) Console.WriteLine("expert failures (left out, gates renormalised):" + Environment.NewLine + prediction.Faults);
            return 0;
        });
        return command;
    }

    /// <summary>The input rows, then the prediction (a class value or a value in the target's units), then p_CLASS per class.</summary>
    private static void Write(string path, CsvTable table, TabularSchema schema, float[] output)
    {
        var inv = CultureInfo.InvariantCulture;
        using var writer = new StreamWriter(path);
        var header = table.Columns.Append("prediction");
        if (schema.Task == TabularTask.Classification) header = header.Concat(schema.ClassValues.Select(c => "p_" + c.ToString(inv)));
        writer.WriteLine(string.Join(',', header));
        int classes = schema.Classes;
        for (int r = 0; r < table.Rows; r++)
        {
            var fields = Enumerable.Range(0, table.Columns.Length).Select(c => table[r, c].ToString("R", inv));
            if (schema.Task == TabularTask.Classification)
            {
                var row = output.AsSpan(r * classes, classes);
                int best = row.IndexOf(System.Numerics.Tensors.TensorPrimitives.Max(row));
                fields = fields.Append(schema.ClassValues[best].ToString("R", inv)).Concat(row.ToArray().Select(v => v.ToString("G6", inv)));
            }
            else fields = fields.Append(schema.DecodeValue(output[r]).ToString("G8", inv));
            writer.WriteLine(string.Join(',', fields));
        }
    }
}
