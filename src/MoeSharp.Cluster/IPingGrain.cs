namespace MoeSharp.Cluster;

/// <summary>Skeleton grain proving the Orleans code generator runs in this project; replaced by the expert-shard grain (issue 14).</summary>
public interface IPingGrain : IGrainWithIntegerKey
{
    /// <summary>Returns <paramref name="value"/> + 1.</summary>
    Task<int> Ping(int value);
}

/// <summary>The skeleton grain.</summary>
public sealed class PingGrain : Grain, IPingGrain
{
    /// <inheritdoc/>
    public Task<int> Ping(int value) => Task.FromResult(value + 1);
}
