using System.Text.Json;
using MoeSharp.Routing;
using MoeSharp.Tensors;

namespace MoeSharp.Tests.Diagnostics;

/// <summary>
/// Writes a plausible run folder: a decaying noisy loss, a warm-up/cosine learning rate, two aux terms, and per-layer
/// top-2 routing simulated token by token, where layer 1 loses expert 5 at step 300 and drifts onto expert 2 from
/// step 600. The alerts are the ones <see cref="RoutingMonitor"/> raises on that routing, so they are consistent.
/// </summary>
internal static class SyntheticRun
{
    public const int Tokens = 768, DeadExpert = 5, CollapseExpert = 2;
    public static readonly string[] Domains = ["arithmetic", "records", "english", "code", "dna"];

    private static readonly JsonSerializerOptions Snake = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    public static string Layer(int i) => $"model.layers.{i}.block_sparse_moe";

    public static void Write(string dir, int steps = 1000, int logEvery = 10, int experts = 8, int layers = 2)
    {
        Directory.CreateDirectory(dir);
        var rng = new Rng(2024);
        File.WriteAllText(Path.Combine(dir, "config.json"), $$"""
            {"preset": "tiny-moe", "layers": 4, "d_model": 128, "heads": 4, "d_ff": 256, "experts": {{experts}}, "top_k": 2,
             "router": "topk_softmax", "context": 64, "vocab": 55, "moe": {"capacity_factor": 1.25, "aux_loss_coef": 0.01 } }
            """);

        using (var metrics = new StreamWriter(Path.Combine(dir, "metrics.jsonl")))
        {
            for (int s = logEvery; s <= steps; s += logEvery)
            {
                double loss = 1.25 + 2.9 * Math.Exp(-s / 220.0) + 0.05 * rng.NextNormal();
                double? val = s % 100 == 0 ? 1.31 + 2.9 * Math.Exp(-s / 220.0) + 0.01 * rng.NextNormal() : null;
                double lr = s < 100 ? 1e-3 * s / 100 : 1e-4 + 0.5 * 9e-4 * (1 + Math.Cos(Math.PI * (s - 100) / (steps - 100)));
                var row = new
                {
                    step = s, loss, val_loss = val, lr,
                    tokens_per_second = (s == logEvery ? 7000 : 12000) + 400 * rng.NextNormal(),
                    elapsed_seconds = s * 0.064,
                    aux = new { load_balance = 1.0 + 0.35 * Math.Exp(-s / 150.0) + 0.01 * rng.NextNormal(), z_loss = 2.2 + 1.5 * Math.Exp(-s / 300.0) },
                };
                metrics.WriteLine(JsonSerializer.Serialize(row));
            }
        }

        var monitors = Enumerable.Range(0, layers).Select(_ => new RoutingMonitor(experts, deadSteps: 5, collapseThreshold: 0.4f)).ToArray();
        using (var routing = new StreamWriter(Path.Combine(dir, "routing.jsonl")))
        using (var alerts = new StreamWriter(Path.Combine(dir, "alerts.jsonl")))
        {
            for (int s = logEvery; s <= steps; s += logEvery)
            {
                for (int l = 0; l < layers; l++)
                {
                    var stats = Route(Probabilities(l, s, experts, rng), rng, Layer(l));
                    // "Exactly RoutingStats serialised, plus step": splice the step into the record's own JSON.
                    routing.WriteLine($"{{\"step\":{s},{stats.ToJson()[1..]}");
                    foreach (var a in monitors[l].Observe(stats, s)) alerts.WriteLine(JsonSerializer.Serialize(a, Snake));
                }
            }
        }

        var domainLayers = Enumerable.Range(0, layers).Select(l =>
        {
            var counts = Domains.Select((_, d) => Enumerable.Range(0, experts).Select(e =>
            {
                // Deeper layers specialise more: each domain prefers two experts.
                bool preferred = e == (2 * d) % experts || e == (2 * d + 1) % experts;
                double weight = preferred ? 1 + 3.0 * (l + 1) : 1;
                return (int)(weight * (500 + 100 * rng.NextFloat()));
            }).ToArray()).ToArray();
            return new { layer = Layer(l), counts, mutual_information = MutualInformation(counts) };
        }).ToArray();
        File.WriteAllText(Path.Combine(dir, "domains.json"), JsonSerializer.Serialize(new { domains = Domains, layers = domainLayers }));
    }

    /// <summary>Router probabilities at a step: near-uniform in layer 0; layer 1 starves one expert and favours another.</summary>
    private static double[] Probabilities(int layer, int step, int experts, Rng rng)
    {
        var logits = new double[experts];
        for (int e = 0; e < experts; e++) logits[e] = 0.25 * Math.Sin(e * 1.7 + step / 180.0) + 0.05 * rng.NextNormal();
        if (layer == 1)
        {
            if (step >= 300) logits[DeadExpert % experts] = -40;
            if (step >= 600) logits[CollapseExpert] += 3.5 * Math.Min(1, (step - 600) / 250.0);
        }
        double max = logits.Max();
        var p = logits.Select(z => Math.Exp(z - max)).ToArray();
        double sum = p.Sum();
        return p.Select(x => x / sum).ToArray();
    }

    /// <summary>Top-2 routing of <see cref="Tokens"/> tokens, each drawing two distinct experts from p.</summary>
    private static RoutingStats Route(double[] p, Rng rng, string layer)
    {
        int experts = p.Length;
        var load = new int[experts];
        var co = new int[experts * experts];
        for (int t = 0; t < Tokens; t++)
        {
            int a = Draw(p, -1, rng), b = Draw(p, a, rng);
            load[a]++;
            load[b]++;
            co[a * experts + a]++;
            co[b * experts + b]++;
            co[a * experts + b]++;
            co[b * experts + a]++;
        }
        double entropy = -p.Where(x => x > 0).Sum(x => x * Math.Log(x));
        return new RoutingStats
        {
            Layer = layer, Tokens = Tokens, TokensPerExpert = load, Importance = p.Select(x => (float)x).ToArray(),
            Entropy = (float)(0.8 * entropy), Dropped = 0, LoadCv = RoutingStats.Cv(load), CoActivation = co,
        };
    }

    private static int Draw(double[] p, int exclude, Rng rng)
    {
        double total = p.Select((x, i) => i == exclude ? 0 : x).Sum(), u = rng.NextDouble() * total;
        for (int i = 0; i < p.Length; i++)
        {
            if (i == exclude) continue;
            u -= p[i];
            if (u < 0) return i;
        }
        return Enumerable.Range(0, p.Length).Last(i => i != exclude);
    }

    /// <summary>Independent twin of the report's mutual information, in nats.</summary>
    public static double MutualInformation(int[][] counts)
    {
        double n = counts.SelectMany(r => r).Sum(c => (double)c), mi = 0;
        for (int d = 0; d < counts.Length; d++)
            for (int e = 0; e < counts[d].Length; e++)
            {
                double pde = counts[d][e] / n, pd = counts[d].Sum() / n, pe = counts.Sum(r => r[e]) / n;
                if (pde > 0) mi += pde * Math.Log(pde / (pd * pe));
            }
        return mi;
    }
}
