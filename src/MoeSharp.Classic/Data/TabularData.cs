using MoeSharp.Tensors;

namespace MoeSharp.Classic.Data;

/// <summary>What a tabular model predicts: a class (probabilities over classes) or a real value.</summary>
public enum TabularTask
{
    /// <summary>Predict a class: outputs are probabilities over the classes.</summary>
    Classification,

    /// <summary>Predict a real value: one output.</summary>
    Regression,
}

/// <summary>
/// Rows of numeric inputs X [N,D] with one target per row: a class index in [0, Classes) for classification, a real
/// value for regression. Models see the data after <see cref="TabularSchema"/> has standardised it.
/// </summary>
public sealed class TabularData
{
    /// <summary>Rows X [N, D] with <paramref name="labels"/> [N] in [0, <paramref name="classes"/>) for classification, or <paramref name="targets"/> [N] for regression; checked, with a message naming the bad argument.</summary>
    public TabularData(Tensor x, TabularTask task, int[]? labels = null, float[]? targets = null, int classes = 0, string[]? featureNames = null)
    {
        ArgumentNullException.ThrowIfNull(x);
        if (x.Rank != 2) throw new ArgumentException($"Tabular inputs must be [rows, features], got {Shapes.Format(x.Shape)}.", nameof(x));
        int n = x.Dim(0);
        X = x;
        Task = task;
        if (task == TabularTask.Classification)
        {
            if (labels is null || labels.Length != n) throw new ArgumentException($"Classification needs {n} labels, got {labels?.Length ?? 0}.", nameof(labels));
            if (classes < 2) throw new ArgumentException($"Classification needs at least 2 classes, got {classes}.", nameof(classes));
            for (int r = 0; r < n; r++)
                if ((uint)labels[r] >= (uint)classes) throw new ArgumentException($"Label {labels[r]} of row {r} is outside [0, {classes}).", nameof(labels));
            Labels = labels;
            Targets = [];
            Classes = classes;
        }
        else
        {
            if (targets is null || targets.Length != n) throw new ArgumentException($"Regression needs {n} targets, got {targets?.Length ?? 0}.", nameof(targets));
            Labels = [];
            Targets = targets;
        }
        FeatureNames = featureNames ?? Enumerable.Range(0, x.Dim(1)).Select(i => $"x{i}").ToArray();
        if (FeatureNames.Length != x.Dim(1)) throw new ArgumentException($"{FeatureNames.Length} feature names for {x.Dim(1)} features.", nameof(featureNames));
    }

    /// <summary>[N,D] inputs.</summary>
    public Tensor X { get; }

    /// <summary>Whether the rows carry class labels or regression targets.</summary>
    public TabularTask Task { get; }
    /// <summary>Number of rows N.</summary>
    public int Rows => X.Dim(0);
    /// <summary>Number of input features D.</summary>
    public int Features => X.Dim(1);

    /// <summary>[N] class indices (classification); empty for regression.</summary>
    public int[] Labels { get; }

    /// <summary>[N] targets (regression); empty for classification.</summary>
    public float[] Targets { get; }

    /// <summary>Number of classes; 0 for regression.</summary>
    public int Classes { get; }

    /// <summary>Width of a model's output: the class count, or 1 for a regression value.</summary>
    public int Outputs => Task == TabularTask.Classification ? Classes : 1;

    /// <summary>[D] the feature names (CSV column names, or x0, x1, …), for reports.</summary>
    public string[] FeatureNames { get; }

    /// <summary>Whether <see cref="Task"/> is classification.</summary>
    public bool IsClassification => Task == TabularTask.Classification;

    /// <summary>The rows <paramref name="rows"/>, copied, in that order.</summary>
    public TabularData Subset(IReadOnlyList<int> rows)
    {
        int d = Features;
        var x = new Tensor(rows.Count, d);
        for (int i = 0; i < rows.Count; i++) X.Span.Slice(rows[i] * d, d).CopyTo(x.Span.Slice(i * d, d));
        return IsClassification
            ? new TabularData(x, Task, rows.Select(r => Labels[r]).ToArray(), null, Classes, FeatureNames)
            : new TabularData(x, Task, null, rows.Select(r => Targets[r]).ToArray(), 0, FeatureNames);
    }
}
