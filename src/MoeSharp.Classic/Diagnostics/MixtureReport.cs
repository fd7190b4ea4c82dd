using System.Globalization;
using System.Net;
using System.Text;
using MoeSharp.Classic.Data;
using MoeSharp.Classic.Experts;
using MoeSharp.Classic.Models;

namespace MoeSharp.Classic.Diagnostics;

/// <summary>
/// One expert's region: the rows whose largest gate weight is its own, their share of all rows (load), the
/// expert's mean gate weight over all rows (importance), and the score of the expert alone and of the whole mixture
/// on its rows (accuracy, or RMSE in the target's units).
/// </summary>
public sealed record ExpertRegion(int Expert, string Name, string Kind, int Rows, double Load, double Importance, double ExpertScore, double MixtureScore);

/// <summary>
/// Which expert handles which region of a fitted mixture: gate weights against the first two principal components of
/// the inputs, and per-expert load and accuracy on the rows routed to it. Written as text and as a self-contained
/// HTML page with inline SVG.
/// </summary>
public sealed class MixtureReport
{
    private MixtureReport() { }

    /// <summary>Whether the model classifies or regresses.</summary>
    public TabularTask Task { get; private init; }

    /// <summary>"accuracy" or "RMSE".</summary>
    public string Metric => Task == TabularTask.Classification ? "accuracy" : "RMSE";

    /// <summary>The mixture's accuracy, or RMSE in the target's units, over all rows.</summary>
    public double Score { get; private init; }

    /// <summary>Regression: the coefficient of determination; classification: NaN.</summary>
    public double R2 { get; private init; } = double.NaN;

    /// <summary>Number of rows the report was measured on.</summary>
    public int Rows { get; private init; }
    /// <summary>Per expert: its share of the rows and where in input space the gate sends rows to it.</summary>
    public IReadOnlyList<ExpertRegion> Experts { get; private init; } = [];

    /// <summary>[N,2] coordinates along the first two principal components.</summary>
    public double[] Projection { get; private init; } = [];

    /// <summary>[2] share of the input variance along PC1 and PC2.</summary>
    public double[] Explained { get; private init; } = [];

    /// <summary>[N,E] effective gate weights (over all experts, groups flattened).</summary>
    public float[] Gates { get; private init; } = [];

    /// <summary>[N] the expert with the largest gate weight.</summary>
    public int[] Routed { get; private init; } = [];

    /// <summary>Measures <paramref name="model"/> on <paramref name="data"/> (already standardised); <paramref name="schema"/>, when given, names the features.</summary>
    public static MixtureReport Build(SavedMixture model, TabularData data, TabularSchema? schema = null)
    {
        var experts = model.Mixture is { } m
            ? m.Experts.Select((e, i) => ($"expert {i}", e)).ToList()
            : model.Hierarchy!.Groups.SelectMany((g, i) => g.Experts.Select((e, j) => ($"group {i} expert {j}", e))).ToList();
        var x = data.X.Span;
        int n = data.Rows, count = experts.Count, o = data.Outputs;
        var prediction = model.Predict(x);
        var gates = prediction.Gates;
        var routed = new int[n];
        for (int r = 0; r < n; r++)
        {
            var row = gates.AsSpan(r * count, count);
            routed[r] = row.IndexOf(TensorPrimitives.Max(row));
        }
        double scale = data.IsClassification ? 1 : schema?.TargetStd ?? 1;
        var regions = new List<ExpertRegion>();
        for (int e = 0; e < count; e++)
        {
            var rows = Enumerable.Range(0, n).Where(r => routed[r] == e).ToArray();
            var alone = new float[n * o];
            double expertScore;
            try
            {
                experts[e].Item2.Predict(x, alone);
                expertScore = Evaluate(data, alone, rows, scale);
            }
            catch (Exception)
            {
                // A failing expert gets no score; the mixture's prediction already excluded it.
                expertScore = double.NaN;
            }
            double importance = 0;
            for (int r = 0; r < n; r++) importance += gates[r * count + e] / n;
            regions.Add(new ExpertRegion(e, experts[e].Item1, experts[e].Item2.Kind, rows.Length, rows.Length / (double)n, importance,
                expertScore, Evaluate(data, prediction.Output, rows, scale)));
        }
        var all = Enumerable.Range(0, n).ToArray();
        var pca = Pca.Fit(x, data.Features, 2);
        var projection = pca.Project(x);
        if (pca.Components.Length == 1) projection = Enumerable.Range(0, 2 * n).Select(i => i % 2 == 0 ? projection[i / 2] : 0).ToArray();
        return new MixtureReport
        {
            Task = data.Task,
            Score = Evaluate(data, prediction.Output, all, scale),
            R2 = data.IsClassification ? double.NaN : RSquared(data.Targets, prediction.Output),
            Rows = n,
            Experts = regions,
            Projection = projection,
            Explained = pca.ExplainedVariance.Concat([0.0]).Take(2).ToArray(),
            Gates = gates,
            Routed = routed,
        };
    }

    /// <summary>Accuracy of the argmax class, or RMSE times <paramref name="scale"/>, over <paramref name="rows"/>; NaN for none.</summary>
    public static double Evaluate(TabularData data, float[] output, int[] rows, double scale)
    {
        if (rows.Length == 0) return double.NaN;
        int o = data.Outputs;
        if (data.IsClassification)
        {
            int hits = 0;
            foreach (int r in rows)
            {
                var row = output.AsSpan(r * o, o);
                if (row.IndexOf(TensorPrimitives.Max(row)) == data.Labels[r]) hits++;
            }
            return hits / (double)rows.Length;
        }
        double s = 0;
        foreach (int r in rows) s += (output[r] - data.Targets[r]) * (double)(output[r] - data.Targets[r]);
        return scale * Math.Sqrt(s / rows.Length);
    }

    /// <summary>1 − Σ(y − ŷ)² / Σ(y − ȳ)².</summary>
    public static double RSquared(IReadOnlyList<float> y, IReadOnlyList<float> predicted)
    {
        double mean = y.Average(v => (double)v), ss = 0, st = 0;
        for (int i = 0; i < y.Count; i++)
        {
            ss += (y[i] - predicted[i]) * (double)(y[i] - predicted[i]);
            st += (y[i] - mean) * (y[i] - mean);
        }
        return st > 0 ? 1 - ss / st : double.NaN;
    }

    /// <summary>The report as plain text, for a terminal.</summary>
    public string ToText()
    {
        var inv = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        sb.Append(inv, $"mixture of {Experts.Count} experts, {Rows} rows: {Metric} {Score:F4}");
        if (!double.IsNaN(R2)) sb.Append(inv, $", R² {R2:F4}");
        sb.AppendLine();
        sb.AppendLine(string.Create(inv, $"inputs: PC1 {Explained[0]:P1}, PC2 {Explained[1]:P1} of the variance"));
        string metric = Metric;
        sb.AppendLine(string.Create(inv, $"{"expert",-20} {"kind",-8} {"rows",6} {"load",7} {"importance",10} {"expert " + metric,16} {"mixture " + metric,17}"));
        foreach (var e in Experts)
            sb.AppendLine(string.Create(inv, $"{e.Name,-20} {e.Kind,-8} {e.Rows,6} {e.Load,7:P1} {e.Importance,10:F3} {Format(e.ExpertScore),16} {Format(e.MixtureScore),17}"));
        sb.AppendLine($"(each expert's rows are those whose largest gate weight is its own; scores on those rows)");
        return sb.ToString();
    }

    /// <summary>The report as a self-contained HTML page titled <paramref name="title"/> (inline SVG, no network).</summary>
    public string ToHtml(string title)
    {
        var inv = CultureInfo.InvariantCulture;
        int count = Experts.Count, n = Rows;
        var xs = Enumerable.Range(0, n).Select(r => Projection[2 * r]).ToArray();
        var ys = Enumerable.Range(0, n).Select(r => Projection[2 * r + 1]).ToArray();
        var sb = new StringBuilder();
        sb.Append("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>").Append(WebUtility.HtmlEncode(title)).Append("</title>");
        sb.Append("<style>body{font-family:sans-serif;margin:24px}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#f4f4f4}.panels svg{margin:4px}</style></head><body>");
        sb.Append("<h1>").Append(WebUtility.HtmlEncode(title)).Append("</h1>");
        sb.Append(inv, $"<p>{count} experts, {n} rows. Mixture {Metric}: <b>{Score:F4}</b>");
        if (!double.IsNaN(R2)) sb.Append(inv, $", R² <b>{R2:F4}</b>");
        sb.Append(inv, $". Inputs projected on their first two principal components (PC1 {Explained[0]:P1}, PC2 {Explained[1]:P1} of the variance).</p>");
        sb.Append(inv, $"<table><tr><th>expert</th><th>kind</th><th>rows routed</th><th>load</th><th>importance</th><th>expert {Metric} on its rows</th><th>mixture {Metric} on its rows</th></tr>");
        foreach (var e in Experts)
            sb.Append(inv, $"<tr><td style=\"color:{SvgPlot.Palette[e.Expert % SvgPlot.Palette.Length]}\">{WebUtility.HtmlEncode(e.Name)}</td><td>{WebUtility.HtmlEncode(e.Kind)}</td><td>{e.Rows}</td><td>{e.Load:P1}</td><td>{e.Importance:F3}</td><td>{Format(e.ExpertScore)}</td><td>{Format(e.MixtureScore)}</td></tr>");
        sb.Append("</table><p>A row is routed to the expert with its largest gate weight; load is the share of rows routed, importance the mean gate weight.</p>");
        sb.Append("<h2>Gate responsibilities against the principal components</h2><div class=\"panels\">");
        var colors = Routed.Select(e => SvgPlot.Palette[e % SvgPlot.Palette.Length]).ToArray();
        var maxGate = Enumerable.Range(0, n).Select(r => (double)Gates[r * count + Routed[r]]).ToArray();
        sb.Append(SvgPlot.Scatter("largest gate weight (colour = expert)", xs, ys, colors, maxGate));
        for (int e = 0; e < count; e++)
        {
            var weight = Enumerable.Range(0, n).Select(r => (double)Gates[r * count + e]).ToArray();
            var color = Enumerable.Repeat(SvgPlot.Palette[e % SvgPlot.Palette.Length], n).ToArray();
            sb.Append(SvgPlot.Scatter($"{Experts[e].Name} ({Experts[e].Kind}): gate weight", xs, ys, color, weight));
        }
        sb.Append("</div><p>Opacity is the gate weight: dark points are the inputs an expert is responsible for.</p></body></html>");
        return sb.ToString();
    }

    /// <summary>Writes report.txt and report.html into <paramref name="folder"/>.</summary>
    public void Write(string folder, string title)
    {
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, "report.txt"), ToText());
        File.WriteAllText(Path.Combine(folder, "report.html"), ToHtml(title));
    }

    private static string Format(double v) => double.IsNaN(v) ? "—" : v.ToString("F4", CultureInfo.InvariantCulture);
}
