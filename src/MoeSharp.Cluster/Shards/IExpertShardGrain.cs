namespace MoeSharp.Cluster.Shards;

/// <summary>
/// One replica of one shard of an MoE layer's experts, keyed by <see cref="ShardKey"/> ("layer/shard/replica/version")
/// and pinned to the silo its placement plan names. It runs its experts on the rows it receives with the kernels a single
/// process uses, over the checkpoint its silo opened.
/// </summary>
public interface IExpertShardGrain : IGrainWithStringKey
{
    /// <summary>Runs the request's first section here and hands each other section to its own grain; one result per section, in order.</summary>
    Task<ShardReply> Run(ShardRequest request);

    /// <summary>The silo, the checkpoint and the layer's shape this replica serves, and the experts the plan gives it.</summary>
    Task<ShardInfo> Describe();

    /// <summary>Deactivates the replica once idle (its plan was replaced); a later call would activate it again.</summary>
    Task Retire();
}
