using System.Globalization;
using System.Text.RegularExpressions;
using MoeSharp.Classic.Diagnostics;

namespace MoeSharp.Classic.Tests.Diagnostics;

public class SvgPlotTests
{
    private static double[] Attribute(string svg, string element, string attribute) =>
        Regex.Matches(svg, $"<{element} [^>]*?{attribute}=\"([-0-9.]+)\"").Select(m => double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture)).ToArray();

    [Fact]
    public void TheLegendSitsAboveEveryPointAndWrapsInsideTheWidth()
    {
        double[] x = [0, 0.5, 1];
        var series = Enumerable.Range(0, 4)
            .Select(i => new SvgPlot.Series($"a fairly long series name {i}", SvgPlot.Palette[i], x, [10 + i, 0, 10 - i], [1, 1, 1])).ToArray();
        string svg = SvgPlot.Lines("title", "x", "y", series, width: 400, height: 300);
        var legendY = Attribute(svg, "rect", "y").Where(v => v > 0).ToArray(); // the background rect has no y
        var legendX = Attribute(svg, "rect", "x");
        var pointY = Attribute(svg, "circle", "cy");
        Assert.Equal(4, legendY.Length);
        Assert.Equal(12, pointY.Length);
        // Each legend swatch is 4 px high; the highest point (with its error bar) must start below all of them.
        Assert.True(pointY.Min() > legendY.Max() + 4, $"highest point at y {pointY.Min()}, legend down to y {legendY.Max() + 4}");
        Assert.True(legendY.Distinct().Count() > 1, "four long names cannot share one 400 px row");
        Assert.All(legendX, v => Assert.InRange(v, 0, 400));
    }
}
