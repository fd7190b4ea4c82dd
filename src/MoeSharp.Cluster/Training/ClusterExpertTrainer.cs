using MoeSharp.Cluster.Placement;
using MoeSharp.Cluster.Shards;
using MoeSharp.Dispatch;
using MoeSharp.Experts;

namespace MoeSharp.Cluster.Training;

/// <summary>
/// Trains one MoE layer's experts on the cluster for one worker: a forward sends each destination silo its shards'
/// rows in one call (all silos at once), a backward sends the same rows' gate-weighted upstream gradients the same way
/// and gets their input gradients back, while the weight gradients and moments stay on the shards. A shard that fails fails the step: unlike
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

    /// <summary>Calls sent to silos, forwards and backwards: one per destination silo each.</summary>
    public long Calls { get; private set; }

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
        Exchange(bank, handle, dys, offsets, dxs, backward: true);
    }

    private void Send(ExpertBank bank, long handle, ReadOnlySpan<float> xs, ReadOnlySpan<int> offsets, Span<float> ys)
    {
        if (offsets.Length != bank.Experts + 1)
            throw new ArgumentException($"MoE layer {_layer}: {offsets.Length} expert offsets for {bank.Experts} experts.", nameof(offsets));
        Exchange(bank, handle, xs, offsets, ys, backward: false);
    }

    /// <summary>
    /// Sends each destination silo its shards' rows of <paramref name="rows"/> in one call (to the silo's first shard with
    /// rows, which hands the others on), all calls at once, and writes the answers into <paramref name="answers"/>.
    /// </summary>
    private void Exchange(ExpertBank bank, long handle, ReadOnlySpan<float> rows, ReadOnlySpan<int> offsets, Span<float> answers, bool backward)
    {
        int d = bank.Dim;
        var silos = new List<string>();
        var groups = new List<List<(int Shard, TrainingSection Section)>>();
        for (int s = 0; s < _shards.Length; s++)
        {
            var data = Gather(s, rows, offsets, d, out var experts, out var counts);
            if (data is null) continue;
            string silo = _shards[s].Silos[0];
            int g = silos.IndexOf(silo);
            if (g < 0)
            {
                silos.Add(silo);
                groups.Add([]);
                g = groups.Count - 1;
            }
            groups[g].Add((s, new TrainingSection(_shards[s].Shard, experts, counts, data)));
        }
        var calls = new Task<float[][]>[groups.Count];
        Calls += groups.Count;
        for (int g = 0; g < groups.Count; g++)
        {
            var sections = new TrainingSection[groups[g].Count];
            for (int i = 0; i < sections.Length; i++) sections[i] = groups[g][i].Section;
            var grain = _grains[groups[g][0].Shard];
            Hint(groups[g][0].Shard);
            calls[g] = backward ? grain.Backward(_worker, handle, sections) : grain.Forward(_worker, handle, sections);
            RequestContext.Remove(ShardPlacementDirector.SiloHintKey);
        }
        string what = backward ? "backward" : "forward";
        for (int g = 0; g < groups.Count; g++)
        {
            float[][] values;
            try
            {
                values = calls[g].GetAwaiter().GetResult();
            }
            catch (Exception ex)
            {
                throw new InvalidOperationException($"MoE layer {_layer}, worker {_worker}: the {what} call to {silos[g]} failed ({ex.GetBaseException().Message}).", ex);
            }
            if (values.Length != groups[g].Count)
                throw new InvalidOperationException($"MoE layer {_layer}: {silos[g]} answered the {what} with {values.Length} sections for {groups[g].Count}.");
            for (int i = 0; i < values.Length; i++) Scatter(groups[g][i].Shard, values[i], offsets, answers, d, what);
        }
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

    /// <summary>Writes shard <paramref name="s"/>'s answer [R_s, D] into its experts' rows; a malformed one throws, naming the shard and its silo.</summary>
    private void Scatter(int s, float[] values, ReadOnlySpan<int> offsets, Span<float> rows, int d, string what)
    {
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
