using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using MoeSharp.Cluster.Placement;
using MoeSharp.IO;
using MoeSharp.Layers;
using MoeSharp.Models;

namespace MoeSharp.Cluster.Shards;

/// <summary>What a silo's expert shards serve: the checkpoint, how to load it, and the placement plan.</summary>
public sealed record ShardHostOptions
{
    /// <summary>The model folder or GGUF file every silo opens (the same checkpoint as the caller's).</summary>
    public required string Checkpoint { get; init; }

    /// <summary>
    /// How the checkpoint is loaded; in place (<see cref="ModelLoadOptions.InPlace"/>) a silo maps the file and touches
    /// only the bytes of the experts it runs. Load it as the caller does for results equal to the caller's own.
    /// </summary>
    public ModelLoadOptions Load { get; init; } = new();

    /// <summary>Where the shards live; the placement director pins each replica to its silo.</summary>
    public required PlacementPlan Plan { get; init; }
}

/// <summary>How a shard misbehaves on purpose, for tests of the caller's fault handling.</summary>
public enum ShardFaultKind
{
    /// <summary>Answers after <see cref="ShardFault.Delay"/>.</summary>
    Late,

    /// <summary>Answers one row short.</summary>
    WrongRowCount,

    /// <summary>Answers with a NaN in its first row.</summary>
    NotFinite,
}

/// <summary>A fault injected into the shards of MoE layer <paramref name="Layer"/> on one silo.</summary>
public sealed record ShardFault(int Layer, ShardFaultKind Kind, TimeSpan Delay = default);

/// <summary>
/// The silo-wide part of the expert shards, one per silo process: the checkpoint opened once (lazily, on the first
/// activation) and shared by every shard grain on the silo, the placement plan, and counters of what arrived.
/// </summary>
public sealed class ShardHost : IDisposable
{
    private readonly Lazy<MoeTransformer> _model;
    private readonly ConcurrentDictionary<(Guid Caller, int Layer, long Step), int> _calls = new();
    private readonly ConcurrentDictionary<ShardKey, int> _activations = new();
    private readonly ConcurrentDictionary<ShardKey, long> _served = new();
    private volatile PlacementPlan _plan;
    private volatile ShardFault? _fault;

    /// <summary>The host of silo <paramref name="silo"/> over <paramref name="options"/>.</summary>
    public ShardHost(ShardHostOptions options, ILocalSiloDetails silo)
    {
        Options = options;
        SiloName = silo.Name;
        _plan = options.Plan;
        _model = new Lazy<MoeTransformer>(() => ModelStore.Open(options.Checkpoint, options.Load), LazyThreadSafetyMode.ExecutionAndPublication);
    }

    /// <summary>The options the silo was started with.</summary>
    public ShardHostOptions Options { get; }

    /// <summary>This silo's name, as placement plans name it.</summary>
    public string SiloName { get; }

    /// <summary>The model over the checkpoint, opened on first use.</summary>
    public MoeTransformer Model => _model.Value;

    /// <summary>The plan the placement director follows; a new plan applies to activations made after it is set.</summary>
    public PlacementPlan Plan
    {
        get => _plan;
        set => _plan = value ?? throw new ArgumentNullException(nameof(value));
    }

    /// <summary>A fault the silo's shards inject (tests); null for none.</summary>
    public ShardFault? Fault
    {
        get => _fault;
        set => _fault = value;
    }

    /// <summary>Calls from callers (not hand-offs between this silo's grains) per (caller, MoE layer, caller's step).</summary>
    public IReadOnlyDictionary<(Guid Caller, int Layer, long Step), int> CallsPerStep => _calls;

    /// <summary>Activations of each shard replica on this silo since it started.</summary>
    public IReadOnlyDictionary<ShardKey, int> Activations => _activations;

    /// <summary>Sections each shard replica on this silo computed (its own rows, whether sent to it or handed on by a neighbour).</summary>
    public IReadOnlyDictionary<ShardKey, long> Served => _served;

    internal void CountServed(ShardKey key) => _served.AddOrUpdate(key, 1, (_, n) => n + 1);

    internal void CountCall(Guid caller, int layer, long step) => _calls.AddOrUpdate((caller, layer, step), 1, (_, n) => n + 1);

    internal void CountActivation(ShardKey key) => _activations.AddOrUpdate(key, 1, (_, n) => n + 1);

    /// <summary>
    /// The first 8 bytes of the SHA-256 of <paramref name="layer"/>'s router weights (fp32 in every load), in hex: the
    /// same on every silo and caller that loaded the same checkpoint.
    /// </summary>
    public static string RouterDigest(MoeLayer layer)
    {
        var gate = layer.Arena[layer.Name + ".gate.weight"].Value.Span; // [E,D]
        return Convert.ToHexString(SHA256.HashData(MemoryMarshal.AsBytes(gate)).AsSpan(0, 8));
    }

    /// <summary>Closes the checkpoint if it was opened.</summary>
    public void Dispose()
    {
        if (_model.IsValueCreated) _model.Value.Dispose();
    }
}
