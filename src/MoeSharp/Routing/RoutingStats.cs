using System.Text.Json;
using System.Text.Json.Serialization;

namespace MoeSharp.Routing;

/// <summary>
/// One layer's routing in one forward pass: how many assignments each expert got, the mean router probability
/// per expert (importance), the mean per-token routing entropy (nats), drops, the coefficient of variation of the
/// load, and for K ≥ 2 how often each pair of experts served the same token. Padding tokens are excluded.
/// </summary>
public sealed record RoutingStats
{
    /// <summary>The layer these statistics describe.</summary>
    public string Layer { get; init; } = "";
    /// <summary>Unmasked tokens routed.</summary>
    public int Tokens { get; init; }
    /// <summary>[E] pairs each expert received (after capacity).</summary>
    public int[] TokensPerExpert { get; init; } = [];
    /// <summary>[E] mean router probability per expert over the unmasked tokens.</summary>
    public float[] Importance { get; init; } = [];
    /// <summary>Mean per-token entropy of the router probabilities, in nats; low means confident routing.</summary>
    public float Entropy { get; init; }
    /// <summary>Pairs dropped over capacity.</summary>
    public int Dropped { get; init; }
    /// <summary>
    /// Tokens that lost at least one of their experts because its runner did not answer (a cluster silo down, late or
    /// wrong); their remaining gate weights were renormalised. Absent from the JSON when 0, as it always is in one process.
    /// </summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public int Degraded { get; init; }

    /// <summary>Coefficient of variation of <see cref="TokensPerExpert"/>; 0 is perfectly balanced.</summary>
    public float LoadCv { get; init; }

    /// <summary>[E·E] row-major: entry (i, j) counts tokens routed to both i and j; the diagonal is each expert's load. Empty for K = 1.</summary>
    public int[] CoActivation { get; init; } = [];

    /// <summary>The largest share of assignments any one expert took.</summary>
    [JsonIgnore]
    public float MaxShare
    {
        get
        {
            long total = TokensPerExpert.Sum(c => (long)c);
            return total == 0 ? 0 : (float)TokensPerExpert.Max() / total;
        }
    }

    /// <summary>One line of snake_case JSON, as routing.jsonl stores it.</summary>
    public string ToJson() => JsonSerializer.Serialize(this, JsonOptions);

    /// <summary>Reads a line written by <see cref="ToJson"/>.</summary>
    public static RoutingStats FromJson(string json) =>
        JsonSerializer.Deserialize<RoutingStats>(json, JsonOptions) ?? throw new JsonException("Routing statistics JSON is null.");

    internal static readonly JsonSerializerOptions JsonOptions = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    /// <summary>Coefficient of variation (population) of a load vector.</summary>
    public static float Cv(ReadOnlySpan<int> load)
    {
        if (load.Length == 0) return 0;
        long sum = 0;
        foreach (int c in load) sum += c;
        double mean = (double)sum / load.Length;
        if (mean == 0) return 0;
        double var = 0;
        foreach (int c in load) var += (c - mean) * (c - mean);
        var /= load.Length;
        return (float)(Math.Sqrt(var) / mean);
    }
}

/// <summary>An alert raised by <see cref="RoutingMonitor"/>.</summary>
public sealed record RoutingAlert(string Layer, long Step, string Kind, int Expert, string Message);

/// <summary>
/// Watches a layer's statistics step after step: an expert is flagged dead when it has received no token for
/// <c>deadSteps</c> consecutive steps, and the layer collapsed when one expert's share of assignments exceeds
/// <c>collapseThreshold</c>. Each condition alerts once when it starts, with its step.
/// </summary>
public sealed class RoutingMonitor(int experts, int deadSteps, float collapseThreshold)
{
    private readonly int[] _idle = new int[experts];
    private readonly bool[] _dead = new bool[experts];
    private bool _collapsed;

    /// <summary>[E] experts currently flagged dead.</summary>
    public IReadOnlyList<bool> Dead => _dead;
    /// <summary>Whether one expert currently takes more than the collapse threshold.</summary>
    public bool Collapsed => _collapsed;

    /// <summary>Records one step's statistics; returns the alerts that started at this step.</summary>
    public IReadOnlyList<RoutingAlert> Observe(RoutingStats stats, long step)
    {
        var alerts = new List<RoutingAlert>();
        for (int e = 0; e < experts; e++)
        {
            _idle[e] = stats.TokensPerExpert[e] == 0 ? _idle[e] + 1 : 0;
            bool dead = _idle[e] >= deadSteps;
            if (dead && !_dead[e])
                alerts.Add(new RoutingAlert(stats.Layer, step, "dead", e, $"expert {e} of {stats.Layer} has had no token for {_idle[e]} steps"));
            _dead[e] = dead;
        }
        float share = stats.MaxShare;
        bool collapsed = share > collapseThreshold;
        if (collapsed && !_collapsed)
        {
            int top = Array.IndexOf(stats.TokensPerExpert, stats.TokensPerExpert.Max());
            alerts.Add(new RoutingAlert(stats.Layer, step, "collapse", top, $"expert {top} of {stats.Layer} takes {share * 100:F0}% of the assignments"));
        }
        _collapsed = collapsed;
        return alerts;
    }
}
