using System.Globalization;

namespace MoeSharp.Cluster.Shards;

/// <summary>
/// The identity of one expert-shard grain: (MoE layer, shard, replica), written as the grain's string key
/// "layer/shard/replica" so that a replicated shard has one grain per replica.
/// </summary>
public readonly record struct ShardKey(int Layer, int Shard, int Replica)
{
    /// <summary>The grain key, "layer/shard/replica".</summary>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{Layer}/{Shard}/{Replica}");

    /// <summary>Reads a key written by <see cref="ToString"/>.</summary>
    /// <exception cref="ArgumentException">The key is not three non-negative integers separated by '/'.</exception>
    public static ShardKey Parse(string key)
    {
        var parts = key.Split('/');
        if (parts.Length == 3 && int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out int layer)
            && int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out int shard)
            && int.TryParse(parts[2], NumberStyles.None, CultureInfo.InvariantCulture, out int replica))
            return new ShardKey(layer, shard, replica);
        throw new ArgumentException($"Expert-shard grain key '{key}' is not 'layer/shard/replica' (three non-negative integers).", nameof(key));
    }
}
