using Orleans.Placement;
using Orleans.Runtime.Placement;

namespace MoeSharp.Cluster.Shards;

/// <summary>Places an expert-shard grain on the silo its placement plan names (<see cref="ShardPlacementDirector"/>).</summary>
[GenerateSerializer, Immutable]
public sealed class ShardPlacementStrategy : PlacementStrategy
{
    internal static ShardPlacementStrategy Instance { get; } = new();
}

/// <summary>Marks a grain class as placed by <see cref="ShardPlacementStrategy"/>.</summary>
[AttributeUsage(AttributeTargets.Class, AllowMultiple = false)]
public sealed class ShardPlacementAttribute : PlacementAttribute
{
    /// <summary>The attribute.</summary>
    public ShardPlacementAttribute() : base(ShardPlacementStrategy.Instance) { }
}

/// <summary>
/// Pins replica r of shard (layer, shard) to the silo its plan names: the one the caller names in the request context
/// (<see cref="SiloHintKey"/>, set by the cluster runner from the plan it follows, which may be newer than this silo's),
/// else the one this silo's plan (from DI) names for the key's version. When that silo is not active (declared dead, or
/// gone), the replica goes to a survivor, preferring one that holds no other replica of the shard and spreading a dead
/// silo's shards by their keys; the next call activates it there from the checkpoint.
/// </summary>
public sealed class ShardPlacementDirector(ShardHost host, IClusterMembershipService membership) : IPlacementDirector
{
    /// <summary>The request-context key under which a caller names the silo a shard replica's plan puts it on.</summary>
    public const string SiloHintKey = "moesharp.shard.silo";

    /// <inheritdoc/>
    public Task<SiloAddress> OnAddActivation(PlacementStrategy strategy, PlacementTarget target, IPlacementContext context)
    {
        var key = ShardKey.Parse(target.GrainIdentity.Key.ToString()!);
        var compatible = context.GetCompatibleSilos(target);
        if (compatible.Length == 0) throw new InvalidOperationException($"No silo can host expert shard {key}.");
        var members = membership.CurrentSnapshot.Members;
        string NameOf(SiloAddress silo) => members.TryGetValue(silo, out var m) ? m.Name : "";
        var plan = host.Plan;
        var shard = plan.Version == key.Version ? plan.Find(key.Layer, key.Shard) : null;
        string? planned = target.RequestContextData is { } data && data.TryGetValue(SiloHintKey, out var hint) ? hint as string
            : shard is not null && key.Replica < shard.Silos.Length ? shard.Silos[key.Replica] : null;
        foreach (var silo in compatible)
            if (NameOf(silo) == planned) return Task.FromResult(silo);
        var others = shard is null ? [] : compatible.Where(s => Array.IndexOf(shard.Silos, NameOf(s)) < 0).ToArray();
        var candidates = others.Length > 0 ? others : compatible;
        Array.Sort(candidates, (a, b) => string.CompareOrdinal(a.ToString(), b.ToString()));
        int pick = (int)((uint)(key.Layer * 7919 + key.Shard * 31 + key.Replica) % (uint)candidates.Length);
        return Task.FromResult(candidates[pick]);
    }
}
