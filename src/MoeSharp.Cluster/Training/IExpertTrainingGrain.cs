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

    /// <summary>
    /// One call per destination silo: runs the first section here and hands each other one to its shard's grain on this
    /// silo; the experts' outputs [R_s,D] per section, in order. The activations are kept under (worker, handle) for the
    /// backward unless the handle is negative (inference).
    /// </summary>
    Task<float[][]> Forward(int worker, long handle, TrainingSection[] sections);

    /// <summary>
    /// The backward of forward (worker, handle), one call per destination silo as <see cref="Forward"/>: dxs [R_s,D] per
    /// section of gate-weighted upstream rows; the weight gradients stay on the shards, summed per worker.
    /// </summary>
    Task<float[][]> Backward(int worker, long handle, TrainingSection[] sections);

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
