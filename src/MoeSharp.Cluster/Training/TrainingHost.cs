using System.Collections.Concurrent;
using Microsoft.Extensions.DependencyInjection;
using MoeSharp.Cluster.Shards;
using MoeSharp.IO;
using MoeSharp.Models;

namespace MoeSharp.Cluster.Training;

/// <summary>What a silo's expert-training grains start from: the checkpoint, opened in fp32 (training needs arena weights).</summary>
public sealed record TrainingHostOptions
{
    /// <summary>The model folder every silo and every worker opens: the same initial weights everywhere.</summary>
    public required string Checkpoint { get; init; }
}

/// <summary>
/// The silo-wide part of expert training, one per silo: the checkpoint opened once in fp32 (on the first grain's
/// activation) to copy each shard's experts from, and the shard trainers living on this silo, so that what a silo holds
/// can be inspected.
/// </summary>
public sealed class TrainingHost(TrainingHostOptions options, ILocalSiloDetails silo) : IDisposable
{
    private readonly Lazy<MoeTransformer> _model = new(() => ModelStore.Open(options.Checkpoint, new ModelLoadOptions()), LazyThreadSafetyMode.ExecutionAndPublication);
    private readonly ConcurrentDictionary<ShardKey, ShardTrainer> _trainers = new();

    /// <summary>The options the silo was started with.</summary>
    public TrainingHostOptions Options { get; } = options;

    /// <summary>This silo's name.</summary>
    public string SiloName { get; } = silo.Name;

    /// <summary>The checkpoint in fp32, opened on first use.</summary>
    public MoeTransformer Model => _model.Value;

    /// <summary>The shard trainers (weights, gradients, AdamW moments) that live on this silo, by shard.</summary>
    public IReadOnlyDictionary<ShardKey, ShardTrainer> Trainers => _trainers;

    internal void Register(ShardKey key, ShardTrainer trainer) => _trainers[key] = trainer;

    internal void Unregister(ShardKey key) => _trainers.TryRemove(key, out _);

    /// <summary>Closes the checkpoint if it was opened.</summary>
    public void Dispose()
    {
        if (_model.IsValueCreated) _model.Value.Dispose();
    }
}

/// <summary>Turns a silo into a host of expert-training shards.</summary>
public static class TrainingHosting
{
    /// <summary>
    /// Registers the silo's <see cref="TrainingHost"/> over <paramref name="options"/>. The grains are placed by the
    /// expert shards' director, so the silo also needs <see cref="ShardHosting.AddExpertShards"/> with the same plan.
    /// </summary>
    public static ISiloBuilder AddExpertTraining(this ISiloBuilder silo, TrainingHostOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        silo.Services.AddSingleton(options);
        silo.Services.AddSingleton<TrainingHost>();
        return silo;
    }
}
