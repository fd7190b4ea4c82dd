using System.Globalization;
using System.Numerics.Tensors;
using MoeSharp.Classic.Data;
using MoeSharp.Classic.Diagnostics;
using MoeSharp.Classic.Models;

namespace MoeSharp.Classic.IO;

/// <summary>The settings of <see cref="MixturePredict.Run"/>; the defaults are <c>moe predict</c>'s.</summary>
public sealed record MixturePredictOptions
{
    /// <summary>Experts per row at inference (0: all); null keeps the saved model's setting. Flat mixtures only.</summary>
    public int? TopK { get; init; }

    /// <summary>Time budget of one call to one expert; an expert over it is left out and the gate renormalised. Null: no budget.</summary>
    public TimeSpan? CallBudget { get; init; }
}

/// <summary>What <see cref="MixturePredict.Run"/> did: the rows written and, when the CSV holds the target, the score.</summary>
/// <param name="Rows">Rows predicted and written.</param>
/// <param name="OutputPath">The predictions CSV.</param>
/// <param name="IsClassification">Whether <see cref="Score"/> is an accuracy (else an RMSE in the target's units).</param>
/// <param name="Score">Accuracy or RMSE against the CSV's target column; null when the CSV has none.</param>
/// <param name="RSquared">R² for regression with a target column; null otherwise.</param>
/// <param name="Faults">Experts left out during prediction, with the reasons.</param>
public sealed record MixturePredictResult(int Rows, string OutputPath, bool IsClassification, double? Score, double? RSquared, FaultReport Faults);

/// <summary>
/// Applies a model saved by <see cref="MixtureFit"/> (<c>moe fit</c>) to a CSV: writes the input rows with their
/// predictions (and one probability column per class) and scores them when the target column is present.
/// </summary>
public static class MixturePredict
{
    /// <summary>Predicts every row of <paramref name="csvPath"/> with the model in <paramref name="modelFolder"/> into <paramref name="outputPath"/>, written atomically.</summary>
    public static MixturePredictResult Run(string modelFolder, string csvPath, string outputPath, MixturePredictOptions? options = null)
    {
        options ??= new MixturePredictOptions();
        var saved = MixtureFile.Load(modelFolder);
        var schema = saved.Schema ?? throw new InvalidDataException($"{modelFolder}: the model has no data schema (it was not saved by 'moe fit').");
        if (options.TopK is { } k)
        {
            if (saved.Mixture is null) throw new ArgumentException($"top-k applies to flat mixtures; {modelFolder} holds a hierarchical one.");
            saved.Mixture.TopK = k;
        }
        var policy = options.CallBudget is { } budget ? new FaultPolicy { CallBudget = budget } : FaultPolicy.Default;
        var table = CsvTable.Load(csvPath);
        var prediction = saved.Predict(schema.Inputs(table).Span, policy);
        Write(outputPath, table, schema, prediction.Output);
        if (!table.HasColumn(schema.Target))
            return new(table.Rows, outputPath, schema.Task == TabularTask.Classification, null, null, prediction.Faults);
        var data = schema.Encode(table);
        double score = MixtureReport.Evaluate(data, prediction.Output, Enumerable.Range(0, data.Rows).ToArray(), schema.TargetStd);
        double? r2 = data.IsClassification ? null : MixtureReport.RSquared(data.Targets, prediction.Output);
        return new(table.Rows, outputPath, data.IsClassification, score, r2, prediction.Faults);
    }

    /// <summary>The input rows, then the prediction (a class value or a value in the target's units), then p_CLASS per class.</summary>
    private static void Write(string path, CsvTable table, TabularSchema schema, float[] output)
    {
        var inv = CultureInfo.InvariantCulture;
        // Written beside the target and renamed over it, so an interrupted run never leaves half a file.
        string temp = path + ".tmp";
        using (var writer = new StreamWriter(temp))
        {
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
                    int best = row.IndexOf(TensorPrimitives.Max(row));
                    fields = fields.Append(schema.ClassValues[best].ToString("R", inv)).Concat(row.ToArray().Select(v => v.ToString("G6", inv)));
                }
                else fields = fields.Append(schema.DecodeValue(output[r]).ToString("G8", inv));
                writer.WriteLine(string.Join(',', fields));
            }
        }
        File.Move(temp, path, overwrite: true);
    }
}
