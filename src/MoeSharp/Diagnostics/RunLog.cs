using System.Text.Json;
using MoeSharp.Routing;

namespace MoeSharp.Diagnostics;

/// <summary>One line of <c>metrics.jsonl</c>. Aux terms keep the order the trainer wrote them in.</summary>
internal sealed record MetricsRow(long Step, double Loss, double? ValLoss, double? LearningRate, double? TokensPerSecond,
    double? ElapsedSeconds, IReadOnlyList<KeyValuePair<string, double>> Aux);

/// <summary>One line of <c>routing.jsonl</c>: a layer's <see cref="RoutingStats"/> at a step.</summary>
internal sealed record RoutingRow(long Step, RoutingStats Stats);

/// <summary>One layer of <c>domains.json</c>: [domains][E] assignment counts.</summary>
internal sealed record DomainLayer(string Layer, int[][] Counts, double? MutualInformation);

/// <summary>
/// The files a training run leaves in its folder, read and checked. Every file is optional (a section of the
/// report is left out when its file is missing), but a present file must be well-formed: the first bad line stops
/// the read with an <see cref="InvalidDataException"/> naming the file and the line, so a report never silently
/// shows half a run.
/// </summary>
internal sealed class RunLog
{
    public const string ConfigFile = "config.json", MetricsFile = "metrics.jsonl", RoutingFile = "routing.jsonl",
        AlertsFile = "alerts.jsonl", DomainsFile = "domains.json";

    public required string Directory { get; init; }
    public required IReadOnlyList<KeyValuePair<string, string>>? Config { get; init; }

    // Each of these is null when its file is missing, and empty when the file is there with no records.
    public required IReadOnlyList<MetricsRow>? Metrics { get; init; }
    public required IReadOnlyList<RoutingRow>? Routing { get; init; }
    public required IReadOnlyList<RoutingAlert>? Alerts { get; init; }
    public required IReadOnlyList<string>? DomainNames { get; init; }
    public required IReadOnlyList<DomainLayer>? Domains { get; init; }

    /// <summary>The value of a top-level scalar in config.json, as shown in the report, or null.</summary>
    public string? ConfigValue(string key) => Config?.FirstOrDefault(p => p.Key == key).Value;

    public static RunLog Read(string runDir)
    {
        if (!System.IO.Directory.Exists(runDir))
            throw new DirectoryNotFoundException($"Run folder '{runDir}' does not exist.");
        string Path(string file) => System.IO.Path.Combine(runDir, file);
        string[] known = [ConfigFile, MetricsFile, RoutingFile, AlertsFile, DomainsFile];
        if (!known.Any(f => File.Exists(Path(f))))
            throw new InvalidDataException($"'{runDir}' is not a run folder: it has none of {string.Join(", ", known)}.");

        var (domainNames, domains) = File.Exists(Path(DomainsFile)) ? Text(Path(DomainsFile), ReadDomains) : (null, null);
        return new RunLog
        {
            Directory = runDir,
            Config = File.Exists(Path(ConfigFile)) ? Text(Path(ConfigFile), ReadConfig) : null,
            // Sorted by step (stably) so that a resumed run that logged a step twice still draws left to right.
            Metrics = File.Exists(Path(MetricsFile)) ? ReadLines(Path(MetricsFile), ParseMetrics).OrderBy(r => r.Step).ToList() : null,
            Routing = File.Exists(Path(RoutingFile)) ? CheckExperts(ReadLines(Path(RoutingFile), ParseRouting), Path(RoutingFile)) : null,
            Alerts = File.Exists(Path(AlertsFile)) ? ReadLines(Path(AlertsFile), ParseAlert) : null,
            DomainNames = domainNames,
            Domains = domains,
        };
    }

    // ---- JSON Lines

    /// <summary>Where a value came from, for error messages.</summary>
    private readonly record struct Source(string Path, int Line)
    {
        public InvalidDataException Error(string what, Exception? inner = null) => new($"{Path}, line {Line}: {what}", inner);
    }

    private static List<T> ReadLines<T>(string path, Func<JsonElement, Source, T> parse)
    {
        var rows = new List<T>();
        int number = 0;
        foreach (string line in File.ReadLines(path))
        {
            number++;
            if (string.IsNullOrWhiteSpace(line)) continue; // a trailing newline, or a blank line between runs
            var at = new Source(path, number);
            JsonDocument doc;
            try
            {
                doc = JsonDocument.Parse(line);
            }
            catch (JsonException e)
            {
                throw at.Error($"not valid JSON ({e.Message})", e);
            }
            using (doc)
            {
                if (doc.RootElement.ValueKind != JsonValueKind.Object)
                    throw at.Error($"expected a JSON object, got {doc.RootElement.ValueKind}.");
                try
                {
                    rows.Add(parse(doc.RootElement, at));
                }
                catch (InvalidOperationException e)
                {
                    throw at.Error(Undecodable(e), e);
                }
            }
        }
        return rows;
    }

    private static MetricsRow ParseMetrics(JsonElement o, Source at)
    {
        var aux = new List<KeyValuePair<string, double>>();
        if (o.TryGetProperty("aux", out var a) && a.ValueKind != JsonValueKind.Null)
        {
            if (a.ValueKind != JsonValueKind.Object) throw at.Error($"\"aux\" must be an object, got {a.ValueKind}.");
            foreach (var p in a.EnumerateObject())
                if (OptionalNumber(a, p.Name, at) is double v) aux.Add(new(p.Name, v));
        }
        return new MetricsRow(Step(o, at), OptionalNumber(o, "loss", at) ?? throw at.Error("\"loss\" is missing."),
            OptionalNumber(o, "val_loss", at), OptionalNumber(o, "lr", at), OptionalNumber(o, "tokens_per_second", at),
            OptionalNumber(o, "elapsed_seconds", at), aux);
    }

    private static RoutingRow ParseRouting(JsonElement o, Source at)
    {
        long step = Step(o, at);
        RoutingStats stats;
        try
        {
            stats = o.Deserialize<RoutingStats>(RoutingStats.JsonOptions) ?? throw at.Error("routing statistics are null.");
        }
        catch (JsonException e)
        {
            throw at.Error($"not routing statistics ({e.Message})", e);
        }
        int experts = stats.TokensPerExpert.Length;
        if (string.IsNullOrEmpty(stats.Layer)) throw at.Error("\"layer\" is missing or empty.");
        if (experts == 0) throw at.Error("\"tokens_per_expert\" is missing or empty.");
        if (stats.TokensPerExpert.Any(c => c < 0)) throw at.Error("\"tokens_per_expert\" has a negative count.");
        if (stats.Importance.Length is not 0 && stats.Importance.Length != experts)
            throw at.Error($"\"importance\" has {stats.Importance.Length} entries for {experts} experts.");
        if (stats.CoActivation.Length is not 0 && stats.CoActivation.Length != experts * experts)
            throw at.Error($"\"co_activation\" has {stats.CoActivation.Length} entries; {experts} experts need {experts * experts} (or none).");
        return new RoutingRow(step, stats);
    }

    /// <summary>A layer keeps its expert count for the whole run; a change means two runs' logs were mixed.</summary>
    private static List<RoutingRow> CheckExperts(List<RoutingRow> rows, string path)
    {
        var experts = new Dictionary<string, (int E, int FirstRow)>();
        for (int i = 0; i < rows.Count; i++)
        {
            var s = rows[i].Stats;
            if (!experts.TryGetValue(s.Layer, out var first)) experts[s.Layer] = (s.TokensPerExpert.Length, i);
            else if (first.E != s.TokensPerExpert.Length)
                throw new InvalidDataException($"{path}: layer '{s.Layer}' has {first.E} experts in record {first.FirstRow + 1} but {s.TokensPerExpert.Length} in record {i + 1}.");
        }
        return rows;
    }

    private static RoutingAlert ParseAlert(JsonElement o, Source at) => new(
        RequiredString(o, "layer", at), Step(o, at), RequiredString(o, "kind", at),
        o.TryGetProperty("expert", out var e) && e.ValueKind == JsonValueKind.Number && e.TryGetInt32(out int x) && x >= 0 ? x
            : throw at.Error("\"expert\" must be a non-negative integer."),
        RequiredString(o, "message", at));

    // JsonDocument accepts a \u escape that is a lone surrogate (valid JSON, not text) and only throws
    // InvalidOperationException when the string is read; a corrupt file must give a format error instead.
    private static string Undecodable(InvalidOperationException e) => $"a string is not valid text ({e.Message})";

    // ---- single-object files

    private static T Text<T>(string path, Func<string, T> read)
    {
        try
        {
            return read(path);
        }
        catch (InvalidOperationException e)
        {
            throw new InvalidDataException($"{path}: {Undecodable(e)}", e);
        }
    }

    private static JsonDocument ParseObject(string path)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(File.ReadAllText(path));
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}, line {(e.LineNumber ?? 0) + 1}: not valid JSON ({e.Message})", e);
        }
        var kind = doc.RootElement.ValueKind;
        if (kind != JsonValueKind.Object)
        {
            doc.Dispose();
            throw new InvalidDataException($"{path}: expected a JSON object, got {kind}.");
        }
        return doc;
    }

    private static List<KeyValuePair<string, string>> ReadConfig(string path)
    {
        using var doc = ParseObject(path);
        var entries = new List<KeyValuePair<string, string>>();
        foreach (var p in doc.RootElement.EnumerateObject())
        {
            string value = p.Value.ValueKind switch
            {
                JsonValueKind.String => p.Value.GetString()!,
                // Nested values are shown compactly, whatever indentation the file used.
                JsonValueKind.Object or JsonValueKind.Array => JsonSerializer.Serialize(p.Value),
                _ => p.Value.GetRawText(),
            };
            entries.Add(new(p.Name, value));
        }
        return entries;
    }

    private static (IReadOnlyList<string>?, IReadOnlyList<DomainLayer>?) ReadDomains(string path)
    {
        using var doc = ParseObject(path);
        var root = doc.RootElement;
        InvalidDataException Bad(string what) => new($"{path}: {what}");
        if (!root.TryGetProperty("domains", out var d) || d.ValueKind != JsonValueKind.Array || d.GetArrayLength() == 0
            || d.EnumerateArray().Any(x => x.ValueKind != JsonValueKind.String))
            throw Bad("\"domains\" must be a non-empty array of names.");
        var names = d.EnumerateArray().Select(x => x.GetString()!).ToList();
        if (!root.TryGetProperty("layers", out var ls) || ls.ValueKind != JsonValueKind.Array)
            throw Bad("\"layers\" must be an array.");
        var layers = new List<DomainLayer>();
        int index = 0;
        foreach (var l in ls.EnumerateArray())
        {
            string where = $"layers[{index++}]";
            if (l.ValueKind != JsonValueKind.Object || !l.TryGetProperty("layer", out var name) || name.ValueKind != JsonValueKind.String)
                throw Bad($"{where} needs a \"layer\" name.");
            if (!l.TryGetProperty("counts", out var c) || c.ValueKind != JsonValueKind.Array || c.GetArrayLength() != names.Count)
                throw Bad($"{where}.counts must have one row per domain ({names.Count}).");
            var counts = new int[names.Count][];
            int row = 0;
            foreach (var r in c.EnumerateArray())
            {
                if (r.ValueKind != JsonValueKind.Array || r.GetArrayLength() == 0)
                    throw Bad($"{where}.counts[{row}] must be a non-empty array of counts.");
                counts[row] = r.EnumerateArray().Select(x => x.ValueKind == JsonValueKind.Number && x.TryGetInt32(out int v) && v >= 0 ? v
                    : throw Bad($"{where}.counts[{row}] has {x.GetRawText()}, not a non-negative integer.")).ToArray();
                if (counts[row].Length != counts[0].Length)
                    throw Bad($"{where}.counts[{row}] has {counts[row].Length} experts, row 0 has {counts[0].Length}.");
                row++;
            }
            double? mi = l.TryGetProperty("mutual_information", out var m) && m.ValueKind == JsonValueKind.Number ? m.GetDouble() : null;
            layers.Add(new DomainLayer(name.GetString()!, counts, mi));
        }
        return (names, layers);
    }

    // ---- fields

    private static long Step(JsonElement o, Source at) =>
        o.TryGetProperty("step", out var s) && s.ValueKind == JsonValueKind.Number && s.TryGetInt64(out long v) && v >= 0 ? v
            : throw at.Error("\"step\" must be a non-negative integer.");

    private static double? OptionalNumber(JsonElement o, string name, Source at)
    {
        if (!o.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null) return null;
        return v.ValueKind == JsonValueKind.Number ? v.GetDouble() : throw at.Error($"\"{name}\" must be a number, got {v.GetRawText()}.");
    }

    private static string RequiredString(JsonElement o, string name, Source at) =>
        o.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString()! : throw at.Error($"\"{name}\" must be a string.");
}
