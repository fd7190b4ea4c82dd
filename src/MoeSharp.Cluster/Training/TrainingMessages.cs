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
/// One shard's rows in one worker's forward or backward: Rows[i] rows for Experts[i] (global indices, ascending),
/// concatenated as Data [Σ Rows, D] in fp32 (inputs in a forward, gate-weighted upstream gradients in a backward).
/// </summary>
[GenerateSerializer, Immutable]
public sealed record TrainingSection(
    [property: Id(0)] int Shard,
    [property: Id(1)] int[] Experts,
    [property: Id(2)] int[] Rows,
    [property: Id(3)] float[] Data);

/// <summary>A shard's experts' weights, one array per parameter of its bank in registration order (W1, W3, W2, then any biases), each [E_s, ...].</summary>
[GenerateSerializer, Immutable]
public sealed record ShardWeights([property: Id(0)] int[] Experts, [property: Id(1)] float[][] Parameters);
