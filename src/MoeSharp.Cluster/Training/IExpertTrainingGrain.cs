namespace MoeSharp.Cluster.Training;

/// <summary>
/// The training side of one shard of one MoE layer's experts, keyed like an expert-shard grain
/// (<see cref="Shards.ShardKey"/>, replica 0) and pinned by the same placement plan. It owns its experts' fp32 weights,
/// their gradients and their AdamW moments on its silo; callers send rows and upstream gradients and never see them.
/// </summary>
/// <remarks>Dimensions: R rows of a call, D model width.</remarks>
public interface IExpertTrainingGrain : IGrainWithStringKey
{
    /// <summary>(Re)starts from the silo's checkpoint: copies the experts of <paramref name="setup"/> and makes their optimizer, dropping any earlier run's state.</summary>
    Task Begin(ExpertTrainingSetup setup);

    /// <summary>The experts' outputs [R,D] for the rows, keeping the activations under (worker, handle) unless the handle is negative.</summary>
    Task<float[]> Forward(TrainingRows rows);

    /// <summary>dxs [R,D] for the gate-weighted upstream rows <paramref name="dys"/> [R,D] of forward (worker, handle); the weight gradients stay here, summed per worker.</summary>
    Task<float[]> Backward(int worker, long handle, float[] dys);

    /// <summary>Sums this step's workers' gradients in worker order and returns their squared L2 norm (for global clipping).</summary>
    Task<double> Reduce();

    /// <summary>
    /// Scales the reduced gradients by <paramref name="scale"/> (the clip), takes AdamW step number
    /// <paramref name="stepsBefore"/> + 1 at <paramref name="lr"/>, and forgets the step's gradients.
    /// </summary>
    Task Apply(long stepsBefore, float lr, float scale);

    /// <summary>The experts' current weights.</summary>
    Task<ShardWeights> Weights();
}
