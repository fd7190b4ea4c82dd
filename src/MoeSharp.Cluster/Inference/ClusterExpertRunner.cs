using System.Collections.Concurrent;
using System.Diagnostics;
using System.Numerics.Tensors;
using MoeSharp.Cluster.Placement;
using MoeSharp.Cluster.Shards;
using MoeSharp.Experts;

namespace MoeSharp.Cluster.Inference;

/// <summary>How the cluster runner talks to the shards.</summary>
public sealed record ClusterRunnerOptions
{
    /// <summary>Send rows and receive outputs as bf16 (half the bytes, ≤ 2⁻⁸ relative rounding per value) instead of fp32.</summary>
    public bool Bf16 { get; init; }

    /// <summary>
    /// How long a layer waits for a silo's answer; a later one counts as lost and its experts are skipped. The default
    /// is Orleans' own response timeout: a long prompt's rows take a silo a while, and a step degraded by mistake
    /// silently loses quality, so set it from the slowest expected prefill, not from decode.
    /// </summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(30);
}

/// <summary>What the cluster runners of one attached model sent, received and lost, summed over its MoE layers.</summary>
public sealed class ClusterCounters
{
    private long _steps, _runs, _calls, _lostCalls, _lostSections, _degradedRuns, _bytesSent, _bytesReceived, _waited;
    private string? _lastFault;

    /// <summary>Identifies this attached model's calls to the silos.</summary>
    public Guid Caller { get; } = Guid.NewGuid();

    /// <summary>Layer forwards that went through the cluster.</summary>
    public long Runs => Interlocked.Read(ref _runs);

    /// <summary>Calls sent: one per destination silo per layer forward.</summary>
    public long Calls => Interlocked.Read(ref _calls);

    /// <summary>Calls that threw (a silo down) or timed out (late).</summary>
    public long LostCalls => Interlocked.Read(ref _lostCalls);

    /// <summary>Shard sections that came back with an error or malformed (wrong row count, not finite), or were in a lost call.</summary>
    public long LostSections => Interlocked.Read(ref _lostSections);

    /// <summary>Layer forwards in which some expert with rows did not answer, so some tokens were degraded.</summary>
    public long DegradedRuns => Interlocked.Read(ref _degradedRuns);

    /// <summary>Bytes of rows sent (fp32 or bf16 values, without Orleans' framing).</summary>
    public long BytesSent => Interlocked.Read(ref _bytesSent);

    /// <summary>Bytes of expert outputs received.</summary>
    public long BytesReceived => Interlocked.Read(ref _bytesReceived);

    /// <summary>Time the layers spent between sending their calls and having every answer (or giving up on it): the cluster's share of the latency.</summary>
    public TimeSpan Waited => TimeSpan.FromTicks(Interlocked.Read(ref _waited));

    /// <summary>The last fault, in words; null when there was none.</summary>
    public string? LastFault => Volatile.Read(ref _lastFault);

    internal long NextStep() => Interlocked.Increment(ref _steps);

    internal void Run(int calls, long sent)
    {
        Interlocked.Increment(ref _runs);
        Interlocked.Add(ref _calls, calls);
        Interlocked.Add(ref _bytesSent, sent);
    }

    internal void Received(long bytes) => Interlocked.Add(ref _bytesReceived, bytes);

    internal void Wait(TimeSpan waited) => Interlocked.Add(ref _waited, waited.Ticks);

    internal void LostCall(string fault, int sections)
    {
        Interlocked.Increment(ref _lostCalls);
        Interlocked.Add(ref _lostSections, sections);
        Volatile.Write(ref _lastFault, fault);
    }

    internal void LostSection(string fault)
    {
        Interlocked.Increment(ref _lostSections);
        Volatile.Write(ref _lastFault, fault);
    }

    internal void Degraded() => Interlocked.Increment(ref _degradedRuns);
}

/// <summary>
/// Runs one MoE layer's experts on the cluster: the rows are grouped by the silo that holds each shard (replicas taken
/// in turn), sent as one call per destination silo, concurrently, and the answers scattered back into the layer's
/// sorted rows. A call that throws or is late, and a section that comes back with the wrong row count or a value that
/// is not finite, leave their experts unanswered: the layer renormalises the gate over the others.
/// </summary>
/// <remarks>Dimensions: R rows, D model width, E experts.</remarks>
public sealed class ClusterExpertRunner : IExpertRunner
{
    private readonly IGrainFactory _grains;
    private readonly int _layer;
    private readonly ShardPlan[] _shards;
    private readonly int[][] _experts; // per shard, its experts ascending
    private readonly long[] _turn;     // per shard, replicas used so far (round robin)
    private readonly ConcurrentDictionary<(int Shard, int Replica), string> _where = new(); // silo each replica last answered from
    private readonly ClusterRunnerOptions _options;
    private readonly ClusterCounters _counters;
    private readonly int _version;

    /// <summary>The runner of MoE layer <paramref name="layer"/> under <paramref name="plan"/> (validated by the caller).</summary>
    public ClusterExpertRunner(IGrainFactory grains, PlacementPlan plan, int layer, ClusterRunnerOptions options, ClusterCounters counters)
    {
        _grains = grains;
        _layer = layer;
        _shards = plan.ShardsOf(layer);
        _experts = new int[_shards.Length][];
        for (int s = 0; s < _shards.Length; s++)
        {
            _experts[s] = [.. _shards[s].Experts];
            Array.Sort(_experts[s]);
        }
        _turn = new long[_shards.Length];
        _version = plan.Version;
        _options = options;
        _counters = counters;
    }

    /// <summary>The MoE layer this runner serves.</summary>
    public int Layer => _layer;

    /// <inheritdoc/>
    public void Run(ExpertBank bank, ReadOnlySpan<float> xs, ReadOnlySpan<int> expertOffsets, Span<float> ys, Span<bool> answered)
    {
        int d = bank.Dim;
        long step = _counters.NextStep();
        var groups = new Dictionary<string, List<(int Shard, int Replica)>>(StringComparer.Ordinal);
        var order = new List<string>();
        for (int s = 0; s < _shards.Length; s++)
        {
            int rows = 0;
            foreach (int e in _experts[s]) rows += expertOffsets[e + 1] - expertOffsets[e];
            if (rows == 0) continue;
            int replica = (int)(_turn[s]++ % _shards[s].Silos.Length);
            string silo = _where.TryGetValue((s, replica), out var seen) ? seen : _shards[s].Silos[replica];
            if (!groups.TryGetValue(silo, out var list))
            {
                groups[silo] = list = [];
                order.Add(silo);
            }
            list.Add((s, replica));
        }
        var calls = new (List<(int Shard, int Replica)> Members, ShardSection[] Sections, Task<ShardReply> Reply)[order.Count];
        long sent = 0, started = Stopwatch.GetTimestamp();
        for (int c = 0; c < order.Count; c++)
        {
            var members = groups[order[c]];
            var sections = new ShardSection[members.Count];
            for (int i = 0; i < members.Count; i++)
            {
                var (s, replica) = members[i];
                sections[i] = Section(s, replica, xs, expertOffsets, d);
                sent += sections[i].Data.Bytes;
            }
            var (first, firstReplica) = members[0];
            var grain = _grains.GetGrain<IExpertShardGrain>(new ShardKey(_layer, _shards[first].Shard, firstReplica, _version).ToString());
            // Names the silo for the director, should this call activate the replica: silos may hold an older plan.
            RequestContext.Set(ShardPlacementDirector.SiloHintKey, order[c]);
            calls[c] = (members, sections, grain.Run(new ShardRequest(_layer, step, sections, _counters.Caller)).WaitAsync(_options.Timeout));
            RequestContext.Remove(ShardPlacementDirector.SiloHintKey);
        }
        _counters.Run(order.Count, sent);
        foreach (var call in calls)
        {
            // Each call is waited on by itself: one silo's fault must not cost the answers of the others.
            try
            {
                call.Reply.Wait();
            }
            catch (AggregateException)
            {
            }
        }
        _counters.Wait(Stopwatch.GetElapsedTime(started));
        bool lost = false;
        foreach (var (members, sections, reply) in calls)
        {
            if (!reply.IsCompletedSuccessfully)
            {
                var ex = reply.Exception?.GetBaseException();
                string why = ex is TimeoutException ? $"no answer within {_options.Timeout.TotalMilliseconds:F0} ms" : ex?.Message ?? "cancelled";
                _counters.LostCall($"MoE layer {_layer}, shard {_shards[members[0].Shard].Shard} and {members.Count - 1} more: {why}", members.Count);
                lost = true;
                continue;
            }
            var results = reply.Result.Sections;
            for (int i = 0; i < members.Count; i++)
            {
                var (s, replica) = members[i];
                string? fault = i >= results.Length ? "no result for the section" : Scatter(results[i], sections[i], expertOffsets, ys, d);
                if (fault is not null)
                {
                    _counters.LostSection($"MoE layer {_layer} shard {_shards[s].Shard} replica {replica}: {fault}");
                    lost = true;
                    continue;
                }
                _where[(s, replica)] = results[i].Silo;
                foreach (int e in sections[i].Experts) answered[e] = true;
            }
        }
        if (lost) _counters.Degraded();
    }

    /// <summary>The rows of shard <paramref name="s"/>'s experts that have any, in expert order.</summary>
    private ShardSection Section(int s, int replica, ReadOnlySpan<float> xs, ReadOnlySpan<int> offsets, int d)
    {
        int count = 0, rows = 0;
        foreach (int e in _experts[s])
        {
            int n = offsets[e + 1] - offsets[e];
            if (n == 0) continue;
            count++;
            rows += n;
        }
        var experts = new int[count];
        var perExpert = new int[count];
        var data = new float[rows * d]; // [R_s, D]
        int at = 0, k = 0;
        foreach (int e in _experts[s])
        {
            int n = offsets[e + 1] - offsets[e];
            if (n == 0) continue;
            experts[k] = e;
            perExpert[k++] = n;
            xs.Slice(offsets[e] * d, n * d).CopyTo(data.AsSpan(at * d));
            at += n;
        }
        return new ShardSection(_shards[s].Shard, replica, experts, perExpert, RowData.Encode(data, _options.Bf16));
    }

    /// <summary>Writes a section's answer into the layer's rows; returns what is wrong with it instead when it is malformed.</summary>
    private string? Scatter(ShardResult result, ShardSection section, ReadOnlySpan<int> offsets, Span<float> ys, int d)
    {
        if (result.Error is not null) return result.Error;
        int rows = 0;
        foreach (int n in section.Rows) rows += n;
        if (result.Data.Length != rows * d) return $"{result.Data.Length} values for {rows} rows of width {d}";
        var values = new float[rows * d]; // [R_s, D]
        result.Data.DecodeTo(values);
        _counters.Received(result.Data.Bytes);
        if (!TensorPrimitives.IsFiniteAll(values)) return "a value that is not finite";
        int at = 0;
        for (int i = 0; i < section.Experts.Length; i++)
        {
            int e = section.Experts[i], n = section.Rows[i];
            values.AsSpan(at * d, n * d).CopyTo(ys.Slice(offsets[e] * d, n * d));
            at += n;
        }
        return null;
    }
}
