using MoeSharp.Cluster.Placement;
using MoeSharp.Cluster.Shards;
using MoeSharp.Models;

namespace MoeSharp.Cluster.Inference;

/// <summary>
/// A model whose routed experts run on a cluster: every MoE layer's <see cref="Experts.ExpertBank.Runner"/> is a
/// <see cref="ClusterExpertRunner"/>, so the usual <see cref="Generator"/> generates with it while embeddings,
/// attention, routers and shared experts stay here. Dispose (or <see cref="Detach"/>) to run the experts locally again.
/// </summary>
public sealed class ClusterSession : IDisposable
{
    private readonly IClusterClient _client;
    private readonly ClusterRunnerOptions _options;
    private volatile PlacementPlan _plan;

    internal ClusterSession(MoeTransformer model, IClusterClient client, PlacementPlan plan, ClusterRunnerOptions options)
    {
        Model = model;
        _client = client;
        _plan = plan;
        _options = options;
    }

    /// <summary>The attached model.</summary>
    public MoeTransformer Model { get; }

    /// <summary>The plan the runners follow.</summary>
    public PlacementPlan Plan => _plan;

    /// <summary>Calls, bytes and faults, summed over the layers and the plans applied.</summary>
    public ClusterCounters Counters { get; } = new();

    /// <summary>
    /// Moves to <paramref name="plan"/> without stopping generation: it is checked as at attach (its replicas are
    /// activated where it says, from the checkpoint), each layer's runner is then swapped between two of that layer's
    /// forwards, and the previous plan's replicas retire once idle. Its version must be above the current plan's.
    /// </summary>
    public async Task ApplyPlanAsync(PlacementPlan plan)
    {
        var current = _plan;
        if (plan.Version <= current.Version)
            throw new ArgumentException($"placement plan: version {plan.Version} does not follow the current version {current.Version}; a new plan needs a higher version.", nameof(plan));
        await ClusterInference.CheckAsync(Model, _client, plan, _options);
        for (int l = 0; l < Model.MoeLayers.Count; l++)
            Model.MoeLayers[l].Bank.Runner = new ClusterExpertRunner(_client, plan, l, _options, Counters);
        _plan = plan;
        var retiring = new List<Task>();
        foreach (var shard in current.Shards)
            for (int r = 0; r < shard.Silos.Length; r++)
                retiring.Add(_client.GetGrain<IExpertShardGrain>(new ShardKey(shard.Layer, shard.Shard, r, current.Version).ToString()).Retire());
        await Task.WhenAll(retiring);
    }

    /// <summary>Clears every MoE layer's runner: the experts run in this process again.</summary>
    public void Detach()
    {
        foreach (var moe in Model.MoeLayers) moe.Bank.Runner = null;
    }

    /// <inheritdoc/>
    public void Dispose() => Detach();
}

/// <summary>Attaches a model to a cluster of expert-shard silos.</summary>
public static class ClusterInference
{
    /// <summary>
    /// Checks <paramref name="plan"/> against <paramref name="model"/> and the cluster's active silos, asks every shard
    /// replica what it serves (which activates each on its silo and opens the checkpoint there), and sets every MoE
    /// layer's runner to a <see cref="ClusterExpertRunner"/>. Every problem is one line: an
    /// <see cref="ArgumentException"/> for a plan that omits an expert or names a silo the cluster lacks, an
    /// <see cref="InvalidDataException"/> for a silo whose checkpoint does not match the model (in shape, or in its router
    /// weights: another checkpoint of the same shape).
    /// </summary>
    public static async Task<ClusterSession> AttachClusterAsync(this MoeTransformer model, IClusterClient client, PlacementPlan plan,
        ClusterRunnerOptions? options = null)
    {
        options ??= new ClusterRunnerOptions();
        await CheckAsync(model, client, plan, options);
        var session = new ClusterSession(model, client, plan, options);
        for (int l = 0; l < model.MoeLayers.Count; l++) model.MoeLayers[l].Bank.Runner = new ClusterExpertRunner(client, plan, l, options, session.Counters);
        return session;
    }

    /// <summary>The checks of <see cref="AttachClusterAsync"/>, which leave the model as it is.</summary>
    internal static async Task CheckAsync(MoeTransformer model, IClusterClient client, PlacementPlan plan, ClusterRunnerOptions options)
    {
        var layers = model.MoeLayers;
        if (layers.Count == 0) throw new ArgumentException("The model has no MoE layer; there are no experts to place on a cluster.", nameof(model));
        int experts = layers[0].Bank.Experts;
        for (int l = 0; l < layers.Count; l++)
        {
            if (layers[l].Router is null)
                throw new ArgumentException($"MoE layer {l} ({layers[l].Name}) is Soft MoE, which mixes every expert into every slot; only token-routed layers run on a cluster.", nameof(model));
            if (layers[l].Bank.Experts != experts)
                throw new ArgumentException($"MoE layer {l} has {layers[l].Bank.Experts} experts and layer 0 has {experts}; a placement plan needs one expert count.", nameof(model));
        }
        plan.Validate(layers.Count, experts);
        var hosts = await client.GetGrain<IManagementGrain>(0).GetDetailedHosts(onlyActive: true);
        if (hosts.Length == 0) throw new InvalidOperationException("The cluster has no active silo.");
        plan.ValidateSilos(hosts.Select(h => h.SiloName).ToArray());
        var described = new List<(ShardPlan Shard, int Replica, Task<ShardInfo> Info)>();
        foreach (var shard in plan.Shards)
            for (int r = 0; r < shard.Silos.Length; r++)
            {
                var grain = client.GetGrain<IExpertShardGrain>(new ShardKey(shard.Layer, shard.Shard, r, plan.Version).ToString());
                RequestContext.Set(ShardPlacementDirector.SiloHintKey, shard.Silos[r]);
                described.Add((shard, r, grain.Describe().WaitAsync(options.Timeout)));
                RequestContext.Remove(ShardPlacementDirector.SiloHintKey);
            }
        foreach (var (shard, replica, task) in described)
        {
            var info = await task;
            var bank = layers[shard.Layer].Bank;
            if (info.MoeLayers != layers.Count || info.Experts != bank.Experts || info.Dim != bank.Dim || info.Hidden != bank.Hidden
                || info.Activation != bank.Activation.ToString())
                throw new InvalidDataException($"silo {info.Silo}: checkpoint {info.Checkpoint} has {info.MoeLayers} MoE layers of {info.Experts} experts {info.Dim}→{info.Hidden} ({info.Activation}) " +
                    $"for layer {shard.Layer} shard {shard.Shard} replica {replica}; the model here has {layers.Count} of {bank.Experts} experts {bank.Dim}→{bank.Hidden} ({bank.Activation}).");
            string digest = ShardHost.RouterDigest(layers[shard.Layer]);
            if (info.RouterDigest != digest)
                throw new InvalidDataException($"silo {info.Silo}: checkpoint {info.Checkpoint} has other router weights in MoE layer {shard.Layer} than the model here (SHA-256 {info.RouterDigest}… against {digest}…); the silos and the caller must load the same checkpoint.");
        }
    }
}
