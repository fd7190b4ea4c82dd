using MoeSharp.Tensors;

namespace MoeSharp.Classic.Data;

/// <summary>
/// How a CSV table becomes <see cref="TabularData"/> and back: the feature columns in order, the target column, the
/// task, the class values (class index i stands for label value ClassValues[i]), and the standardisation of the
/// inputs (and of a regression target) fitted on training rows. It is saved with a model so that prediction
/// applies exactly the same transform.
/// </summary>
public sealed record TabularSchema
{
    /// <summary>[D] the CSV columns used as inputs, in model input order.</summary>
    public required string[] Features { get; init; }
    /// <summary>The CSV column that holds the label or the regression target.</summary>
    public required string Target { get; init; }
    /// <summary>Classification or regression, as chosen or inferred from the target column.</summary>
    public TabularTask Task { get; init; }

    /// <summary>[classes] the label value of each class index, ascending; empty for regression.</summary>
    public double[] ClassValues { get; init; } = [];

    /// <summary>[D] mean and standard deviation of each feature on the training rows (a constant column gets 1).</summary>
    public float[] InputMean { get; init; } = [];

    /// <summary>[D] standard deviation of each feature on the training rows (1 for a constant column); inputs are divided by it.</summary>
    public float[] InputStd { get; init; } = [];

    /// <summary>Regression: the target is modelled as (y − TargetMean) / TargetStd.</summary>
    public double TargetMean { get; init; }

    /// <summary>Regression: the target's standard deviation on the training rows (1 when constant).</summary>
    public double TargetStd { get; init; } = 1;

    /// <summary>Targets with at most this many distinct integer values are taken as classes when no task is given.</summary>
    public const int MaxInferredClasses = 20;

    /// <summary>
    /// Chooses features (every column but the target and <paramref name="exclude"/>), the task (when not given: integer
    /// targets with at most <see cref="MaxInferredClasses"/> distinct values mean classification) and the classes, and
    /// fits the standardisation on <paramref name="rows"/> (default: all).
    /// </summary>
    public static TabularSchema Fit(CsvTable table, string target, TabularTask? task = null, IReadOnlyCollection<string>? exclude = null, IReadOnlyList<int>? rows = null)
    {
        int t = table.ColumnIndex(target);
        foreach (var name in exclude ?? []) table.ColumnIndex(name);
        var features = table.Columns.Where((c, i) => i != t && !(exclude?.Contains(c) ?? false)).ToArray();
        if (features.Length == 0) throw new ArgumentException($"{table.Source}: no feature columns are left besides the target '{target}'.");
        var y = table.Column(target);
        var distinct = y.Distinct().Order().ToArray();
        bool integral = y.All(v => v == Math.Round(v));
        var resolved = task ?? (integral && distinct.Length <= MaxInferredClasses ? TabularTask.Classification : TabularTask.Regression);
        if (resolved == TabularTask.Classification)
        {
            if (distinct.Length < 2)
                throw new InvalidDataException($"{table.Source}: target column '{target}' has a single class ({distinct[0]}) across {table.Rows} rows; classification needs at least two.");
            if (!integral)
            {
                int bad = Array.FindIndex(y, v => v != Math.Round(v));
                throw new InvalidDataException($"{table.Source}: target column '{target}' has the non-integer value {y[bad]} in data row {bad + 1}; classification needs class labels (use --task regression for a real-valued target).");
            }
        }
        rows ??= Enumerable.Range(0, table.Rows).ToArray();
        var cols = features.Select(table.ColumnIndex).ToArray();
        var mean = new float[cols.Length];
        var std = new float[cols.Length];
        for (int j = 0; j < cols.Length; j++)
        {
            var (m, s) = Moments(rows.Select(r => table[r, cols[j]]));
            mean[j] = (float)m;
            std[j] = s > 1e-12 ? (float)s : 1f;
        }
        var (tm, ts) = resolved == TabularTask.Regression ? Moments(rows.Select(r => y[r])) : (0, 1);
        return new TabularSchema
        {
            Features = features, Target = target, Task = resolved,
            ClassValues = resolved == TabularTask.Classification ? distinct : [],
            InputMean = mean, InputStd = std, TargetMean = tm, TargetStd = ts > 1e-12 ? ts : 1,
        };
    }

    /// <summary>Number of classes; 0 for regression.</summary>
    public int Classes => ClassValues.Length;

    /// <summary>[N,D] the standardised feature columns of <paramref name="table"/>, which must have every feature.</summary>
    public Tensor Inputs(CsvTable table)
    {
        var cols = Features.Select(f => table.HasColumn(f) ? table.ColumnIndex(f)
            : throw new ArgumentException($"{table.Source}: the model needs feature column '{f}', which the file does not have.")).ToArray();
        var x = new Tensor(table.Rows, cols.Length);
        var s = x.Span;
        for (int r = 0; r < table.Rows; r++)
            for (int j = 0; j < cols.Length; j++)
                s[r * cols.Length + j] = (float)((table[r, cols[j]] - InputMean[j]) / InputStd[j]);
        return x;
    }

    /// <summary>The table as standardised model data; the target column must be present.</summary>
    public TabularData Encode(CsvTable table)
    {
        var x = Inputs(table);
        var y = table.Column(Target);
        if (Task == TabularTask.Classification)
        {
            var labels = new int[y.Length];
            for (int r = 0; r < y.Length; r++)
            {
                labels[r] = Array.BinarySearch(ClassValues, y[r]);
                if (labels[r] < 0)
                    throw new InvalidDataException($"{table.Source} data row {r + 1}, column '{Target}': class {y[r]} was not among the training classes ({string.Join(", ", ClassValues)}).");
            }
            return new TabularData(x, Task, labels, null, Classes, Features);
        }
        return new TabularData(x, Task, null, y.Select(v => (float)((v - TargetMean) / TargetStd)).ToArray(), 0, Features);
    }

    /// <summary>A model's regression output back in the target's units.</summary>
    public double DecodeValue(float standardised) => TargetMean + TargetStd * standardised;

    private static (double Mean, double Std) Moments(IEnumerable<double> values)
    {
        double sum = 0, sq = 0;
        int n = 0;
        foreach (double v in values)
        {
            sum += v;
            n++;
        }
        double mean = sum / Math.Max(1, n);
        foreach (double v in values) sq += (v - mean) * (v - mean);
        return (mean, Math.Sqrt(sq / Math.Max(1, n)));
    }
}
