using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using MoeSharp.Server.Engine;
using MoeSharp.Server.Generation;

namespace MoeSharp.Server.Http;

/// <summary>
/// The counters behind <c>/metrics</c>, written in Prometheus' text format: requests by endpoint and status, prompt
/// and generated tokens, the generation rate over the last <see cref="Window"/> seconds, the engine's queue, running
/// requests and batch size, and each MoE block's expert load.
/// </summary>
internal sealed class ServerMetrics : IDisposable
{
    /// <summary>Seconds the tokens-per-second gauge averages over.</summary>
    public const int Window = 10;

    private readonly ServedModel _model;
    private readonly IGenerationEngine _engine;
    private readonly ConcurrentDictionary<(string Endpoint, int Status), long> _requests = new();
    private readonly long[] _samples = new long[Window + 1]; // [Window + 1] engine token counts, one a second, a ring
    private readonly Timer _sampler;
    private int _sampled;
    private long _promptTokens;

    public ServerMetrics(ServedModel model, IGenerationEngine engine)
    {
        _model = model;
        _engine = engine;
        _sampler = new Timer(_ => Sample(), null, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1));
    }

    /// <summary>Counts a request answered on <paramref name="endpoint"/> with <paramref name="status"/>.</summary>
    public void Request(string endpoint, int status) => _requests.AddOrUpdate((endpoint, status), 1, (_, n) => n + 1);

    /// <summary>Counts the prompt of a request that reached the engine.</summary>
    public void Prompt(int tokens) => Interlocked.Add(ref _promptTokens, tokens);

    private void Sample()
    {
        lock (_samples)
        {
            _samples[_sampled % _samples.Length] = _engine.Stats.TokensGenerated;
            _sampled++;
        }
    }

    /// <summary>Tokens per second over the last <see cref="Window"/> seconds (fewer right after start).</summary>
    public double TokensPerSecond()
    {
        lock (_samples)
        {
            if (_sampled < 2) return 0;
            int span = Math.Min(_sampled - 1, Window);
            long newest = _samples[(_sampled - 1) % _samples.Length], oldest = _samples[(_sampled - 1 - span) % _samples.Length];
            return (newest - oldest) / (double)span;
        }
    }

    /// <summary>Every metric in Prometheus' text exposition format 0.0.4.</summary>
    public string Text()
    {
        EngineStats s = _engine.Stats;
        var o = new StringBuilder();
        Header(o, "moe_requests_total", "counter", "HTTP requests answered, by endpoint and status code.");
        foreach (var ((endpoint, status), n) in _requests.OrderBy(r => r.Key.Endpoint, StringComparer.Ordinal).ThenBy(r => r.Key.Status))
            o.Append(CultureInfo.InvariantCulture, $"moe_requests_total{{endpoint=\"{endpoint}\",code=\"{status}\"}} {n}\n");
        Metric(o, "moe_prompt_tokens_total", "counter", "Prompt tokens of the requests the engine took.", Interlocked.Read(ref _promptTokens));
        Metric(o, "moe_generated_tokens_total", "counter", "Tokens the engine generated.", s.TokensGenerated);
        Metric(o, "moe_tokens_per_second", "gauge", $"Tokens generated per second over the last {Window} seconds.", TokensPerSecond());
        Metric(o, "moe_engine_steps_total", "counter", "Forward passes the engine ran.", s.Steps);
        Metric(o, "moe_queue_length", "gauge", "Requests waiting for the engine.", s.QueueLength);
        Metric(o, "moe_running_requests", "gauge", "Requests being decoded.", s.Running);
        Metric(o, "moe_batch_size", "gauge", "Sequences in the engine's current step.", s.BatchSize);
        ExpertLoad load = _model.Load;
        Header(o, "moe_expert_load_total", "counter", "Generated tokens routed to each expert, per MoE block (k per token with top-k routing).");
        for (int m = 0; m < load.Blocks.Count; m++)
            for (int e = 0; e < load.Experts; e++)
                o.Append(CultureInfo.InvariantCulture, $"moe_expert_load_total{{layer=\"{load.Blocks[m]}\",expert=\"{e}\"}} {load.Count(m, e)}\n");
        return o.ToString();
    }

    private static void Header(StringBuilder o, string name, string type, string help) =>
        o.Append(CultureInfo.InvariantCulture, $"# HELP {name} {help}\n# TYPE {name} {type}\n");

    private static void Metric(StringBuilder o, string name, string type, string help, double value)
    {
        Header(o, name, type, help);
        o.Append(CultureInfo.InvariantCulture, $"{name} {value:R}\n");
    }

    public void Dispose() => _sampler.Dispose();
}
