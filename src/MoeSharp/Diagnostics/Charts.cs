using System.Globalization;
using System.Net;
using System.Text;

namespace MoeSharp.Diagnostics;

/// <summary>Colour scales for the report, all safe for the common forms of colour blindness.</summary>
internal static class Palette
{
    // Viridis (matplotlib's default map) sampled at nine evenly spaced points; it is close enough to linear in
    // sRGB between them that straight interpolation, here and in an SVG gradient, reproduces it within a shade.
    private static readonly (byte R, byte G, byte B)[] ViridisStops =
    [
        (68, 1, 84), (71, 44, 122), (59, 81, 139), (44, 113, 142), (33, 144, 141),
        (39, 173, 129), (92, 200, 99), (170, 220, 50), (253, 231, 37),
    ];

    /// <summary>Viridis at <paramref name="t"/>, clamped to [0, 1], as #rrggbb; dark purple at 0, yellow at 1.</summary>
    public static string Viridis(double t)
    {
        t = double.IsNaN(t) ? 0 : Math.Clamp(t, 0, 1);
        double x = t * (ViridisStops.Length - 1);
        int i = Math.Min((int)x, ViridisStops.Length - 2);
        double f = x - i;
        var (a, b) = (ViridisStops[i], ViridisStops[i + 1]);
        static int Mix(byte p, byte q, double f) => (int)Math.Round(p + (q - p) * f);
        return $"#{Mix(a.R, b.R, f):x2}{Mix(a.G, b.G, f):x2}{Mix(a.B, b.B, f):x2}";
    }

    /// <summary>The gradient stops of <see cref="Viridis"/>, offset and colour, for an SVG colour bar.</summary>
    public static IEnumerable<(double Offset, string Colour)> ViridisGradient() =>
        ViridisStops.Select((_, i) => ((double)i / (ViridisStops.Length - 1), Viridis((double)i / (ViridisStops.Length - 1))));

    /// <summary>Text colour that stays readable on a cell of <see cref="Viridis"/>(t).</summary>
    public static string TextOn(double t) => t < 0.6 ? "#ffffff" : "#1b1b1b";

    // Okabe & Ito's eight colours for categorical data, reordered to put the strongest contrasts first.
    private static readonly string[] Categories = ["#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#f0e442", "#000000"];

    /// <summary>Colour of series <paramref name="i"/> of <paramref name="n"/>: Okabe–Ito up to eight, viridis beyond.</summary>
    public static string Category(int i, int n) => n <= Categories.Length ? Categories[i] : Viridis(0.9 * i / (n - 1));

    /// <summary>Vermilion, for alerts: distinct from every viridis shade and from the first categorical colours.</summary>
    public const string Alert = "#d55e00";
}

/// <summary>A line of a <see cref="Charts.Line"/> chart; points in increasing X.</summary>
internal sealed record Series(string Name, string Colour, IReadOnlyList<(double X, double Y)> Points, bool Markers = false);

/// <summary>What to draw in a <see cref="Charts.Heatmap"/>; every callback is by (row, column).</summary>
internal sealed class HeatmapSpec
{
    /// <summary>Unique in the page: names the colour bar's gradient.</summary>
    public required string Id { get; init; }
    public required string Title { get; init; }
    public required int Rows { get; init; }
    public required int Columns { get; init; }
    public required double CellWidth { get; init; }
    public required double CellHeight { get; init; }

    /// <summary>The value that sets a cell's colour, or null for a neutral grey cell (e.g. a diagonal).</summary>
    public required Func<int, int, double?> Value { get; init; }
    public required Func<int, int, string> Tooltip { get; init; }

    /// <summary>The value drawn at the top of the colour scale; larger ones take its colour. The bottom is 0.</summary>
    public required double Max { get; init; }
    public required Func<double, string> Format { get; init; }

    /// <summary>Values above <see cref="Max"/> occur and are drawn in its colour; the scale's top reads "≥ max".</summary>
    public bool ClipsAbove { get; init; }
    public required string ScaleTitle { get; init; }
    public string? XTitle { get; init; }
    public string? YTitle { get; init; }
    public required IReadOnlyList<(int Index, string Label)> ColumnLabels { get; init; }
    public required IReadOnlyList<(int Index, string Label)> RowLabels { get; init; }

    /// <summary>Values printed inside the cells, when the cells are big enough to hold them.</summary>
    public bool CellText { get; init; }

    /// <summary>Labelled marks on the colour scale (e.g. the uniform share 1/E).</summary>
    public IReadOnlyList<(double Value, string Label)> ScaleMarks { get; init; } = [];

    /// <summary>Cells to point out (alerts): outlined, with a marker above their column.</summary>
    public IReadOnlyList<(int Row, int Column, string Tooltip)> Marks { get; init; } = [];
}

/// <summary>
/// Inline SVG charts written as text: a line chart with axes, ticks and legend, and a heatmap with a colour bar.
/// The output is well-formed XML (every text escaped, every element closed), so it can be checked by an XML parser.
/// </summary>
internal static class Charts
{
    private const double CharWidth = 6.4; // average advance of the 11px sans-serif labels, for layout

    public static string Num(double v, string format = "0.###") => v.ToString(format, CultureInfo.InvariantCulture);

    public static string Esc(string s) => WebUtility.HtmlEncode(s);

    /// <summary>Round tick values covering [min, max]: steps of 1, 2 or 5 times a power of ten.</summary>
    public static (double[] Ticks, double Step) Ticks(double min, double max, int target = 5)
    {
        double span = max - min;
        if (!(span > 0)) return ([min], 1);
        double raw = span / target, magnitude = Math.Pow(10, Math.Floor(Math.Log10(raw))), norm = raw / magnitude;
        double step = (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * magnitude;
        long first = (long)Math.Ceiling(min / step - 1e-9), last = (long)Math.Floor(max / step + 1e-9);
        var ticks = new double[Math.Max(0, last - first + 1)];
        // Multiplying an integer by the step, not adding steps, keeps 0.1·3 from drifting to 0.30000000000000004.
        for (long k = first; k <= last; k++) ticks[k - first] = k * step;
        return (ticks, step);
    }

    /// <summary>A tick label with as many decimals as the step needs; thousands as "k" when they are round.</summary>
    public static string TickLabel(double v, double step)
    {
        if (step >= 1000 && Math.Abs(v) >= 1000 && v % 1000 == 0) return Num(v / 1000, "0") + "k";
        int decimals = Math.Max(0, -(int)Math.Floor(Math.Log10(step) + 1e-9));
        return Num(v, "F" + decimals);
    }

    public static string Line(IReadOnlyList<Series> series, string xTitle, string yTitle, int width = 560, int height = 300)
    {
        const double right = 18, top = 30, bottom = 44;
        var all = series.SelectMany(s => s.Points).Where(p => double.IsFinite(p.X) && double.IsFinite(p.Y)).ToList();
        if (all.Count == 0) // a run that logged only infinities still gets a page, with the gap said out loud
            return $"<svg class=\"chart\" viewBox=\"0 0 {width} 40\" width=\"{width}\" height=\"40\"><text class=\"title\" x=\"8\" y=\"24\">{Esc(yTitle)}: no finite values to draw</text></svg>";
        double x0 = all.Min(p => p.X), x1 = all.Max(p => p.X), y0 = all.Min(p => p.Y), y1 = all.Max(p => p.Y);
        if (x1 == x0) (x0, x1) = (x0 - 1, x1 + 1);
        double pad = y1 > y0 ? 0.05 * (y1 - y0) : Math.Max(Math.Abs(y0) * 0.1, 1e-3);
        (y0, y1) = (y0 - pad, y1 + pad);
        var (yTicks, yStep) = Ticks(y0, y1);
        // The plot starts right of the widest y tick label, so the rotated axis title never runs into the labels.
        double left = 30 + yTicks.Max(t => TickLabel(t, yStep).Length) * CharWidth;
        double plotW = width - left - right, plotH = height - top - bottom;
        double X(double x) => left + (x - x0) / (x1 - x0) * plotW;
        double Y(double y) => top + (1 - (y - y0) / (y1 - y0)) * plotH;

        var sb = new StringBuilder();
        sb.Append($"<svg class=\"chart\" viewBox=\"0 0 {width} {height}\" width=\"{width}\" height=\"{height}\" role=\"img\" aria-label=\"{Esc(yTitle)} against {Esc(xTitle)}\">");
        foreach (double t in yTicks)
        {
            sb.Append($"<line class=\"grid\" x1=\"{Num(left)}\" x2=\"{Num(left + plotW)}\" y1=\"{Num(Y(t))}\" y2=\"{Num(Y(t))}\"/>");
            sb.Append($"<text class=\"tick\" x=\"{Num(left - 6)}\" y=\"{Num(Y(t) + 4)}\" text-anchor=\"end\">{TickLabel(t, yStep)}</text>");
        }
        var (xTicks, xStep) = Ticks(x0, x1, Math.Max(2, (int)Math.Round(plotW / 70)));
        foreach (double t in xTicks)
        {
            sb.Append($"<line class=\"axis\" x1=\"{Num(X(t))}\" x2=\"{Num(X(t))}\" y1=\"{Num(top + plotH)}\" y2=\"{Num(top + plotH + 5)}\"/>");
            sb.Append($"<text class=\"tick\" x=\"{Num(X(t))}\" y=\"{Num(top + plotH + 18)}\" text-anchor=\"middle\">{TickLabel(t, xStep)}</text>");
        }
        sb.Append($"<rect class=\"frame\" x=\"{Num(left)}\" y=\"{Num(top)}\" width=\"{Num(plotW)}\" height=\"{Num(plotH)}\"/>");
        sb.Append($"<text class=\"title\" x=\"{Num(left + plotW / 2)}\" y=\"{height - 6}\" text-anchor=\"middle\">{Esc(xTitle)}</text>");
        sb.Append($"<text class=\"title\" transform=\"translate(14 {Num(top + plotH / 2)}) rotate(-90)\" text-anchor=\"middle\">{Esc(yTitle)}</text>");

        foreach (var s in series)
        {
            var pts = Decimate(s.Points.Where(p => double.IsFinite(p.X) && double.IsFinite(p.Y)).ToList(), (int)plotW);
            if (pts.Count == 0) continue;
            sb.Append($"<g><title>{Esc(s.Name)}</title><polyline fill=\"none\" stroke=\"{s.Colour}\" stroke-width=\"1.8\" stroke-linejoin=\"round\" points=\"");
            foreach (var p in pts) sb.Append(Num(X(p.X), "0.#")).Append(',').Append(Num(Y(p.Y), "0.#")).Append(' ');
            sb.Append("\"/></g>");
            if (s.Markers)
                foreach (var p in pts)
                    sb.Append($"<circle cx=\"{Num(X(p.X), "0.#")}\" cy=\"{Num(Y(p.Y), "0.#")}\" r=\"3\" fill=\"{s.Colour}\"><title>{Esc(s.Name)} at step {Num(p.X)}: {Num(p.Y, "0.####")}</title></circle>");
        }

        double lx = left + 4;
        foreach (var s in series.Count > 1 ? series : []) // one line needs no legend: the axis title names it
        {
            sb.Append($"<line x1=\"{Num(lx)}\" x2=\"{Num(lx + 18)}\" y1=\"14\" y2=\"14\" stroke=\"{s.Colour}\" stroke-width=\"3\"/>");
            sb.Append($"<text class=\"legend\" x=\"{Num(lx + 23)}\" y=\"18\">{Esc(s.Name)}</text>");
            lx += 23 + s.Name.Length * CharWidth + 18;
        }
        return sb.Append("</svg>").ToString();
    }

    /// <summary>
    /// At most two points per pixel column, the lowest and the highest, in order: the drawn line keeps every spike
    /// of a long noisy curve while the page stays small.
    /// </summary>
    private static List<(double X, double Y)> Decimate(List<(double X, double Y)> pts, int columns)
    {
        if (pts.Count <= 2 * columns) return pts;
        var kept = new List<(double X, double Y)>(2 * columns + 2);
        double x0 = pts[0].X, span = pts[^1].X - x0;
        int i = 0;
        for (int c = 0; c < columns && i < pts.Count; c++)
        {
            double end = x0 + span * (c + 1) / columns;
            int lo = i, hi = i;
            for (; i < pts.Count && (pts[i].X <= end || c == columns - 1); i++)
            {
                if (pts[i].Y < pts[lo].Y) lo = i;
                if (pts[i].Y > pts[hi].Y) hi = i;
            }
            kept.Add(pts[Math.Min(lo, hi)]);
            if (hi != lo) kept.Add(pts[Math.Max(lo, hi)]);
        }
        return kept;
    }

    public static string Heatmap(HeatmapSpec h)
    {
        double labelW = h.RowLabels.Count == 0 ? 0 : h.RowLabels.Max(l => l.Label.Length) * CharWidth + 8;
        double left = (h.YTitle is null ? 6 : 22) + labelW, top = 16;
        double plotW = h.Columns * h.CellWidth, plotH = h.Rows * h.CellHeight;
        double barX = left + plotW + 18, barH = Math.Max(plotH, 90);
        double scaleLabelW = 4 + Math.Max(h.ScaleMarks.Select(m => m.Label.Length).DefaultIfEmpty(0).Max(), Math.Max(h.Format(h.Max).Length + 1, 4)) * CharWidth;
        double width = barX + 12 + scaleLabelW + 22, height = top + barH + (h.XTitle is null ? 24 : 40);

        var sb = new StringBuilder();
        sb.Append($"<svg class=\"heatmap\" viewBox=\"0 0 {Num(width, "0")} {Num(height, "0")}\" width=\"{Num(width, "0")}\" height=\"{Num(height, "0")}\" role=\"img\" aria-label=\"{Esc(h.Title)}\">");
        sb.Append($"<defs><linearGradient id=\"{h.Id}-scale\" x1=\"0\" y1=\"1\" x2=\"0\" y2=\"0\">");
        foreach (var (offset, colour) in Palette.ViridisGradient()) sb.Append($"<stop offset=\"{Num(offset)}\" stop-color=\"{colour}\"/>");
        sb.Append("</linearGradient></defs>");

        bool text = h.CellText && h.CellWidth >= 30 && h.CellHeight >= 16;
        sb.Append("<g shape-rendering=\"crispEdges\">");
        for (int r = 0; r < h.Rows; r++)
        {
            for (int c = 0; c < h.Columns; c++)
            {
                double? v = h.Value(r, c);
                double t = v is double d && h.Max > 0 ? d / h.Max : 0;
                string fill = v is null ? "#d9d9d9" : Palette.Viridis(t);
                double x = left + c * h.CellWidth, y = top + r * h.CellHeight;
                sb.Append($"<rect x=\"{Num(x, "0.##")}\" y=\"{Num(y, "0.##")}\" width=\"{Num(h.CellWidth, "0.##")}\" height=\"{Num(h.CellHeight, "0.##")}\" fill=\"{fill}\"><title>{Esc(h.Tooltip(r, c))}</title></rect>");
                // The colour goes in a style attribute: the page's "svg text" rule would beat a fill attribute.
                if (text && v is double value)
                    sb.Append($"<text class=\"cell\" x=\"{Num(x + h.CellWidth / 2)}\" y=\"{Num(y + h.CellHeight / 2 + 4)}\" text-anchor=\"middle\" style=\"fill:{Palette.TextOn(t)}\">{Esc(h.Format(value))}</text>");
            }
        }
        sb.Append("</g>");

        foreach (var (r, c, tip) in h.Marks)
        {
            double x = left + c * h.CellWidth, y = top + r * h.CellHeight, cx = x + h.CellWidth / 2;
            sb.Append($"<g class=\"mark\"><title>{Esc(tip)}</title>");
            sb.Append($"<rect x=\"{Num(x - 1)}\" y=\"{Num(y - 1)}\" width=\"{Num(h.CellWidth + 2)}\" height=\"{Num(h.CellHeight + 2)}\" fill=\"none\" stroke=\"{Palette.Alert}\" stroke-width=\"2\"/>");
            sb.Append($"<path d=\"M{Num(cx - 5)} 2 L{Num(cx + 5)} 2 L{Num(cx)} {Num(top - 3)} Z\" fill=\"{Palette.Alert}\"/></g>");
        }

        foreach (var (r, label) in h.RowLabels)
            sb.Append($"<text class=\"tick\" x=\"{Num(left - 5)}\" y=\"{Num(top + (r + 0.5) * h.CellHeight + 4)}\" text-anchor=\"end\">{Esc(label)}</text>");
        foreach (var (c, label) in h.ColumnLabels)
            sb.Append($"<text class=\"tick\" x=\"{Num(left + (c + 0.5) * h.CellWidth)}\" y=\"{Num(top + plotH + 15)}\" text-anchor=\"middle\">{Esc(label)}</text>");
        if (h.XTitle is not null)
            sb.Append($"<text class=\"title\" x=\"{Num(left + plotW / 2)}\" y=\"{Num(top + plotH + 33)}\" text-anchor=\"middle\">{Esc(h.XTitle)}</text>");
        if (h.YTitle is not null)
            sb.Append($"<text class=\"title\" transform=\"translate(12 {Num(top + plotH / 2)}) rotate(-90)\" text-anchor=\"middle\">{Esc(h.YTitle)}</text>");

        // Colour bar: the gradient, three value ticks, the marks, and its title along its right side.
        sb.Append($"<rect x=\"{Num(barX)}\" y=\"{Num(top)}\" width=\"12\" height=\"{Num(barH)}\" fill=\"url(#{h.Id}-scale)\"/>");
        double BarY(double v) => top + barH * (1 - Math.Clamp(v / h.Max, 0, 1));
        foreach (double v in new[] { 0, h.Max / 2, h.Max })
            if (!h.ScaleMarks.Any(m => Math.Abs(BarY(m.Value) - BarY(v)) < 12)) // a mark takes the place of a tick it would overprint
                sb.Append($"<text class=\"tick\" x=\"{Num(barX + 16)}\" y=\"{Num(BarY(v) + 4)}\">{(h.ClipsAbove && v == h.Max ? "≥" : "")}{Esc(h.Format(v))}</text>");
        foreach (var (v, label) in h.ScaleMarks)
        {
            sb.Append($"<line x1=\"{Num(barX - 3)}\" x2=\"{Num(barX + 15)}\" y1=\"{Num(BarY(v))}\" y2=\"{Num(BarY(v))}\" stroke=\"#1b1b1b\" stroke-width=\"1.5\"/>");
            sb.Append($"<text class=\"tick mark-label\" x=\"{Num(barX + 16)}\" y=\"{Num(BarY(v) + 4)}\">{Esc(label)}</text>");
        }
        sb.Append($"<text class=\"title\" transform=\"translate({Num(width - 6)} {Num(top + barH / 2)}) rotate(-90)\" text-anchor=\"middle\">{Esc(h.ScaleTitle)}</text>");
        return sb.Append("</svg>").ToString();
    }
}
