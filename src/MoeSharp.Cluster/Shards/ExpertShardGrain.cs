using MoeSharp.Cluster.Placement;
using MoeSharp.Experts;
using MoeSharp.Layers;
using Orleans.Concurrency;

namespace MoeSharp.Cluster.Shards;

/// <summary>
/// The expert-shard grain. It holds no state of its own: the weights are its silo's opened checkpoint
/// (<see cref="ShardHost"/>), so a replica re-placed on another silo after a failure serves again as soon as it is
/// activated there. Reentrant, since a turn only reads shared weights and two callers' hand-offs between grains of
/// one silo must not wait on each other.
/// </summary>
/// <remarks>Dimensions: R rows of a section, D model width, E experts of the layer.</remarks>
[ShardPlacement]
[Reentrant]
public sealed class ExpertShardGrain(ShardHost host) : Grain, IExpertShardGrain
{
    private ShardKey _key;
    private MoeLayer? _layer;

    /// <inheritdoc/>
    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        _key = ShardKey.Parse(this.GetPrimaryKeyString());
        var layers = host.Model.MoeLayers;
        if (_key.Layer >= layers.Count)
            throw new ArgumentException($"Shard {_key} on silo {host.SiloName}: {host.Options.Checkpoint} has {layers.Count} MoE layers; there is no layer {_key.Layer}.");
        _layer = layers[_key.Layer];
        if (_layer.Router is null)
            throw new ArgumentException($"Shard {_key} on silo {host.SiloName}: MoE layer {_key.Layer} of {host.Options.Checkpoint} is Soft MoE, which is not served by shards.");
        host.CountActivation(_key);
        return Task.CompletedTask;
    }

    /// <inheritdoc/>
    public Task<ShardInfo> Describe()
    {
        var bank = _layer!.Bank;
        var plan = host.Plan;
        var holds = plan.Version == _key.Version ? plan.Find(_key.Layer, _key.Shard)?.Experts ?? [] : [];
        return Task.FromResult(new ShardInfo(host.SiloName, host.Options.Checkpoint, host.Model.MoeLayers.Count, bank.Experts, bank.Dim,
            bank.Hidden, bank.Activation.ToString(), holds, ShardHost.RouterDigest(_layer)));
    }

    /// <inheritdoc/>
    public async Task<ShardReply> Run(ShardRequest request)
    {
        if (request.Layer != _key.Layer)
            throw new ArgumentException($"Shard {_key} got rows for MoE layer {request.Layer}.", nameof(request));
        if (request.Sections.Length == 0 || request.Sections[0].Shard != _key.Shard || request.Sections[0].Replica != _key.Replica)
            throw new ArgumentException($"Shard {_key}: a request's first section must be this replica's own.", nameof(request));
        if (request.Step >= 0) host.CountCall(request.Caller, request.Layer, request.Step);
        var results = new ShardResult[request.Sections.Length];
        var handOffs = new List<(int Index, Task<ShardReply> Reply)>();
        for (int i = 1; i < request.Sections.Length; i++)
        {
            var s = request.Sections[i];
            var grain = GrainFactory.GetGrain<IExpertShardGrain>(new ShardKey(request.Layer, s.Shard, s.Replica, _key.Version).ToString());
            // The caller grouped the section here, so a replica not yet active is placed on this silo. Step −1 marks a
            // hand-off within the silo, which the call counts leave out.
            RequestContext.Set(ShardPlacementDirector.SiloHintKey, host.SiloName);
            handOffs.Add((i, grain.Run(new ShardRequest(request.Layer, -1, [s], request.Caller))));
            RequestContext.Remove(ShardPlacementDirector.SiloHintKey);
        }
        results[0] = await Compute(request.Sections[0]);
        foreach (var (index, reply) in handOffs)
        {
            try
            {
                results[index] = (await reply).Sections[0];
            }
            catch (Exception ex)
            {
                results[index] = Failed(request.Sections[index].Shard, ex.Message);
            }
        }
        return new ShardReply(results);
    }

    /// <inheritdoc/>
    public Task Retire()
    {
        DeactivateOnIdle();
        return Task.CompletedTask;
    }

    private ShardResult Failed(int shard, string error) => new(shard, default, error, host.SiloName);

    /// <summary>The section's rows through its experts; an invalid section is answered with the reason instead.</summary>
    private async Task<ShardResult> Compute(ShardSection section)
    {
        var bank = _layer!.Bank;
        int d = bank.Dim, e = bank.Experts;
        if (section.Experts.Length != section.Rows.Length)
            return Failed(section.Shard, $"{section.Experts.Length} experts with {section.Rows.Length} row counts.");
        var offsets = new int[e + 1]; // [E+1] the section's rows per expert, as the layer's sorted rows
        int previous = -1;
        for (int i = 0; i < section.Experts.Length; i++)
        {
            int x = section.Experts[i];
            if (x <= previous || x >= e || section.Rows[i] < 0)
                return Failed(section.Shard, $"expert {x} with {section.Rows[i]} rows: experts must increase within [0, {e}) and rows be non-negative.");
            offsets[x + 1] = section.Rows[i];
            previous = x;
        }
        for (int x = 0; x < e; x++) offsets[x + 1] += offsets[x];
        int rows = offsets[e];
        if (section.Data.Length != rows * d)
            return Failed(section.Shard, $"{section.Data.Length} values for {rows} rows of width {d}.");
        var xs = new float[rows * d]; // [R,D]
        var ys = new float[rows * d]; // [R,D]
        section.Data.DecodeTo(xs);
        LocalExpertRunner.Instance.Run(bank, xs, offsets, ys, new bool[e]);
        host.CountServed(_key);
        var fault = host.Fault;
        if (fault is not null && fault.Layer == _key.Layer)
        {
            switch (fault.Kind)
            {
                case ShardFaultKind.Late:
                    await Task.Delay(fault.Delay);
                    break;
                case ShardFaultKind.WrongRowCount:
                    ys = ys[..Math.Max(0, ys.Length - d)];
                    break;
                case ShardFaultKind.NotFinite:
                    if (ys.Length > 0) ys[0] = float.NaN;
                    break;
            }
        }
        return new ShardResult(section.Shard, RowData.Encode(ys, section.Data.Bf16 is not null), null, host.SiloName);
    }
}
