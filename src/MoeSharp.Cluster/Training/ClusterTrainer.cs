using System.Numerics.Tensors;
using MoeSharp.Autograd;
using MoeSharp.Cluster.Placement;
using MoeSharp.Cluster.Shards;
using MoeSharp.Data;
using MoeSharp.Models;
using MoeSharp.Nn;
using MoeSharp.Routing;
using MoeSharp.Tensors;
using MoeSharp.Training;

namespace MoeSharp.Cluster.Training;

/// <summary>One distributed step's outcome: the batch's mean cross-entropy, the learning rate, and the global gradient norm before clipping.</summary>
public sealed record ClusterStepResult(float Loss, float LearningRate, float GradNorm);

/// <summary>
/// Trains a <see cref="MoeTransformer"/> with its experts on the cluster and its dense part data-parallel: W workers,
/// each a replica of the model, take W equal slices (by sequence) of the batch <see cref="LmTrainer"/> would draw, and
/// back-propagate their mean loss scaled by 1/W. Their MoE layers send rows to the shards' training grains
/// (<see cref="ClusterExpertTrainer"/>), which sum the workers' expert gradients and keep the experts' AdamW state; the
/// dense gradients are summed over the workers by a reduce grain (<see cref="IGradientReduceGrain"/>) in worker order,
/// so every replica gets the same, deterministic sum, clipped by the global norm over dense and expert gradients
/// together, and each replica takes the same AdamW step.
/// The sum of the W scaled mean losses is the batch's mean loss, so a step is the single-process step up to the order
/// of the sums.
/// </summary>
/// <remarks>
/// The workers run one after another in this process; each is what one machine of a data-parallel group would run.
/// Balancing terms over the whole batch (load balance, importance, load) are not sums over sequences, so with more than
/// one worker they would be each slice's, and the trainer refuses them; so it does the sigmoid router's bias balancing.
/// </remarks>
public sealed class ClusterTrainer
{
    private readonly IReadOnlyList<MoeTransformer> _replicas;
    private readonly AdamW[] _optimizers;
    private readonly Tape[] _tapes;
    private readonly int[] _inputs, _targets; // [B·T]
    private readonly IExpertTrainingGrain[] _grains; // one per shard of the plan, in its order
    private readonly PlacementPlan _plan;
    private readonly IGradientReduceGrain _reduce;
    private readonly Parameter[] _dense; // the replicated, trainable parameters: every one but the experts

    private ClusterTrainer(IReadOnlyList<MoeTransformer> replicas, TextDataset data, LmTrainOptions options, PlacementPlan plan, IExpertTrainingGrain[] grains,
        IGradientReduceGrain reduce)
    {
        _plan = plan;
        _reduce = reduce;
        var dense = new List<Parameter>();
        foreach (var p in replicas[0].Arena.Parameters)
            if (p.Trainable) dense.Add(p);
        _dense = [.. dense];
        _replicas = replicas;
        Data = data;
        Options = options;
        _grains = grains;
        _optimizers = new AdamW[replicas.Count];
        _tapes = new Tape[replicas.Count];
        for (int w = 0; w < replicas.Count; w++)
        {
            _optimizers[w] = new AdamW(replicas[w].Arena, beta2: options.Beta2, weightDecay: options.WeightDecay);
            _tapes[w] = new Tape();
        }
        Schedule = new CosineSchedule(options.LearningRate, options.WarmupSteps, options.Steps, options.MinLearningRate);
        BatchRng = new Rng(options.Seed);
        _inputs = new int[options.Batch * replicas[0].Config.Context];
        _targets = new int[options.Batch * replicas[0].Config.Context];
    }

    /// <summary>The token streams batches are drawn from.</summary>
    public TextDataset Data { get; }

    /// <summary>The validated options; the same as a single-process <see cref="LmTrainer"/>'s.</summary>
    public LmTrainOptions Options { get; }

    /// <summary>Learning rate per step, as <see cref="LmTrainer.Schedule"/>.</summary>
    public CosineSchedule Schedule { get; }

    /// <summary>The generator that draws the batches, seeded as <see cref="LmTrainer.BatchRng"/>.</summary>
    public Rng BatchRng { get; }

    /// <summary>Steps completed.</summary>
    public int Step { get; private set; }

    /// <summary>The workers' replicas; their dense parameters stay equal, their expert weights are not used (the shards hold the trained ones).</summary>
    public IReadOnlyList<MoeTransformer> Replicas => _replicas;

    /// <summary>Calls the workers' MoE layers sent to the silos so far (forwards and backwards, one per destination silo each).</summary>
    public long ExpertCalls
    {
        get
        {
            long calls = 0;
            foreach (var replica in _replicas)
                foreach (var moe in replica.MoeLayers) calls += ((ClusterExpertTrainer)moe.Bank.Runner!).Calls;
            return calls;
        }
    }

    /// <summary>The replicas' optimizers, over the dense parameters only.</summary>
    public IReadOnlyList<AdamW> Optimizers => _optimizers;

    /// <summary>
    /// Starts training <paramref name="replicas"/> (one per worker, opened from the checkpoint the silos train from) with
    /// the experts placed by <paramref name="plan"/>: checks them, (re)starts every shard's training grain from its
    /// silo's checkpoint with the optimizer's hyper-parameters, and hands the replicas' experts to the cluster.
    /// </summary>
    public static async Task<ClusterTrainer> StartAsync(IGrainFactory grains, PlacementPlan plan, IReadOnlyList<MoeTransformer> replicas,
        TextDataset data, LmTrainOptions options)
    {
        options.Validate();
        if (replicas.Count == 0) throw new ArgumentException("Cluster training needs at least one worker replica.", nameof(replicas));
        int workers = replicas.Count;
        if (options.Batch % workers != 0)
            throw new ArgumentException($"Training options: Batch {options.Batch} does not split into {workers} equal worker slices; use a multiple of {workers}.", nameof(options));
        var first = replicas[0];
        int layers = first.MoeLayers.Count;
        if (layers == 0) throw new ArgumentException("Cluster training needs a model with MoE layers; this one has none.", nameof(replicas));
        for (int w = 0; w < workers; w++)
        {
            var r = replicas[w];
            if (r.MoeLayers.Count != layers || r.Arena.Length != first.Arena.Length || !r.Arena.Values.AsSpan().SequenceEqual(first.Arena.Values))
                throw new ArgumentException($"Worker replica {w} differs from replica 0 in its configuration or weights; every worker must open the same checkpoint.", nameof(replicas));
            for (int v = 0; v < w; v++)
                if (ReferenceEquals(replicas[v], r)) throw new ArgumentException($"Worker replicas {v} and {w} are the same model; each worker needs its own.", nameof(replicas));
        }
        plan.Validate(layers, first.MoeLayers[0].Options.Experts);
        foreach (var s in plan.Shards)
            if (s.Silos.Length != 1)
                throw new ArgumentException($"Placement plan: shard {s.Shard} of MoE layer {s.Layer} has {s.Silos.Length} replicas; training keeps one copy of each expert's weights and moments, so give each shard one silo.", nameof(plan));
        foreach (var moe in first.MoeLayers)
        {
            if (moe.Router is null)
                throw new ArgumentException($"MoE layer {moe.Name} is Soft MoE, which mixes every expert here; cluster training serves token-routed layers.", nameof(replicas));
            var o = moe.Options;
            if (workers > 1 && (o.LoadBalanceCoef > 0 || o.ImportanceCoef > 0 || o.LoadCoef > 0))
                throw new ArgumentException($"MoE layer {moe.Name}: the load-balance, importance and load terms are over the whole batch, not sums over sequences, so {workers} workers would each balance their own slice; set their weights to 0 or train with one worker.", nameof(replicas));
            if (workers > 1 && moe.Router is SigmoidBiasRouter)
                throw new ArgumentException($"MoE layer {moe.Name}: bias balancing needs the whole batch's expert counts, which {workers} workers do not share; train with one worker.", nameof(replicas));
        }
        var shardGrains = new IExpertTrainingGrain[plan.Shards.Length];
        var begins = new Task[plan.Shards.Length];
        for (int i = 0; i < plan.Shards.Length; i++)
        {
            var s = plan.Shards[i];
            shardGrains[i] = ClusterExpertTrainer.Grain(grains, plan, s);
            RequestContext.Set(ShardPlacementDirector.SiloHintKey, s.Silos[0]);
            begins[i] = shardGrains[i].Begin(new ExpertTrainingSetup([.. s.Experts], 0.9f, options.Beta2, 1e-8f, options.WeightDecay));
            RequestContext.Remove(ShardPlacementDirector.SiloHintKey);
        }
        await Task.WhenAll(begins);
        for (int w = 0; w < workers; w++)
        {
            var moes = replicas[w].MoeLayers;
            for (int l = 0; l < layers; l++)
            {
                foreach (var p in ShardTrainer.Parameters(moes[l].Bank)) p.Trainable = false;
                moes[l].Bank.Runner = new ClusterExpertTrainer(grains, plan, l, w);
            }
        }
        return new ClusterTrainer(replicas, data, options, plan, shardGrains, grains.GetGrain<IGradientReduceGrain>(Guid.NewGuid()));
    }

    /// <summary>One distributed optimisation step; the single-process <see cref="LmTrainer.TrainStep"/> up to the order of sums.</summary>
    public ClusterStepResult TrainStep()
    {
        int ctx = _replicas[0].Config.Context, workers = _replicas.Count, slice = Options.Batch / workers;
        Data.Sample(BatchRng, validation: false, Options.Batch, ctx, _inputs, _targets);
        float share = 1f / workers, loss = 0;
        RoutingStats[] stats = [];
        var inputs = new int[slice * ctx];  // [B/W·T] this worker's sequences
        var targets = new int[slice * ctx]; // [B/W·T]
        for (int w = 0; w < workers; w++)
        {
            var model = _replicas[w];
            var tape = _tapes[w];
            _inputs.AsSpan(w * slice * ctx, slice * ctx).CopyTo(inputs);
            _targets.AsSpan(w * slice * ctx, slice * ctx).CopyTo(targets);
            model.Arena.ZeroGrad();
            var (total, ce, output) = model.Loss(tape, inputs, targets, slice, training: true, step: Step);
            if (!float.IsFinite(total[0]))
            {
                tape.Reset();
                throw new NonFiniteException($"Step {Step}: worker {w}'s loss is {total[0]}.");
            }
            loss += ce[0] * share;
            if (workers == 1) stats = [.. output.Moe.Select(r => r.Stats)];
            tape.Backward(total, [share]);
            tape.Reset();
            _reduce.Contribute(Step, w, workers, Pack(model.Arena.Grads)).GetAwaiter().GetResult();
        }
        var sum = Reduce(); // [arena] worker 0's arena gradients, holding the group's dense sum
        double sumSq = 0;
        foreach (var p in _dense) sumSq += TensorPrimitives.SumOfSquares(sum.AsSpan(p.Offset, p.Length));
        var reductions = new Task<double>[_grains.Length];
        for (int i = 0; i < _grains.Length; i++) reductions[i] = _grains[i].Reduce();
        for (int i = 0; i < _grains.Length; i++) sumSq += reductions[i].GetAwaiter().GetResult();
        float norm = (float)Math.Sqrt(sumSq);
        if (!float.IsFinite(norm)) throw new NonFiniteException($"Step {Step}: the global gradient norm is {norm}.");
        // GradientClipping.ClipGlobalNorm's rule, over the dense and the expert gradients together.
        float scale = norm > Options.ClipNorm && Options.ClipNorm > 0 ? Options.ClipNorm / (norm + 1e-6f) : 1;
        if (scale != 1)
            foreach (var replica in _replicas) TensorPrimitives.Multiply(replica.Arena.Grads, scale, replica.Arena.Grads);
        float lr = Schedule.At(Step);
        var applies = new Task[_grains.Length];
        for (int i = 0; i < _grains.Length; i++) applies[i] = _grains[i].Apply(_optimizers[0].Steps, lr, scale);
        foreach (var opt in _optimizers) opt.Step(lr);
        Task.WhenAll(applies).GetAwaiter().GetResult();
        // Bias balancing after the step, as LmTrainer; StartAsync allows a bias router with one worker only.
        for (int l = 0; l < stats.Length; l++) _replicas[0].MoeLayers[l].UpdateBias(stats[l]);
        Step++;
        return new ClusterStepResult(loss, lr, norm);
    }

    /// <summary>
    /// Every worker fetches the group's sum of dense gradients from the reduce grain into its replica (the sum is the
    /// grain's, in worker order, so the replicas get the same bits); returns worker 0's arena gradients.
    /// </summary>
    private float[] Reduce()
    {
        var fetches = new Task<float[]>[_replicas.Count];
        for (int w = 0; w < fetches.Length; w++) fetches[w] = _reduce.Sum(Step);
        for (int w = 0; w < fetches.Length; w++)
        {
            var packed = fetches[w].GetAwaiter().GetResult();
            var grads = _replicas[w].Arena.Grads;
            int at = 0;
            foreach (var p in _dense)
            {
                packed.AsSpan(at, p.Length).CopyTo(grads.AsSpan(p.Offset, p.Length));
                at += p.Length;
            }
        }
        return _replicas[0].Arena.Grads;
    }

    /// <summary>[G] the dense (trainable) gradients of an arena laid out as the replicas', packed in parameter order.</summary>
    private float[] Pack(float[] grads)
    {
        int total = 0;
        foreach (var p in _dense) total += p.Length;
        var packed = new float[total];
        int at = 0;
        foreach (var p in _dense)
        {
            grads.AsSpan(p.Offset, p.Length).CopyTo(packed.AsSpan(at));
            at += p.Length;
        }
        return packed;
    }

    /// <summary>Copies the shards' trained experts into <paramref name="model"/>'s banks (a replica, or any model of the same shape), for saving or comparing.</summary>
    public async Task GatherExpertsAsync(MoeTransformer model)
    {
        var weights = new Task<ShardWeights>[_grains.Length];
        for (int i = 0; i < _grains.Length; i++) weights[i] = _grains[i].Weights();
        await Task.WhenAll(weights);
        for (int i = 0; i < _grains.Length; i++)
        {
            var bank = model.MoeLayers[_plan.Shards[i].Layer].Bank;
            var to = ShardTrainer.Parameters(bank);
            var got = weights[i].Result;
            for (int p = 0; p < to.Length; p++)
            {
                int each = to[p].Length / bank.Experts; // elements of one expert's slice
                for (int k = 0; k < got.Experts.Length; k++)
                    got.Parameters[p].AsSpan(k * each, each).CopyTo(to[p].Value.Span.Slice(got.Experts[k] * each, each));
            }
        }
    }
}
