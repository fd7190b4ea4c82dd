using MoeSharp.Cluster.Placement;
using MoeSharp.Cluster.Shards;
using MoeSharp.Dispatch;
using MoeSharp.Experts;

namespace MoeSharp.Cluster.Training;

/// <summary>
/// Trains one MoE layer's experts on the cluster for one worker: a forward sends each shard's rows in one call
/// (concurrently), a backward sends the same rows' gate-weighted upstream gradients and gets their input gradients
/// back, while the weight gradients and moments stay on the shards. A shard that fails fails the step: unlike
/// inference, a lost expert's gradient cannot be renormalised away.
/// </summary>
/// <remarks>Dimensions: R rows sorted by expert, D model width, E experts of the layer.</remarks>
public sealed class ClusterExpertTrainer : IExpertTrainer
{
    private readonly ShardPlan[] _shards;
    private readonly int[][] _experts; // per shard, its experts ascending
    private readonly IExpertTrainingGrain[] _grains;
    private readonly Dictionary<long, int[]> _offsets = []; // handle → [E+1] the forward's rows per expert
    private readonly int _layer, _worker;
    private long _handles;

    /// <summary>Worker <paramref name="worker"/>'s trainer of MoE layer <paramref name="layer"/> under <paramref name="plan"/> (one replica per shard).</summary>
    public ClusterExpertTrainer(IGrainFactory grains, PlacementPlan plan, int layer, int worker)
    {
        _layer = layer;
        _worker = worker;
        _shards = plan.ShardsOf(layer);
        _experts = new int[_shards.Length][];
        _grains = new IExpertTrainingGrain[_shards.Length];
        for (int s = 0; s < _shards.Length; s++)
        {
            _experts[s] = [.. _shards[s].Experts];
            Array.Sort(_experts[s]);
            _grains[s] = Grain(grains, plan, _shards[s]);
        }
    }

    /// <summary>The training grain of <paramref name="shard"/> (its only replica), named for the placement director.</summary>
    internal static IExpertTrainingGrain Grain(IGrainFactory grains, PlacementPlan plan, ShardPlan shard) =>
        grains.GetGrain<IExpertTrainingGrain>(new ShardKey(shard.Layer, shard.Shard, 0, plan.Version).ToString());

    /// <inheritdoc/>
    public void Run(ExpertBank bank, ReadOnlySpan<float> xs, ReadOnlySpan<int> expertOffsets, Span<float> ys, Span<bool> answered)
    {
        Send(bank, -1, xs, expertOffsets, ys);
        answered.Fill(true);
    }

    /// <inheritdoc/>
    public long Forward(ExpertBank bank, ReadOnlySpan<float> xs, ReadOnlySpan<int> expertOffsets, Span<float> ys)
    {
        long handle = _handles++;
        Send(bank, handle, xs, expertOffsets, ys);
        _offsets[handle] = expertOffsets.ToArray();
        return handle;
    }

    /// <inheritdoc/>
    public void Backward(ExpertBank bank, long handle, ReadOnlySpan<float> dys, Span<float> dxs)
    {
        if (!_offsets.Remove(handle, out var offsets))
            throw new InvalidOperationException($"MoE layer {_layer}, worker {_worker}: no forward {handle} waits for its backward.");
        int d = bank.Dim;
        var calls = new List<(int Shard, Task<float[]> Reply)>();
        for (int s = 0; s < _shards.Length; s++)
        {
            var data = Gather(s, dys, offsets, d, out _, out _);
            if (data is null) continue;
            Hint(s);
            calls.Add((s, _grains[s].Backward(_worker, handle, data)));
            RequestContext.Remove(ShardPlacementDirector.SiloHintKey);
        }
        Scatter(calls, offsets, dxs, d, "backward");
    }

    private void Send(ExpertBank bank, long handle, ReadOnlySpan<float> xs, ReadOnlySpan<int> offsets, Span<float> ys)
    {
        if (offsets.Length != bank.Experts + 1)
            throw new ArgumentException($"MoE layer {_layer}: {offsets.Length} expert offsets for {bank.Experts} experts.", nameof(offsets));
        int d = bank.Dim;
        var calls = new List<(int Shard, Task<float[]> Reply)>();
        for (int s = 0; s < _shards.Length; s++)
        {
            var data = Gather(s, xs, offsets, d, out var experts, out var rows);
            if (data is null) continue;
            Hint(s);
            calls.Add((s, _grains[s].Forward(new TrainingRows(_worker, handle, experts, rows, data))));
            RequestContext.Remove(ShardPlacementDirector.SiloHintKey);
        }
        Scatter(calls, offsets, ys, d, "forward");
    }

    /// <summary>Names shard <paramref name="s"/>'s silo for the director, should the next call activate it (as the inference runner does).</summary>
    private void Hint(int s) => RequestContext.Set(ShardPlacementDirector.SiloHintKey, _shards[s].Silos[0]);

    /// <summary>[R_s, D] shard <paramref name="s"/>'s rows in expert order, with its experts that have rows and their counts; null when none has.</summary>
    private float[]? Gather(int s, ReadOnlySpan<float> rows, ReadOnlySpan<int> offsets, int d, out int[] experts, out int[] counts)
    {
        var withRows = new List<int>();
        var perExpert = new List<int>();
        int total = 0;
        foreach (int e in _experts[s])
        {
            int n = offsets[e + 1] - offsets[e];
            if (n == 0) continue;
            withRows.Add(e);
            perExpert.Add(n);
            total += n;
        }
        experts = [.. withRows];
        counts = [.. perExpert];
        if (total == 0) return null;
        var data = new float[total * d]; // [R_s, D]
        int at = 0;
        foreach (int e in experts)
        {
            int n = offsets[e + 1] - offsets[e];
            rows.Slice(offsets[e] * d, n * d).CopyTo(data.AsSpan(at * d));
            at += n;
        }
        return data;
    }

    /// <summary>Waits for every call and writes each shard's answer into its experts' rows; any failure throws, naming the shard and its silo.</summary>
    private void Scatter(List<(int Shard, Task<float[]> Reply)> calls, ReadOnlySpan<int> offsets, Span<float> rows, int d, string what)
    {
        foreach (var (s, reply) in calls)
        {
            float[] values;
            try
            {
                values = reply.GetAwaiter().GetResult();
            }
            catch (Exception ex)
            {
                throw new InvalidOperationException($"MoE layer {_layer} shard {_shards[s].Shard} on {_shards[s].Silos[0]}, worker {_worker}: the {what} failed ({ex.GetBaseException().Message}).", ex);
            }
            int at = 0;
            foreach (int e in _experts[s])
            {
                int n = offsets[e + 1] - offsets[e];
                if (n == 0) continue;
                if ((at + n) * d > values.Length)
                    throw new InvalidOperationException($"MoE layer {_layer} shard {_shards[s].Shard} on {_shards[s].Silos[0]}: the {what} answered {values.Length} values, fewer than its rows need.");
                values.AsSpan(at * d, n * d).CopyTo(rows.Slice(offsets[e] * d, n * d));
                at += n;
            }
            if (at * d != values.Length)
                throw new InvalidOperationException($"MoE layer {_layer} shard {_shards[s].Shard} on {_shards[s].Silos[0]}: the {what} answered {values.Length} values for {at} rows of width {d}.");
        }
    }
}
