using MoeSharp.Cluster.Placement;
using MoeSharp.Cluster.Shards;

namespace MoeSharp.Cluster.Training;

/// <summary>
/// The expert-training grain: a <see cref="ShardTrainer"/> on the silo the placement plan names. Not reentrant, so a
/// step's calls from several workers take turns over the one set of weights, gradients and moments.
/// </summary>
[ShardPlacement]
public sealed class ExpertTrainingGrain(TrainingHost host) : Grain, IExpertTrainingGrain
{
    private ShardKey _key;
    private ShardTrainer? _trainer;

    /// <inheritdoc/>
    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        _key = ShardKey.Parse(this.GetPrimaryKeyString());
        return Task.CompletedTask;
    }

    /// <inheritdoc/>
    public override Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken)
    {
        host.Unregister(_key);
        return Task.CompletedTask;
    }

    /// <inheritdoc/>
    public Task Begin(ExpertTrainingSetup setup)
    {
        var layers = host.Model.MoeLayers;
        if (_key.Layer >= layers.Count)
            throw new ArgumentException($"Training shard {_key} on silo {host.SiloName}: {host.Options.Checkpoint} has {layers.Count} MoE layers; there is no layer {_key.Layer}.");
        _trainer = new ShardTrainer(layers[_key.Layer].Bank, setup);
        host.Register(_key, _trainer);
        return Task.CompletedTask;
    }

    /// <inheritdoc/>
    public async Task<float[][]> Forward(int worker, long handle, TrainingSection[] sections)
    {
        Own(sections);
        var handOffs = new Task<float[][]>[sections.Length];
        for (int i = 1; i < sections.Length; i++)
        {
            RequestContext.Set(ShardPlacementDirector.SiloHintKey, host.SiloName);
            handOffs[i] = Neighbour(sections[i]).Forward(worker, handle, [sections[i]]);
            RequestContext.Remove(ShardPlacementDirector.SiloHintKey);
        }
        var results = new float[sections.Length][];
        results[0] = Trainer.Forward(worker, handle, sections[0]);
        for (int i = 1; i < sections.Length; i++) results[i] = (await handOffs[i])[0];
        return results;
    }

    /// <inheritdoc/>
    public async Task<float[][]> Backward(int worker, long handle, TrainingSection[] sections)
    {
        Own(sections);
        var handOffs = new Task<float[][]>[sections.Length];
        for (int i = 1; i < sections.Length; i++)
        {
            RequestContext.Set(ShardPlacementDirector.SiloHintKey, host.SiloName);
            handOffs[i] = Neighbour(sections[i]).Backward(worker, handle, [sections[i]]);
            RequestContext.Remove(ShardPlacementDirector.SiloHintKey);
        }
        var results = new float[sections.Length][];
        results[0] = Trainer.Backward(worker, handle, sections[0]);
        for (int i = 1; i < sections.Length; i++) results[i] = (await handOffs[i])[0];
        return results;
    }

    /// <inheritdoc/>
    public Task<double> Reduce() => Task.FromResult(Trainer.Reduce());

    /// <inheritdoc/>
    public Task Apply(long stepsBefore, float lr, float scale)
    {
        Trainer.Apply(stepsBefore, lr, scale);
        return Task.CompletedTask;
    }

    /// <inheritdoc/>
    public Task<ShardWeights> Weights() => Task.FromResult(Trainer.Weights());

    private void Own(TrainingSection[] sections)
    {
        if (sections.Length == 0 || sections[0].Shard != _key.Shard)
            throw new ArgumentException($"Training shard {_key} on silo {host.SiloName}: a call's first section must be this shard's own.", nameof(sections));
    }

    /// <summary>
    /// The grain of another shard of this layer, which the plan puts on this silo too (named in the request context
    /// for the director). The hand-offs go only from a silo's first shard with rows to later ones, so two turns never
    /// wait on each other.
    /// </summary>
    private IExpertTrainingGrain Neighbour(TrainingSection section) =>
        GrainFactory.GetGrain<IExpertTrainingGrain>(new ShardKey(_key.Layer, section.Shard, 0, _key.Version).ToString());

    private ShardTrainer Trainer => _trainer
        ?? throw new InvalidOperationException($"Training shard {_key} on silo {host.SiloName} was not begun (its silo restarted it?); call Begin first.");
}
