using System.Globalization;

namespace MoeSharp.Cluster.Shards;

/// <summary>
/// The identity of one expert-shard grain: (MoE layer, shard, replica) under placement plan version
/// <paramref name="Version"/>, written as the grain's string key "layer/shard/replica/version", so that a replicated
/// shard has one grain per replica and a new plan's replicas are new grains beside the old plan's.
/// </summary>
public readonly record struct ShardKey(int Layer, int Shard, int Replica, int Version = 0)
{
    /// <summary>The grain key, "layer/shard/replica/version".</summary>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{Layer}/{Shard}/{Replica}/{Version}");

    /// <summary>Reads a key written by <see cref="ToString"/>.</summary>
    /// <exception cref="ArgumentException">The key is not four non-negative integers separated by '/'.</exception>
    public static ShardKey Parse(string key)
    {
        var parts = key.Split('/');
        var values = new int[4];
        if (parts.Length == 4)
        {
            int i = 0;
            while (i < 4 && int.TryParse(parts[i], NumberStyles.None, CultureInfo.InvariantCulture, out values[i])) i++;
            if (i == 4) return new ShardKey(values[0], values[1], values[2], values[3]);
        }
        throw new ArgumentException($"Expert-shard grain key '{key}' is not 'layer/shard/replica/version' (four non-negative integers).", nameof(key));
    }
}
