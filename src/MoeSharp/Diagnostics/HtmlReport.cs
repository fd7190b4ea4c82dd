using System.Text;
using MoeSharp.Routing;
using static MoeSharp.Diagnostics.Charts;

namespace MoeSharp.Diagnostics;

/// <summary>
/// Turns a training run's folder into one self-contained HTML page: inline CSS and inline SVG charts drawn here,
/// no script, no fonts or images to fetch, so it opens offline and can be mailed or archived as one file.
/// Sections: summary, alerts, loss, auxiliary losses, routing (per layer: expert load over training, domain×expert
/// shares, co-activation at the last step) and configuration. A section whose file is missing is left out.
/// </summary>
public static class HtmlReport
{
    /// <summary>Name of the report inside a run folder.</summary>
    public const string FileName = "report.html";

    /// <summary>
    /// Reads the run folder's files and writes <c>report.html</c> beside them, atomically (a temporary file renamed
    /// over the old report, so a reader never sees half a page). Returns the report's path.
    /// </summary>
    /// <exception cref="DirectoryNotFoundException">The folder does not exist.</exception>
    /// <exception cref="InvalidDataException">A file is malformed; the message names the file and line.</exception>
    public static string Write(string runDir)
    {
        string html = Render(RunLog.Read(runDir));
        string path = Path.Combine(runDir, FileName);
        string temp = Path.Combine(runDir, $".{FileName}.{Guid.NewGuid():N}.tmp");
        try
        {
            File.WriteAllText(temp, html, new UTF8Encoding(encoderShouldEmitUTF8Identifier: false));
            File.Move(temp, path, overwrite: true);
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp); // only when the write or the rename failed
        }
        return path;
    }

    internal static string Render(RunLog log)
    {
        string name = Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(log.Directory)));
        var layers = Layers(log);
        var html = new StringBuilder(1 << 16);
        html.Append("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"/>")
            .Append("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>")
            .Append($"<title>{Esc(name)} · MoeSharp run report</title><style>{Css}</style></head><body><main>");
        Header(html, log, name, layers);
        Alerts(html, log);
        Loss(html, log);
        Aux(html, log);
        Routing(html, log, layers);
        Config(html, log);
        html.Append("<footer>Written by MoeSharp from the files in this run's folder. Hover over any cell or point for its exact value.</footer>");
        return html.Append("</main></body></html>\n").ToString();
    }

    /// <summary>A MoE layer's rows of routing.jsonl (by step) and its domains.json entry, either possibly absent.</summary>
    private sealed record LayerData(string Name, IReadOnlyList<RoutingRow> Rows, DomainLayer? Domains)
    {
        public int Experts => Rows.Count > 0 ? Rows[0].Stats.TokensPerExpert.Length : Domains!.Counts[0].Length;
    }

    private static List<LayerData> Layers(RunLog log)
    {
        var names = new List<string>();
        foreach (var r in log.Routing ?? []) if (!names.Contains(r.Stats.Layer)) names.Add(r.Stats.Layer);
        foreach (var d in log.Domains ?? []) if (!names.Contains(d.Layer)) names.Add(d.Layer);
        return names.Select(n => new LayerData(n,
            (log.Routing ?? []).Where(r => r.Stats.Layer == n).OrderBy(r => r.Step).ToList(),
            log.Domains?.FirstOrDefault(d => d.Layer == n))).ToList();
    }

    // ---- header

    private static void Header(StringBuilder html, RunLog log, string name, List<LayerData> layers)
    {
        var metrics = log.Metrics ?? [];
        string? preset = log.ConfigValue("preset"), modelLayers = log.ConfigValue("layers");
        html.Append($"<header><p class=\"eyebrow\">MoeSharp run report</p><h1>{Esc(name)}</h1><p class=\"meta\">");
        var meta = new List<string>();
        if (preset is not null) meta.Add($"preset <b>{Esc(preset)}</b>");
        if (modelLayers is not null) meta.Add($"{Esc(modelLayers)} layers");
        if (layers.Count > 0)
        {
            var experts = layers.Select(l => l.Experts).Distinct().ToList();
            meta.Add($"{layers.Count} MoE layer{(layers.Count == 1 ? "" : "s")} × {string.Join("/", experts)} experts");
        }
        meta.Add($"<span class=\"path\">{Esc(Path.GetFullPath(log.Directory))}</span>");
        html.Append(string.Join(" · ", meta)).Append("</p><div class=\"cards\">");

        long? lastStep = metrics.Count > 0 ? metrics[^1].Step : log.Routing is { Count: > 0 } r ? r.Max(x => x.Step) : null;
        Card(html, "steps", lastStep is long s ? Num(s, "N0") : "—", null);
        if (metrics.Count > 0)
            Card(html, "final train loss", Num(metrics[^1].Loss, "0.0000"), $"from {Num(metrics[0].Loss, "0.000")} at step {metrics[0].Step}");
        var val = metrics.Where(m => m.ValLoss is not null).ToList();
        if (val.Count > 0)
        {
            var best = val.MinBy(m => m.ValLoss!.Value)!;
            Card(html, "final val loss", Num(val[^1].ValLoss!.Value, "0.0000"), $"best {Num(best.ValLoss!.Value, "0.0000")} at step {best.Step}");
        }
        var speed = metrics.Where(m => m.TokensPerSecond is not null).Select(m => m.TokensPerSecond!.Value).Order().ToList();
        if (speed.Count > 0) // the median, not the mean: the first log includes warm-up and evaluation pauses skew any one
            Card(html, "throughput", $"{Num(speed[speed.Count / 2], "N0")} tok/s", $"median of {speed.Count} logs");
        if (metrics.LastOrDefault(m => m.ElapsedSeconds is not null)?.ElapsedSeconds is double elapsed)
            Card(html, "elapsed", Duration(elapsed), null);
        if (log.Alerts is not null)
        {
            int n = log.Alerts.Count;
            Card(html, "alerts", n == 0 ? "none" : Num(n), n == 0 ? "no dead expert, no collapse" : string.Join(", ",
                log.Alerts.GroupBy(a => a.Kind).Select(g => $"{g.Count()} {g.Key}")), n == 0 ? "good" : "bad");
        }
        html.Append("</div><nav>");
        foreach (var (id, title, present) in new[]
        {
            ("alerts", "Alerts", log.Alerts is not null), ("loss", "Loss", log.Metrics is { Count: > 0 }),
            ("aux", "Auxiliary losses", metrics.Any(m => m.Aux.Count > 0)), ("routing", "Routing", layers.Count > 0),
            ("config", "Configuration", log.Config is not null),
        })
            if (present) html.Append($"<a href=\"#{id}\">{title}</a>");
        html.Append("</nav></header>");
    }

    private static void Card(StringBuilder html, string label, string value, string? note, string? cls = null) =>
        html.Append($"<div class=\"card{(cls is null ? "" : " " + cls)}\"><div class=\"label\">{Esc(label)}</div><div class=\"value\">{Esc(value)}</div>")
            .Append(note is null ? "" : $"<div class=\"note\">{Esc(note)}</div>").Append("</div>");

    private static string Duration(double seconds) => seconds switch
    {
        < 60 => $"{Num(seconds, "0.0")} s",
        < 3600 => $"{(int)(seconds / 60)} min {(int)(seconds % 60):00} s",
        _ => $"{(int)(seconds / 3600)} h {(int)(seconds % 3600 / 60):00} min",
    };

    // ---- alerts

    private static void Alerts(StringBuilder html, RunLog log)
    {
        if (log.Alerts is null) return;
        html.Append("<section id=\"alerts\"><h2>Alerts</h2>");
        if (log.Alerts.Count == 0)
        {
            html.Append("<p class=\"ok\">No alerts: no expert went dead and no layer collapsed onto one expert.</p></section>");
            return;
        }
        html.Append("<p>Raised by the routing monitor when a condition starts. <b>dead</b>: an expert received no token for a run of steps; "
            + "<b>collapse</b>: one expert took more than its threshold share of a layer's assignments. "
            + "The same cells are outlined on the load heatmaps below.</p>");
        html.Append("<table class=\"alerts\"><thead><tr><th>kind</th><th>layer</th><th>expert</th><th>step</th><th>message</th></tr></thead><tbody>");
        foreach (var a in log.Alerts.OrderBy(a => a.Step))
        {
            string kind = a.Kind is "dead" or "collapse" ? a.Kind : "other";
            html.Append($"<tr class=\"alert-{kind}\"><td><span class=\"badge\">{Esc(a.Kind)}</span></td><td class=\"mono\">{Esc(a.Layer)}</td>")
                .Append($"<td class=\"num\">{a.Expert}</td><td class=\"num\">{a.Step}</td><td>{Esc(a.Message)}</td></tr>");
        }
        html.Append("</tbody></table></section>");
    }

    // ---- loss and auxiliary terms

    private static void Loss(StringBuilder html, RunLog log)
    {
        if (log.Metrics is not { Count: > 0 } m) return;
        html.Append("<section id=\"loss\"><h2>Loss</h2><div class=\"row\"><figure>");
        var series = new List<Series> { new("train", Palette.Category(0, 2), m.Select(r => ((double)r.Step, r.Loss)).ToList()) };
        var val = m.Where(r => r.ValLoss is not null).Select(r => ((double)r.Step, r.ValLoss!.Value)).ToList();
        if (val.Count > 0) series.Add(new Series("validation", Palette.Category(1, 2), val, Markers: true));
        html.Append(Line(series, "step", "cross-entropy (nats/token)", 640, 320));
        html.Append("<figcaption>Training loss as logged, validation loss at each evaluation (points).</figcaption></figure>");
        var lr = m.Where(r => r.LearningRate is not null).Select(r => ((double)r.Step, r.LearningRate!.Value)).ToList();
        if (lr.Count > 0)
        {
            html.Append("<figure>").Append(Line([new Series("learning rate", Palette.Category(2, 3), lr)], "step", "learning rate", 400, 320));
            html.Append("<figcaption>The schedule: warm-up, then decay.</figcaption></figure>");
        }
        html.Append("</div></section>");
    }

    private static void Aux(StringBuilder html, RunLog log)
    {
        var m = log.Metrics ?? [];
        var keys = new List<string>();
        foreach (var r in m) foreach (var (k, _) in r.Aux) if (!keys.Contains(k)) keys.Add(k);
        if (keys.Count == 0) return;
        html.Append("<section id=\"aux\"><h2>Auxiliary losses</h2><p>The balancing and regularisation terms the router adds to the loss, each on its own scale.</p><div class=\"row\">");
        for (int i = 0; i < keys.Count; i++)
        {
            var points = m.SelectMany(r => r.Aux.Where(p => p.Key == keys[i]).Select(p => ((double)r.Step, p.Value))).ToList();
            html.Append($"<figure class=\"small\"><h3>{Esc(keys[i])}</h3>")
                .Append(Line([new Series(keys[i], Palette.Category(i % 8, Math.Min(keys.Count, 8)), points)], "step", keys[i], 400, 240))
                .Append("</figure>");
        }
        html.Append("</div></section>");
    }

    // ---- routing

    private static void Routing(StringBuilder html, RunLog log, List<LayerData> layers)
    {
        if (layers.Count == 0) return;
        html.Append("<section id=\"routing\"><h2>Routing</h2>");
        var routed = layers.Where(l => l.Rows.Count > 0).ToList();
        if (routed.Count > 0)
        {
            html.Append("<table class=\"summary\"><thead><tr><th>layer</th><th>step</th><th>experts</th><th>tokens</th><th>max share</th>")
                .Append("<th>load CV</th><th>entropy (nats)</th><th>idle experts</th><th>dropped</th></tr></thead><tbody>");
            foreach (var l in routed)
            {
                var (step, s) = (l.Rows[^1].Step, l.Rows[^1].Stats);
                int idle = s.TokensPerExpert.Count(c => c == 0);
                html.Append($"<tr><td class=\"mono\"><a href=\"#layer-{layers.IndexOf(l)}\">{Esc(l.Name)}</a></td><td class=\"num\">{step}</td><td class=\"num\">{l.Experts}</td>")
                    .Append($"<td class=\"num\">{s.Tokens}</td><td class=\"num\">{Num(100 * s.MaxShare, "0.0")}% <span class=\"dim\">(uniform {Num(100.0 / l.Experts, "0.0")}%)</span></td>")
                    .Append($"<td class=\"num\">{Num(s.LoadCv, "0.000")}</td><td class=\"num\">{Num(s.Entropy, "0.000")} <span class=\"dim\">of ln E = {Num(Math.Log(l.Experts), "0.000")}</span></td>")
                    .Append($"<td class=\"num{(idle > 0 ? " warn" : "")}\">{idle}</td><td class=\"num\">{s.Dropped}</td></tr>");
            }
            html.Append("</tbody></table><p class=\"dim\">At each layer's last logged step. Load CV: standard deviation of the experts' loads over their mean (0 is perfectly balanced). "
                + "Entropy: mean entropy of a token's router distribution; ln E means the router cannot tell the experts apart.</p>");
            if (routed.Any(l => l.Rows.Count > 1))
            {
                html.Append("<div class=\"row\">");
                OverLayers(html, routed, "load CV", s => s.LoadCv, "Load imbalance over training, one line per layer.");
                OverLayers(html, routed, "routing entropy (nats)", s => s.Entropy, "Router confidence over training: lower means sharper choices.");
                html.Append("</div>");
            }
        }
        for (int i = 0; i < layers.Count; i++) Layer(html, log, layers[i], i);
        html.Append("</section>");
    }

    private static void OverLayers(StringBuilder html, List<LayerData> layers, string what, Func<RoutingStats, float> value, string caption)
    {
        var series = layers.Select((l, i) => new Series(ShortName(l.Name), Palette.Category(i, layers.Count),
            l.Rows.Select(r => ((double)r.Step, (double)value(r.Stats))).ToList())).ToList();
        html.Append("<figure>").Append(Line(series, "step", what, 520, 280)).Append($"<figcaption>{Esc(caption)}</figcaption></figure>");
    }

    /// <summary>"model.layers.3.block_sparse_moe" → "layer 3" for legends; the full name stays in headings and tables.</summary>
    private static string ShortName(string layer)
    {
        var parts = layer.Split('.');
        int i = Array.FindIndex(parts, p => p.All(char.IsAsciiDigit) && p.Length > 0);
        return i >= 0 ? $"layer {parts[i]}" : layer;
    }

    private static void Layer(StringBuilder html, RunLog log, LayerData layer, int index)
    {
        html.Append($"<article class=\"layer\" id=\"layer-{index}\"><h3><span class=\"mono\">{Esc(layer.Name)}</span> <span class=\"dim\">{layer.Experts} experts</span></h3><div class=\"row\">");
        if (layer.Rows.Count > 0) LoadHeatmap(html, log, layer, index);
        if (layer.Domains is not null && log.DomainNames is not null) DomainHeatmap(html, log.DomainNames, layer, index);
        if (layer.Rows.LastOrDefault(r => r.Stats.CoActivation.Length > 0) is RoutingRow last) CoActivationHeatmap(html, layer, last, index);
        html.Append("</div></article>");
    }

    /// <summary>
    /// Expert load over training. Consecutive logged steps are pooled into at most 6000/E columns (16 to 160), so a
    /// long run with many experts stays a page of a few megabytes; a pooled cell's tooltip gives its step range.
    /// </summary>
    private static void LoadHeatmap(StringBuilder html, RunLog log, LayerData layer, int index)
    {
        int e = layer.Experts, n = layer.Rows.Count;
        int columns = Math.Min(n, Math.Clamp(6000 / e, 16, 160));
        var first = new int[columns + 1]; // column c pools rows [first[c], first[c+1])
        for (int c = 0; c <= columns; c++) first[c] = (int)((long)c * n / columns);
        var counts = new long[columns, e]; // [columns, E]
        var totals = new long[columns];
        for (int c = 0; c < columns; c++)
            for (int r = first[c]; r < first[c + 1]; r++)
                for (int x = 0; x < e; x++)
                {
                    counts[c, x] += layer.Rows[r].Stats.TokensPerExpert[x];
                    totals[c] += layer.Rows[r].Stats.TokensPerExpert[x];
                }
        string Steps(int c) => first[c + 1] - first[c] == 1 ? $"step {layer.Rows[first[c]].Step}"
            : $"steps {layer.Rows[first[c]].Step}–{layer.Rows[first[c + 1] - 1].Step} ({first[c + 1] - first[c]} logs)";
        int ColumnOf(long step)
        {
            int c = 0;
            while (c + 1 < columns && layer.Rows[first[c + 1]].Step <= step) c++;
            return c;
        }
        var marks = (log.Alerts ?? []).Where(a => a.Layer == layer.Name && a.Expert < e)
            .Select(a => (a.Expert, ColumnOf(a.Step), $"{a.Kind} at step {a.Step}: {a.Message}")).ToList();
        double uniform = 1.0 / e;
        var spec = new HeatmapSpec
        {
            Id = $"load-{index}",
            Title = $"Expert load over training, {layer.Name}",
            Rows = e,
            Columns = columns,
            CellWidth = Math.Clamp(900.0 / columns, 3, 40),
            CellHeight = Math.Clamp(240.0 / e, 4, 24),
            Value = (x, c) => totals[c] == 0 ? null : (double)counts[c, x] / totals[c],
            Tooltip = (x, c) => totals[c] == 0 ? $"{Steps(c)}: no assignments"
                : $"{Steps(c)} · expert {x}: {Num(100.0 * counts[c, x] / totals[c], "0.00")}% of assignments ({counts[c, x]} of {totals[c]})",
            Max = Math.Min(1, 2 * uniform), // uniform load sits mid-scale; twice uniform or more is the brightest
            ClipsAbove = 2 * uniform < 1,
            Format = v => Num(100 * v, "0.#") + "%",
            ScaleTitle = "share of assignments",
            XTitle = "step",
            YTitle = "expert",
            ColumnLabels = Enumerable.Range(0, 6).Select(k => k * (columns - 1) / 5).Distinct()
                .Select(c => (c, Num(layer.Rows[first[c]].Step))).ToList(),
            RowLabels = EveryKth(e),
            ScaleMarks = [(uniform, $"1/E {Num(100 * uniform, "0.#")}%")],
            Marks = marks,
        };
        html.Append("<figure>").Append(Heatmap(spec)).Append("<figcaption>Share of each logged step's assignments that each expert received. ")
            .Append("Mid-scale is a perfectly balanced layer; dark rows are starving experts, bright rows overloaded ones")
            .Append(marks.Count > 0 ? "; outlined cells are alerts" : "").Append(".</figcaption></figure>");
    }

    private static void DomainHeatmap(StringBuilder html, IReadOnlyList<string> domains, LayerData layer, int index)
    {
        var counts = layer.Domains!.Counts; // [domains][E]
        int e = counts[0].Length;
        var rowTotals = counts.Select(r => r.Sum(c => (long)c)).ToArray();
        double Share(int d, int x) => rowTotals[d] == 0 ? 0 : (double)counts[d][x] / rowTotals[d];
        double max = Math.Min(1, Math.Max(2.0 / e, Enumerable.Range(0, domains.Count).SelectMany(d => Enumerable.Range(0, e).Select(x => Share(d, x))).Max()));
        double mi = layer.Domains.MutualInformation ?? MutualInformation(counts);
        var spec = new HeatmapSpec
        {
            Id = $"domain-{index}",
            Title = $"Domain by expert, {layer.Name}",
            Rows = domains.Count,
            Columns = e,
            CellWidth = Math.Clamp(480.0 / e, 6, 44),
            CellHeight = 26,
            Value = (d, x) => rowTotals[d] == 0 ? null : Share(d, x),
            Tooltip = (d, x) => $"{domains[d]} → expert {x}: {Num(100 * Share(d, x), "0.00")}% of the domain's assignments ({counts[d][x]} of {rowTotals[d]})",
            Max = max,
            Format = v => Num(100 * v, "0") + "%",
            ScaleTitle = "share of the domain",
            XTitle = "expert",
            ColumnLabels = EveryKth(e),
            RowLabels = domains.Select((d, i) => (i, d)).ToList(),
            CellText = true,
            ScaleMarks = [(1.0 / e, "1/E")],
        };
        html.Append("<figure>").Append(Heatmap(spec))
            .Append($"<figcaption>Where each domain's tokens went (rows sum to 100%). Mutual information between domain and expert: <b>{Num(mi, "0.000")}</b>")
            .Append(layer.Domains.MutualInformation is null ? " nats (computed from the counts)" : "")
            .Append("; 0 means the router ignores the domain.</figcaption></figure>");
    }

    /// <summary>I(domain; expert) in nats of the joint distribution the counts define.</summary>
    internal static double MutualInformation(int[][] counts)
    {
        double total = counts.Sum(r => r.Sum(c => (double)c));
        if (total == 0) return 0;
        var col = new double[counts[0].Length];
        foreach (var r in counts) for (int x = 0; x < r.Length; x++) col[x] += r[x];
        double mi = 0;
        foreach (var r in counts)
        {
            double row = r.Sum(c => (double)c);
            for (int x = 0; x < r.Length; x++)
                if (r[x] > 0) mi += r[x] / total * Math.Log(r[x] * total / (row * col[x]));
        }
        return mi;
    }

    private static void CoActivationHeatmap(StringBuilder html, LayerData layer, RoutingRow row, int index)
    {
        int e = layer.Experts;
        var m = row.Stats.CoActivation; // [E·E], row-major
        int max = 1;
        for (int i = 0; i < e; i++) for (int j = 0; j < e; j++) if (i != j) max = Math.Max(max, m[i * e + j]);
        var spec = new HeatmapSpec
        {
            Id = $"coact-{index}",
            Title = $"Co-activation at step {row.Step}, {layer.Name}",
            Rows = e,
            Columns = e,
            CellWidth = Math.Clamp(320.0 / e, 4, 36),
            CellHeight = Math.Clamp(320.0 / e, 4, 36),
            // The diagonal is each expert's own load, always at least any pair count, so it would flatten the
            // scale; it is drawn grey and keeps its value in the tooltip.
            Value = (i, j) => i == j ? null : m[i * e + j],
            Tooltip = (i, j) => i == j ? $"expert {i}: {m[i * e + i]} tokens in all"
                : $"experts {i} and {j} together: {m[i * e + j]} tokens ({Num(100.0 * m[i * e + j] / Math.Max(1, row.Stats.Tokens), "0.00")}% of {row.Stats.Tokens})",
            Max = max,
            Format = v => Num(v, "0"),
            ScaleTitle = "tokens sent to both",
            XTitle = "expert",
            YTitle = "expert",
            ColumnLabels = EveryKth(e),
            RowLabels = EveryKth(e),
            CellText = true,
        };
        html.Append("<figure>").Append(Heatmap(spec))
            .Append($"<figcaption>Tokens routed to both experts at step {row.Step}, the last logged. Grey diagonal: each expert's own load (in its tooltip).</figcaption></figure>");
    }

    /// <summary>Labels 0..n-1, thinned to about sixteen so that they never overlap.</summary>
    private static List<(int, string)> EveryKth(int n)
    {
        int k = (n + 15) / 16;
        return Enumerable.Range(0, n).Where(i => i % k == 0).Select(i => (i, Num(i))).ToList();
    }

    // ---- configuration

    private static void Config(StringBuilder html, RunLog log)
    {
        if (log.Config is null) return;
        html.Append("<section id=\"config\"><h2>Configuration</h2><table class=\"kv\"><tbody>");
        foreach (var (k, v) in log.Config) html.Append($"<tr><th>{Esc(k)}</th><td class=\"mono\">{Esc(v)}</td></tr>");
        html.Append("</tbody></table></section>");
    }

    // No '<' or '&' in the style sheet: the page stays well-formed XML, which the tests check.
    private const string Css = """
        :root { --ink: #1b1b1b; --dim: #5f6368; --line: #e3e3e3; --panel: #f7f7f5; --accent: #0072b2; --bad: #d55e00; }
        * { box-sizing: border-box; }
        body { margin: 0; background: #fff; color: var(--ink); font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
        main { max-width: 1320px; margin: 0 auto; padding: 28px 32px 48px; }
        header { padding-bottom: 8px; }
        .eyebrow { margin: 0; color: var(--accent); font-weight: 600; letter-spacing: .06em; text-transform: uppercase; font-size: 12px; }
        h1 { margin: 2px 0 4px; font-size: 28px; }
        h2 { font-size: 20px; margin: 32px 0 8px; padding-top: 8px; border-top: 1px solid var(--line); }
        h3 { font-size: 15px; margin: 18px 0 6px; }
        .meta { margin: 0 0 14px; color: var(--dim); }
        .path { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 12px; }
        .cards { display: flex; flex-wrap: wrap; gap: 10px; }
        .card { background: var(--panel); border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px; min-width: 150px; }
        .card .label { color: var(--dim); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
        .card .value { font-size: 22px; font-weight: 600; font-variant-numeric: tabular-nums; }
        .card .note { color: var(--dim); font-size: 12px; }
        .card.bad { background: #fdebe1; border-color: #f0b48f; }
        .card.bad .value { color: var(--bad); }
        .card.good .value { color: #00795a; }
        nav { margin-top: 14px; display: flex; gap: 16px; flex-wrap: wrap; }
        nav a, td a { color: var(--accent); text-decoration: none; }
        .row { display: flex; flex-wrap: wrap; gap: 18px 28px; align-items: flex-start; }
        figure { margin: 0; }
        figure.small h3 { margin: 4px 0 0; font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 13px; }
        figcaption { color: var(--dim); font-size: 12.5px; max-width: 560px; margin-top: 2px; }
        svg { max-width: 100%; height: auto; display: block; }
        svg text { font: 11px system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; fill: var(--ink); }
        svg text.title { font-size: 12px; fill: var(--dim); }
        svg text.cell { font-size: 10.5px; }
        svg text.legend { font-size: 12px; }
        svg text.mark-label { font-weight: 600; }
        svg .grid { stroke: #ececec; }
        svg .axis { stroke: #9a9a9a; }
        svg .frame { fill: none; stroke: #9a9a9a; }
        svg .mark { cursor: help; }
        table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
        th, td { text-align: left; padding: 5px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
        thead th { font-size: 12px; color: var(--dim); font-weight: 600; border-bottom: 2px solid var(--line); }
        td.num { text-align: right; }
        .mono { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 12.5px; }
        .dim { color: var(--dim); font-weight: normal; }
        .warn { color: var(--bad); font-weight: 600; }
        .ok { color: #00795a; }
        table.alerts tr.alert-dead { background: #fff4d6; }
        table.alerts tr.alert-collapse { background: #fde3d6; }
        table.alerts tr.alert-other { background: #eef3f8; }
        .badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; font-weight: 600; color: #fff; background: #6b6b6b; }
        tr.alert-dead .badge { background: #9a6a00; }
        tr.alert-collapse .badge { background: var(--bad); }
        article.layer { margin-top: 18px; padding: 4px 16px 16px; border: 1px solid var(--line); border-radius: 8px; }
        table.kv { width: 100%; table-layout: fixed; }
        table.kv th { width: 12em; font-weight: 600; font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 12.5px; }
        table.kv td, .path { overflow-wrap: anywhere; }
        footer { margin-top: 40px; color: var(--dim); font-size: 12px; }
        """;
}
