namespace MoeSharp.Cluster.Placement;

/// <summary>
/// One shard: a set of one MoE layer's experts that travel together, and the silos that hold a replica of it (one
/// grain per replica). <paramref name="Layer"/> counts the model's MoE layers (the k-th of
/// <see cref="Models.MoeTransformer.MoeLayers"/>), not its blocks.
/// </summary>
/// <param name="Layer">The MoE layer, 0-based among the model's MoE layers.</param>
/// <param name="Shard">The shard's number within its layer.</param>
/// <param name="Experts">The layer's experts the shard holds.</param>
/// <param name="Silos">The silo of each replica, by silo name; replica r lives on Silos[r].</param>
[GenerateSerializer, Immutable]
public sealed record ShardPlan([property: Id(0)] int Layer, [property: Id(1)] int Shard, [property: Id(2)] int[] Experts, [property: Id(3)] string[] Silos);

/// <summary>
/// Where every expert of every MoE layer lives: each layer's experts split into shards, each shard on one or more
/// silos. The placement director pins each replica's grain to its silo, and the cluster runner sends a layer's rows
/// to them. Validate it against the model (<see cref="Validate(int, int)"/>) and the live silos
/// (<see cref="ValidateSilos"/>) before use.
/// </summary>
[GenerateSerializer, Immutable]
public sealed class PlacementPlan
{
    /// <summary>A plan of <paramref name="shards"/>, version <paramref name="version"/>.</summary>
    public PlacementPlan(IReadOnlyList<ShardPlan> shards, int version = 0)
    {
        if (version < 0) throw new ArgumentOutOfRangeException(nameof(version), $"A placement plan's version must be non-negative, got {version}.");
        Shards = [.. shards];
        Version = version;
    }

    /// <summary>Every shard of every layer.</summary>
    [Id(0)]
    public ShardPlan[] Shards { get; }

    /// <summary>
    /// The plan's version: its replicas are the grains of this version (<see cref="Shards.ShardKey.Version"/>), so a
    /// newer plan applied while generating gets new grains where it says, and the old ones retire.
    /// </summary>
    [Id(1)]
    public int Version { get; }

    /// <summary>The shards of MoE layer <paramref name="layer"/>, in shard order.</summary>
    public ShardPlan[] ShardsOf(int layer)
    {
        var list = new List<ShardPlan>();
        foreach (var s in Shards)
            if (s.Layer == layer) list.Add(s);
        list.Sort((a, b) => a.Shard.CompareTo(b.Shard));
        return [.. list];
    }

    /// <summary>The shard (layer, shard), or null when the plan has none.</summary>
    public ShardPlan? Find(int layer, int shard)
    {
        foreach (var s in Shards)
            if (s.Layer == layer && s.Shard == shard) return s;
        return null;
    }

    /// <summary>
    /// Shards split <paramref name="layerCount"/> MoE layers of <paramref name="experts"/> experts each into
    /// <paramref name="shardsPerLayer"/> contiguous ranges, shard s on silos[s mod n] (one replica each): the plain plan.
    /// </summary>
    public static PlacementPlan Even(int layerCount, int experts, int shardsPerLayer, IReadOnlyList<string> silos)
    {
        if (silos.Count == 0) throw new ArgumentException("An even plan needs at least one silo name.", nameof(silos));
        if (shardsPerLayer < 1 || shardsPerLayer > experts)
            throw new ArgumentException($"Shards per layer must be in [1, {experts}] for {experts} experts, got {shardsPerLayer}.", nameof(shardsPerLayer));
        var shards = new List<ShardPlan>();
        for (int l = 0; l < layerCount; l++)
            for (int s = 0; s < shardsPerLayer; s++)
            {
                int from = experts * s / shardsPerLayer, to = experts * (s + 1) / shardsPerLayer;
                shards.Add(new ShardPlan(l, s, [.. Enumerable.Range(from, to - from)], [silos[s % silos.Count]]));
            }
        return new PlacementPlan(shards);
    }

    /// <summary>
    /// Throws <see cref="ArgumentException"/> with one line naming the first problem: a layer outside [0, layers), a
    /// repeated (layer, shard), a shard without experts or replicas, an expert outside [0, experts) or held by two
    /// shards of a layer, an expert no shard holds, or a shard with two replicas on one silo.
    /// </summary>
    public void Validate(int layers, int experts)
    {
        var owner = new int[layers * experts]; // [L, E] shard holding each expert, −1 none
        Array.Fill(owner, -1);
        var seen = new HashSet<(int, int)>();
        foreach (var s in Shards)
        {
            string at = $"placement plan: layer {s.Layer} shard {s.Shard}";
            if (s.Layer < 0 || s.Layer >= layers) throw new ArgumentException($"{at}: the model has {layers} MoE layers (0..{layers - 1}).");
            if (!seen.Add((s.Layer, s.Shard))) throw new ArgumentException($"{at} appears twice.");
            if (s.Experts is not { Length: > 0 }) throw new ArgumentException($"{at} holds no experts.");
            if (s.Silos is not { Length: > 0 }) throw new ArgumentException($"{at} has no replica (no silo).");
            if (s.Silos.Distinct(StringComparer.Ordinal).Count() != s.Silos.Length)
                throw new ArgumentException($"{at} puts two replicas on one silo ({string.Join(", ", s.Silos)}).");
            foreach (int e in s.Experts)
            {
                if (e < 0 || e >= experts) throw new ArgumentException($"{at}: expert {e} is outside the layer's {experts} experts (0..{experts - 1}).");
                ref int o = ref owner[s.Layer * experts + e];
                if (o >= 0) throw new ArgumentException($"{at}: expert {e} is already held by shard {o}; replicate a shard instead.");
                o = s.Shard;
            }
        }
        for (int l = 0; l < layers; l++)
            for (int e = 0; e < experts; e++)
                if (owner[l * experts + e] < 0) throw new ArgumentException($"placement plan: no shard holds expert {e} of MoE layer {l}; every expert of every layer needs a shard.");
    }

    /// <summary>Throws <see cref="ArgumentException"/> naming the first replica placed on a silo that is not among <paramref name="silos"/>.</summary>
    public void ValidateSilos(IReadOnlyCollection<string> silos)
    {
        foreach (var s in Shards)
            foreach (string name in s.Silos)
                if (!silos.Contains(name))
                    throw new ArgumentException($"placement plan: layer {s.Layer} shard {s.Shard} names silo '{name}', which is not in the cluster (active silos: {string.Join(", ", silos)}).");
    }
}
