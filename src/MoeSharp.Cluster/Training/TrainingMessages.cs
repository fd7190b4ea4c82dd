namespace MoeSharp.Cluster.Training;

/// <summary>
/// What an expert-training grain needs before its first step: the layer's experts it owns (global indices) and the
/// AdamW hyper-parameters of the caller's optimizer, so that its update of each expert is the one a single process makes.
/// </summary>
[GenerateSerializer, Immutable]
public sealed record ExpertTrainingSetup(
    [property: Id(0)] int[] Experts,
    [property: Id(1)] float Beta1,
    [property: Id(2)] float Beta2,
    [property: Id(3)] float Eps,
    [property: Id(4)] float WeightDecay);

/// <summary>
/// One worker's rows for one shard in one forward: Rows[i] rows for Experts[i] (global indices, ascending), concatenated
/// as Data [Σ Rows, D] in fp32. The shard keeps the activations under (Worker, Handle) for the backward; a negative
/// handle is inference and keeps nothing.
/// </summary>
[GenerateSerializer, Immutable]
public sealed record TrainingRows(
    [property: Id(0)] int Worker,
    [property: Id(1)] long Handle,
    [property: Id(2)] int[] Experts,
    [property: Id(3)] int[] Rows,
    [property: Id(4)] float[] Data);

/// <summary>A shard's experts' weights, one array per parameter of its bank in registration order (W1, W3, W2, then any biases), each [E_s, ...].</summary>
[GenerateSerializer, Immutable]
public sealed record ShardWeights([property: Id(0)] int[] Experts, [property: Id(1)] float[][] Parameters);
