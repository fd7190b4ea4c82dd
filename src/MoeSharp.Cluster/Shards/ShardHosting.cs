using MoeSharp.Cluster.Placement;
using Microsoft.Extensions.DependencyInjection;

namespace MoeSharp.Cluster.Shards;

/// <summary>Turns a silo into a host of expert shards.</summary>
public static class ShardHosting
{
    /// <summary>Registers the silo's <see cref="ShardHost"/> over <paramref name="options"/> and the placement director that follows its plan.</summary>
    public static ISiloBuilder AddExpertShards(this ISiloBuilder silo, ShardHostOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        silo.Services.AddSingleton(options);
        silo.Services.AddSingleton<ShardHost>();
        silo.Services.AddPlacementDirector<ShardPlacementStrategy, ShardPlacementDirector>();
        return silo;
    }
}
