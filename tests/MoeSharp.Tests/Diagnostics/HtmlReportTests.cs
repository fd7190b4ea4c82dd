using System.Text.RegularExpressions;
using System.Xml;
using System.Xml.Linq;
using MoeSharp.Diagnostics;

namespace MoeSharp.Tests.Diagnostics;

public sealed class HtmlReportTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), $"moe-report-{Guid.NewGuid():N}");

    public void Dispose()
    {
        if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true);
    }

    /// <summary>The whole page parsed as XML: the report is written to be well-formed, SVGs included.</summary>
    private static XDocument Parse(string path)
    {
        using var reader = XmlReader.Create(path, new XmlReaderSettings { DtdProcessing = DtdProcessing.Ignore });
        return XDocument.Load(reader);
    }

    private static XElement? Section(XDocument doc, string id) => doc.Descendants().FirstOrDefault(e => (string?)e.Attribute("id") == id);

    private static IEnumerable<XElement> Svgs(XElement? e) => e?.Descendants("svg") ?? [];

    private static IEnumerable<string> Titles(XElement e) => e.Descendants("title").Select(t => t.Value);

    private void WriteFile(string name, string text)
    {
        Directory.CreateDirectory(_dir);
        File.WriteAllText(Path.Combine(_dir, name), text);
    }

    [Fact]
    public void FullRunGivesAWellFormedPageWithEverySection()
    {
        SyntheticRun.Write(_dir);
        string path = HtmlReport.Write(_dir);
        Assert.Equal(Path.Combine(_dir, "report.html"), path);
        var doc = Parse(path);
        Assert.Equal("tiny-moe", doc.Descendants("b").First().Value); // preset in the header
        foreach (string id in new[] { "alerts", "loss", "aux", "routing", "layer-0", "layer-1", "config" })
            Assert.NotNull(Section(doc, id));
        Assert.Equal(2, Svgs(Section(doc, "loss")).Count()); // loss and learning rate
        Assert.Equal(["load_balance", "z_loss"], Section(doc, "aux")!.Descendants("h3").Select(h => h.Value));
        foreach (string layer in new[] { "layer-0", "layer-1" })
        {
            var heatmaps = Svgs(Section(doc, layer)).ToList();
            Assert.Equal(3, heatmaps.Count); // load over training, domain × expert, co-activation
            Assert.All(heatmaps, svg => Assert.Equal("heatmap", (string?)svg.Attribute("class")));
            // Every coloured cell carries its exact value as a tooltip.
            var cells = heatmaps.SelectMany(h => h.Descendants("g").Where(g => (string?)g.Attribute("shape-rendering") == "crispEdges").Elements("rect")).ToList();
            Assert.Equal(100 * 8 + 5 * 8 + 8 * 8, cells.Count);
            Assert.All(cells, c => Assert.False(string.IsNullOrWhiteSpace(c.Element("title")?.Value)));
            Assert.NotNull(heatmaps[0].Descendants("linearGradient").Single()); // its colour scale
        }
        Assert.Contains("mutual information", Section(doc, "layer-1")!.Descendants("figcaption").ElementAt(1).Value, StringComparison.OrdinalIgnoreCase);
        var config = Section(doc, "config")!.Descendants("th").Select(t => t.Value).ToList();
        Assert.Contains("preset", config);
        Assert.Contains("layers", config);
    }

    [Fact]
    public void AlertsAreListedAndMarkedOnTheLoadHeatmap()
    {
        SyntheticRun.Write(_dir);
        var alerts = File.ReadAllLines(Path.Combine(_dir, "alerts.jsonl"));
        Assert.Equal(2, alerts.Length); // the dead expert and the collapse the synthetic routing is built to cause
        var doc = Parse(HtmlReport.Write(_dir));
        var rows = Section(doc, "alerts")!.Descendants("tbody").Single().Elements("tr").ToList();
        Assert.Equal(["alert-dead", "alert-collapse"], rows.Select(r => (string?)r.Attribute("class")));
        foreach (var (row, line) in rows.Zip(alerts))
        {
            var cells = row.Elements("td").Select(td => td.Value).ToList();
            long step = long.Parse(Regex.Match(line, "\"step\":(\\d+)").Groups[1].Value);
            Assert.Equal(SyntheticRun.Layer(1), cells[1]);
            Assert.Equal(step.ToString(), cells[3]);
        }
        Assert.Equal(SyntheticRun.DeadExpert.ToString(), rows[0].Elements("td").ElementAt(2).Value);
        var marks = Svgs(Section(doc, "layer-1")).First().Descendants("g").Where(g => (string?)g.Attribute("class") == "mark").ToList();
        Assert.Equal(2, marks.Count);
        Assert.Equal(2, doc.Descendants("g").Count(g => (string?)g.Attribute("class") == "mark")); // on the load heatmap only
        Assert.StartsWith("dead at step 340", marks[0].Element("title")!.Value);
        Assert.DoesNotContain(Svgs(Section(doc, "layer-0")).First().Descendants("g"), g => (string?)g.Attribute("class") == "mark");
        var card = doc.Descendants("div").Single(d => (string?)d.Attribute("class") == "card bad");
        Assert.Equal("2", card.Elements("div").Single(d => (string?)d.Attribute("class") == "value").Value);
    }

    [Fact]
    public void PageHasNoExternalReferences()
    {
        SyntheticRun.Write(_dir);
        string path = HtmlReport.Write(_dir);
        var doc = Parse(path);
        foreach (var a in doc.Descendants().Attributes().Where(a => a.Name.LocalName is "src" or "href"))
            Assert.StartsWith("#", a.Value); // in-page anchors only
        Assert.DoesNotContain(doc.Descendants(), e => e.Name.LocalName is "script" or "link" or "img" or "iframe" or "object" or "image");
        string html = File.ReadAllText(path);
        Assert.DoesNotContain("http", html, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("@import", html);
        Assert.All(Regex.Matches(html, @"url\(([^)]*)\)"), m => Assert.StartsWith("#", m.Groups[1].Value));
    }

    [Fact]
    public void TooltipsCarryExactValues()
    {
        WriteFile("routing.jsonl", """
            {"step": 5, "layer": "moe.0", "tokens": 50, "tokens_per_expert": [10, 20, 30, 40], "importance": [0.1, 0.2, 0.3, 0.4], "entropy": 1.2, "dropped": 0, "load_cv": 0.44, "co_activation": [10, 3, 3, 4, 3, 20, 7, 10, 3, 7, 30, 20, 4, 10, 20, 40]}
            {"step": 6, "layer": "moe.0", "tokens": 50, "tokens_per_expert": [25, 25, 25, 25], "importance": [0.25, 0.25, 0.25, 0.25], "entropy": 1.3, "dropped": 0, "load_cv": 0, "co_activation": []}

            """);
        WriteFile("domains.json", """{"domains": ["a", "b"], "layers": [{"layer": "moe.0", "counts": [[1, 0, 0, 3], [2, 2, 2, 2]]}]}""");
        var doc = Parse(HtmlReport.Write(_dir));
        var svgs = Svgs(Section(doc, "layer-0")).ToList();
        Assert.Equal(3, svgs.Count);
        var load = Titles(svgs[0]).ToList();
        Assert.Contains("step 5 · expert 3: 40.00% of assignments (40 of 100)", load);
        Assert.Contains("step 6 · expert 0: 25.00% of assignments (25 of 100)", load);
        var domain = Titles(svgs[1]).ToList();
        Assert.Contains("a → expert 3: 75.00% of the domain's assignments (3 of 4)", domain);
        Assert.Contains("b → expert 1: 25.00% of the domain's assignments (2 of 8)", domain);
        // No mutual information in the file: the report computes it. p(a,e3)=3/12 etc.; the twin gives the value.
        double mi = SyntheticRun.MutualInformation([[1, 0, 0, 3], [2, 2, 2, 2]]);
        Assert.Contains(mi.ToString("0.000", System.Globalization.CultureInfo.InvariantCulture), svgs[1].Parent!.Element("figcaption")!.Value);
        // Co-activation comes from the last step that logged it (step 5; step 6 has K = 1's empty matrix).
        var co = Titles(svgs[2]).ToList();
        Assert.Contains("experts 2 and 3 together: 20 tokens (40.00% of 50)", co);
        Assert.Contains("expert 1: 20 tokens in all", co);
        Assert.Contains("step 5", svgs[2].Parent!.Element("figcaption")!.Value);
    }

    [Fact]
    public void MissingOptionalFilesOmitTheirSections()
    {
        WriteFile("config.json", """{"preset": "dense", "layers": 2}""");
        WriteFile("metrics.jsonl", """
            {"step": 1, "loss": 4.1, "val_loss": null, "lr": 0.001}
            {"step": 2, "loss": 3.9, "val_loss": 4.0, "lr": 0.001}
            """);
        var doc = Parse(HtmlReport.Write(_dir));
        Assert.NotNull(Section(doc, "loss"));
        Assert.NotNull(Section(doc, "config"));
        foreach (string id in new[] { "alerts", "aux", "routing", "layer-0" }) Assert.Null(Section(doc, id));
        Assert.DoesNotContain(doc.Descendants("a"), a => (string?)a.Attribute("href") == "#routing");
    }

    [Fact]
    public void ValuesBeyondDoubleRangeStillGiveAPage()
    {
        WriteFile("metrics.jsonl", "{\"step\": 1, \"loss\": 1e400}\n{\"step\": 2, \"loss\": -1e400}\n");
        var doc = Parse(HtmlReport.Write(_dir));
        Assert.Contains("no finite values", Section(doc, "loss")!.Value);
    }

    [Fact]
    public void RoutingAloneWithTopOneGivesTheLoadHeatmapOnly()
    {
        WriteFile("routing.jsonl", """{"step": 1, "layer": "moe.0", "tokens": 4, "tokens_per_expert": [4, 0], "importance": [0.9, 0.1], "entropy": 0.3, "dropped": 0, "load_cv": 1, "co_activation": []}""");
        WriteFile("alerts.jsonl", "");
        var doc = Parse(HtmlReport.Write(_dir));
        Assert.Single(Svgs(Section(doc, "layer-0")));
        Assert.Null(Section(doc, "loss"));
        Assert.Contains("No alerts", Section(doc, "alerts")!.Value);
    }

    [Fact]
    public void LongRunsArePooledIntoABoundedNumberOfColumns()
    {
        int experts = 64, logs = 2000;
        var lines = Enumerable.Range(1, logs).Select(s =>
            $"{{\"step\": {s}, \"layer\": \"moe.0\", \"tokens\": 64, \"tokens_per_expert\": [{string.Join(",", Enumerable.Repeat(1, experts))}]}}");
        WriteFile("routing.jsonl", string.Join("\n", lines));
        string path = HtmlReport.Write(_dir);
        var load = Svgs(Section(Parse(path), "layer-0")).Single();
        var titles = Titles(load).ToList();
        Assert.Equal(6000 / experts * experts, titles.Count); // 93 columns of 64 experts
        Assert.Equal("steps 1–21 (21 logs) · expert 0: 1.56% of assignments (21 of 1344)", titles[0]);
        Assert.InRange(new FileInfo(path).Length, 1, 2_000_000);
    }

    [Fact]
    public void WriteIsAtomicAndReplacesTheOldReport()
    {
        SyntheticRun.Write(_dir);
        var inputs = Directory.GetFiles(_dir).Select(Path.GetFileName).Order().ToList();
        File.WriteAllText(Path.Combine(_dir, "report.html"), "stale");
        string first = File.ReadAllText(HtmlReport.Write(_dir));
        Assert.StartsWith("<!DOCTYPE html>", first);
        Assert.Equal(first, File.ReadAllText(HtmlReport.Write(_dir))); // deterministic, and rewritten in place
        Assert.Equal(inputs.Append("report.html").Order(), Directory.GetFiles(_dir).Select(Path.GetFileName).Order());
    }

    public static TheoryData<string, string, string> Malformed => new()
    {
        { "metrics.jsonl", "{\"step\": 1, \"loss\": 3.0}\n{\"step\": 2, \"loss\": 2.9}\n{\"step\": 3, \"loss\": }\n", "line 3: not valid JSON" },
        { "metrics.jsonl", "{\"step\": 1, \"loss\": \"high\"}\n", "line 1: \"loss\" must be a number" },
        { "metrics.jsonl", "\n{\"loss\": 2}\n", "line 2: \"step\" must be a non-negative integer" },
        { "metrics.jsonl", "[1, 2]\n", "line 1: expected a JSON object" },
        { "metrics.jsonl", "{\"step\": 1, \"loss\": 2, \"aux\": [1]}\n", "line 1: \"aux\" must be an object" },
        { "routing.jsonl", "{\"step\": 1, \"layer\": \"m\", \"tokens_per_expert\": [1, 2], \"co_activation\": [1, 2, 3]}\n", "line 1: \"co_activation\" has 3 entries" },
        { "routing.jsonl", "{\"step\": 1, \"layer\": \"m\", \"tokens_per_expert\": [1, \"x\"]}\n", "line 1: not routing statistics" },
        { "routing.jsonl", "{\"step\": 1, \"tokens_per_expert\": [1]}\n", "line 1: \"layer\" is missing" },
        { "routing.jsonl", "{\"step\": 1, \"layer\": \"m\", \"tokens_per_expert\": [1, 2]}\n{\"step\": 2, \"layer\": \"m\", \"tokens_per_expert\": [1, 2, 3]}\n", "layer 'm' has 2 experts in record 1 but 3 in record 2" },
        { "alerts.jsonl", "{\"layer\": \"m\", \"step\": 3, \"expert\": 1, \"message\": \"x\"}\n", "line 1: \"kind\" must be a string" },
        { "alerts.jsonl", "{\"layer\": \"m\", \"step\": 3, \"kind\": \"dead\", \"expert\": 1, \"message\": \"\\ud800\"}\n", "line 1: a string is not valid text" },
        { "config.json", "{\n  \"preset\": \"x\",\n  \"layers\": oops\n}", "line 3: not valid JSON" },
        { "config.json", "[]", "expected a JSON object" },
        { "domains.json", "{\"domains\": [\"a\", \"b\"], \"layers\": [{\"layer\": \"m\", \"counts\": [[1, 2]]}]}", "layers[0].counts must have one row per domain (2)" },
        { "domains.json", "{\"domains\": [\"a\"], \"layers\": [{\"layer\": \"m\", \"counts\": [[1, -2]]}]}", "layers[0].counts[0] has -2" },
    };

    [Theory]
    [MemberData(nameof(Malformed))]
    public void MalformedFileIsNamedWithItsLineAndNoReportIsLeft(string file, string text, string expected)
    {
        WriteFile(file, text);
        var ex = Assert.Throws<InvalidDataException>(() => HtmlReport.Write(_dir));
        Assert.Contains(Path.Combine(_dir, file), ex.Message);
        Assert.Contains(expected, ex.Message);
        Assert.Equal(new[] { file }, Directory.GetFiles(_dir).Select(Path.GetFileName));
    }

    [Fact]
    public void MissingOrEmptyFolderIsAClearError()
    {
        var missing = Assert.Throws<DirectoryNotFoundException>(() => HtmlReport.Write(_dir));
        Assert.Contains(_dir, missing.Message);
        Directory.CreateDirectory(_dir);
        var empty = Assert.Throws<InvalidDataException>(() => HtmlReport.Write(_dir));
        Assert.Contains("not a run folder", empty.Message);
    }

    [Fact]
    public void ViridisRunsFromPurpleToYellowGettingLighter()
    {
        Assert.Equal("#440154", Palette.Viridis(0));
        Assert.Equal("#21908d", Palette.Viridis(0.5));
        Assert.Equal("#fde725", Palette.Viridis(1));
        Assert.Equal(Palette.Viridis(0), Palette.Viridis(-3));
        Assert.Equal(Palette.Viridis(1), Palette.Viridis(7));
        Assert.Equal(Palette.Viridis(0), Palette.Viridis(double.NaN));
        // Perceptually ordered: relative luminance rises strictly along the map, the property that makes it readable
        // in greyscale and to colour-blind readers.
        static double Luminance(string hex)
        {
            double Channel(int i)
            {
                double c = Convert.ToInt32(hex.Substring(i, 2), 16) / 255.0;
                return c <= 0.04045 ? c / 12.92 : Math.Pow((c + 0.055) / 1.055, 2.4);
            }
            return 0.2126 * Channel(1) + 0.7152 * Channel(3) + 0.0722 * Channel(5);
        }
        for (int i = 1; i <= 64; i++)
            Assert.True(Luminance(Palette.Viridis(i / 64.0)) > Luminance(Palette.Viridis((i - 1) / 64.0)), $"not lighter at {i}/64");
    }

    [Fact]
    public void TicksAreRoundAndCoverTheRange()
    {
        Assert.Equal([0, 200, 400, 600, 800, 1000], Charts.Ticks(0, 1000).Ticks);
        var (ticks, step) = Charts.Ticks(1.23, 4.17);
        Assert.Equal([1.5, 2, 2.5, 3, 3.5, 4], ticks);
        Assert.Equal("2.5", Charts.TickLabel(2.5, step));
        Assert.Equal("0.30", Charts.TickLabel(Charts.Ticks(0.01, 0.34).Ticks[^1], Charts.Ticks(0.01, 0.34).Step));
        Assert.Equal("20k", Charts.TickLabel(20000, 5000));
        Assert.Equal([7.0], Charts.Ticks(7, 7).Ticks);
    }

    [Fact]
    public void LongLinesAreDecimatedButKeepTheirSpikes()
    {
        // A spike and a dip next to each other land in the same pixel column: both must survive.
        var points = Enumerable.Range(0, 20000).Select(i => ((double)i, i switch { 12345 => 10.0, 12346 => -10.0, _ => 1 + 0.001 * (i % 7) })).ToList();
        var svg = XElement.Parse(Charts.Line([new Series("loss", "#000000", points)], "step", "loss"));
        var xy = svg.Descendants("polyline").Single().Attribute("points")!.Value.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        Assert.InRange(xy.Length, 100, 2 * 560); // at most two per pixel column of the plot, narrower than the 560-pixel chart
        var ys = xy.Select(p => double.Parse(p.Split(',')[1], System.Globalization.CultureInfo.InvariantCulture)).ToList();
        // The y range [-10, 10] is padded by 5% each side, to [-11, 11], over the 226-pixel-high plot starting at y = 30.
        Assert.Equal(30 + 226 * 1.0 / 22, ys.Min(), 0.1);
        Assert.Equal(30 + 226 * 21.0 / 22, ys.Max(), 0.1);
    }

    [Fact]
    public void MutualInformationIsZeroForIndependenceAndLnNForAPerfectMatch()
    {
        Assert.Equal(0, HtmlReport.MutualInformation([[1, 2, 3], [2, 4, 6]]), 12);
        Assert.Equal(Math.Log(3), HtmlReport.MutualInformation([[5, 0, 0], [0, 5, 0], [0, 0, 5]]), 12);
        Assert.Equal(0, HtmlReport.MutualInformation([[0, 0], [0, 0]]));
    }

    /// <summary>
    /// A run's real config.json (nested objects, a long alphabet) must not widen the page: at a 1400 px window the
    /// document is no wider than the window. Measured in headless Chromium when it is installed (before the fix:
    /// 4725 px); the style rules that make the configuration wrap are checked either way.
    /// </summary>
    [Fact]
    public async Task TheConfigurationWrapsAt1400Pixels()
    {
        SyntheticRun.Write(_dir, steps: 50);
        string alphabet = new(Enumerable.Range(33, 90).Select(i => (char)i).Where(c => c is not '<' and not '&' and not '"' and not '\\').ToArray());
        WriteFile("config.json", $$$"""{"model":{"preset":"mixtral","vocab":90,"d_model":128,"layers":4,"heads":4,"d_ff":512,"context":64,"moe":{"experts":8,"top_k":2,"expert_hidden":256}},"training":{"steps":2500,"batch":12,"learning_rate":0.002},"alphabet":"{{{alphabet}}}{{{alphabet}}}"}""");
        string html = File.ReadAllText(HtmlReport.Write(_dir));
        Assert.Matches(@"table\.kv \{[^}]*table-layout: fixed", html);
        Assert.Matches(@"table\.kv td[^{]*\{[^}]*overflow-wrap: anywhere", html);

        string? chromium = new[] { "chromium", "chromium-browser", "google-chrome" }
            .SelectMany(name => (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Select(d => Path.Combine(d, name)))
            .FirstOrDefault(File.Exists);
        if (chromium is null) Assert.Skip("headless Chromium not installed; the style rules were checked");
        string probe = Path.Combine(_dir, "probe.html");
        File.WriteAllText(probe, html.Replace("</body>",
            "<script>onload=()=>document.body.setAttribute('data-width',document.documentElement.scrollWidth+'/'+innerWidth)</script></body>"));
        var start = new System.Diagnostics.ProcessStartInfo(chromium) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1400,900", "--virtual-time-budget=2000", "--dump-dom", "file://" + probe })
            start.ArgumentList.Add(a);
        using var p = System.Diagnostics.Process.Start(start)!;
        var stderr = p.StandardError.ReadToEndAsync();
        string dom = await p.StandardOutput.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await p.WaitForExitAsync(timeout.Token);
        var m = Regex.Match(dom, "data-width=\"(\\d+)/(\\d+)\"");
        Assert.True(m.Success, $"no measurement in chromium's output: {await stderr}");
        int width = int.Parse(m.Groups[1].Value), window = int.Parse(m.Groups[2].Value);
        Assert.True(width <= window, $"the page is {width} px wide in a {window} px window");
    }
}
