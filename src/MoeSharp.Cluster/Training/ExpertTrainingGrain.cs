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
    public Task<float[]> Forward(TrainingRows rows) => Task.FromResult(Trainer.Forward(rows));

    /// <inheritdoc/>
    public Task<float[]> Backward(int worker, long handle, float[] dys) => Task.FromResult(Trainer.Backward(worker, handle, dys));

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

    private ShardTrainer Trainer => _trainer
        ?? throw new InvalidOperationException($"Training shard {_key} on silo {host.SiloName} was not begun (its silo restarted it?); call Begin first.");
}
