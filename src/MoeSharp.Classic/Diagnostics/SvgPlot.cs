using System.Globalization;
using System.Net;
using System.Text;

namespace MoeSharp.Classic.Diagnostics;

/// <summary>
/// Self-contained SVG charts for reports: a scatter panel and a line chart with error bars. Plain strings, no
/// plotting package; they open in any browser and can be inlined in HTML.
/// </summary>
public static class SvgPlot
{
    /// <summary>Colours for categories (experts), distinguishable and colour-blind friendly (Okabe–Ito).</summary>
    public static readonly string[] Palette = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#F0E442", "#000000"];

    /// <summary>One series of a line chart: y ± error at each x.</summary>
    public sealed record Series(string Name, string Color, double[] X, double[] Y, double[]? Error = null);

    /// <summary>
    /// A scatter of points (x, y), each with its own colour and opacity (0..1), framed and titled.
    /// </summary>
    public static string Scatter(string title, double[] x, double[] y, string[] colors, double[] opacity, int width = 260, int height = 240, string xLabel = "PC1", string yLabel = "PC2")
    {
        var (x0, x1) = Range(x);
        var (y0, y1) = Range(y);
        const int pad = 28;
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" font-size=\"11\">");
        sb.Append(CultureInfo.InvariantCulture, $"<rect x=\"{pad}\" y=\"{pad}\" width=\"{width - 2 * pad}\" height=\"{height - 2 * pad}\" fill=\"white\" stroke=\"#999\"/>");
        sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{width / 2}\" y=\"16\" text-anchor=\"middle\" font-weight=\"bold\">{Escape(title)}</text>");
        sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{width / 2}\" y=\"{height - 8}\" text-anchor=\"middle\">{Escape(xLabel)}</text>");
        sb.Append(CultureInfo.InvariantCulture, $"<text x=\"12\" y=\"{height / 2}\" text-anchor=\"middle\" transform=\"rotate(-90 12 {height / 2})\">{Escape(yLabel)}</text>");
        for (int i = 0; i < x.Length; i++)
        {
            double px = pad + (x[i] - x0) / (x1 - x0) * (width - 2 * pad);
            double py = height - pad - (y[i] - y0) / (y1 - y0) * (height - 2 * pad);
            sb.Append(CultureInfo.InvariantCulture, $"<circle cx=\"{px:F1}\" cy=\"{py:F1}\" r=\"2.2\" fill=\"{colors[i]}\" fill-opacity=\"{Math.Clamp(opacity[i], 0, 1):F2}\"/>");
        }
        sb.Append("</svg>");
        return sb.ToString();
    }

    /// <summary>A line chart of several series with optional ± error bars, a legend and axis labels.</summary>
    public static string Lines(string title, string xLabel, string yLabel, IReadOnlyList<Series> series, int width = 560, int height = 360)
    {
        var xs = series.SelectMany(s => s.X).ToArray();
        var ys = series.SelectMany(s => s.Y.Select((v, i) => v - (s.Error?[i] ?? 0)).Concat(s.Y.Select((v, i) => v + (s.Error?[i] ?? 0)))).Append(0).ToArray();
        var (x0, x1) = Range(xs);
        var (y0, y1) = Range(ys);
        // The legend runs in rows under the title, so it never covers a line; names are sized at ~7 px a character.
        const int left = 60, right = 20, bottom = 46, entryGap = 18;
        var legend = new List<(int Row, double X)>();
        double cursor = left;
        int rows = 1;
        foreach (var line in series)
        {
            double entry = 22 + 7 * line.Name.Length + entryGap;
            if (cursor + entry > width - right && cursor > left) (cursor, rows) = (left, rows + 1);
            legend.Add((rows - 1, cursor));
            cursor += entry;
        }
        int top = 30 + 18 * rows + 8;
        double Px(double v) => left + (v - x0) / (x1 - x0) * (width - left - right);
        double Py(double v) => height - bottom - (v - y0) / (y1 - y0) * (height - top - bottom);
        var inv = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        sb.Append(inv, $"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" font-size=\"12\">");
        sb.Append(inv, $"<rect width=\"{width}\" height=\"{height}\" fill=\"white\"/>");
        sb.Append(inv, $"<text x=\"{width / 2}\" y=\"20\" text-anchor=\"middle\" font-weight=\"bold\">{Escape(title)}</text>");
        sb.Append(inv, $"<line x1=\"{left}\" y1=\"{height - bottom}\" x2=\"{width - right}\" y2=\"{height - bottom}\" stroke=\"black\"/>");
        sb.Append(inv, $"<line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{height - bottom}\" stroke=\"black\"/>");
        foreach (double t in Ticks(x0, x1))
            sb.Append(inv, $"<line x1=\"{Px(t):F1}\" y1=\"{height - bottom}\" x2=\"{Px(t):F1}\" y2=\"{height - bottom + 4}\" stroke=\"black\"/><text x=\"{Px(t):F1}\" y=\"{height - bottom + 17}\" text-anchor=\"middle\">{t:G4}</text>");
        foreach (double t in Ticks(y0, y1))
            sb.Append(inv, $"<line x1=\"{left - 4}\" y1=\"{Py(t):F1}\" x2=\"{width - right}\" y2=\"{Py(t):F1}\" stroke=\"#ddd\"/><text x=\"{left - 7}\" y=\"{Py(t) + 4:F1}\" text-anchor=\"end\">{t:G4}</text>");
        sb.Append(inv, $"<text x=\"{(left + width - right) / 2}\" y=\"{height - 8}\" text-anchor=\"middle\">{Escape(xLabel)}</text>");
        sb.Append(inv, $"<text x=\"14\" y=\"{(top + height - bottom) / 2}\" text-anchor=\"middle\" transform=\"rotate(-90 14 {(top + height - bottom) / 2})\">{Escape(yLabel)}</text>");
        for (int s = 0; s < series.Count; s++)
        {
            var line = series[s];
            var order = Enumerable.Range(0, line.X.Length).OrderBy(i => line.X[i]).ToArray();
            sb.Append(inv, $"<polyline fill=\"none\" stroke=\"{line.Color}\" stroke-width=\"2\" points=\"{string.Join(' ', order.Select(i => string.Create(inv, $"{Px(line.X[i]):F1},{Py(line.Y[i]):F1}")))}\"/>");
            foreach (int i in order)
            {
                sb.Append(inv, $"<circle cx=\"{Px(line.X[i]):F1}\" cy=\"{Py(line.Y[i]):F1}\" r=\"3.5\" fill=\"{line.Color}\"/>");
                if (line.Error is { } err && err[i] > 0)
                    sb.Append(inv, $"<line x1=\"{Px(line.X[i]):F1}\" y1=\"{Py(line.Y[i] - err[i]):F1}\" x2=\"{Px(line.X[i]):F1}\" y2=\"{Py(line.Y[i] + err[i]):F1}\" stroke=\"{line.Color}\"/>");
            }
            var (row, lx) = legend[s];
            sb.Append(inv, $"<rect x=\"{lx:F0}\" y=\"{32 + 18 * row}\" width=\"14\" height=\"4\" fill=\"{line.Color}\"/><text x=\"{lx + 20:F0}\" y=\"{38 + 18 * row}\">{Escape(line.Name)}</text>");
        }
        sb.Append("</svg>");
        return sb.ToString();
    }

    private static (double Lo, double Hi) Range(double[] v)
    {
        if (v.Length == 0) return (0, 1);
        double lo = v.Min(), hi = v.Max();
        if (hi - lo < 1e-12) return (lo - 1, hi + 1);
        double pad = 0.04 * (hi - lo);
        return (lo - pad, hi + pad);
    }

    /// <summary>About five round tick values inside [lo, hi].</summary>
    private static IEnumerable<double> Ticks(double lo, double hi)
    {
        double raw = (hi - lo) / 5, mag = Math.Pow(10, Math.Floor(Math.Log10(raw)));
        double step = new[] { 1.0, 2, 5, 10 }.Select(m => m * mag).First(s => s >= raw);
        for (double t = Math.Ceiling(lo / step) * step; t <= hi + 1e-9 * step; t += step) yield return Math.Abs(t) < 1e-12 * step ? 0 : t;
    }

    private static string Escape(string s) => WebUtility.HtmlEncode(s);
}
