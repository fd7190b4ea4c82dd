using MoeSharp.Cluster.Placement;
using MoeSharp.Cluster.Shards;
using MoeSharp.Cluster.Training;
using MoeSharp.Data;
using MoeSharp.IO;
using MoeSharp.Models;
using MoeSharp.Tensors;
using MoeSharp.Training;
using Orleans.Configuration;
using Orleans.TestingHost;

namespace MoeSharp.Cluster.Tests.Training;

/// <summary>
/// <see cref="TinyCluster"/>'s model on 3 silos that serve and train its experts, each layer's shards {0,1}, {2,3},
/// {4,5} on silos 0, 1 and 2; one cluster shared by the tests of the class, which run one after another.
/// </summary>
public sealed class TrainingClusterFixture : IAsyncLifetime
{
    public string Folder { get; } = Directory.CreateTempSubdirectory("moesharp-clustertrain-").FullName;
    public string Checkpoint { get; private set; } = "";
    public InProcessTestCluster Cluster { get; private set; } = null!;
    public PlacementPlan Plan { get; } = PlacementPlan.Even(TinyCluster.Layers, TinyCluster.Experts, 3, TinyCluster.Silos);

    /// <summary>5,000 random tokens of the model's vocabulary (96), seed 11.</summary>
    public TextDataset Data { get; } = new(RandomTokens(5000, 96, 11));

    public TrainingHost Host(int silo) =>
        (TrainingHost)Cluster.Silos.Single(s => s.Name == TinyCluster.Silos[silo]).ServiceProvider.GetService(typeof(TrainingHost))!;

    public async ValueTask InitializeAsync()
    {
        Checkpoint = TinyCluster.WriteModel(Path.Combine(Folder, "model"));
        var builder = new InProcessTestClusterBuilder(3);
        builder.ConfigureSilo((_, silo) =>
        {
            silo.AddExpertShards(new ShardHostOptions { Checkpoint = Checkpoint, Load = TinyCluster.InPlace, Plan = Plan });
            silo.AddExpertTraining(new TrainingHostOptions { Checkpoint = Checkpoint });
            silo.Configure<ClusterMembershipOptions>(o => o.ProbeTimeout = TimeSpan.FromSeconds(2));
        });
        Cluster = builder.Build();
        await Cluster.DeployAsync();
    }

    public async ValueTask DisposeAsync()
    {
        await Cluster.StopAllSilosAsync();
        await Cluster.DisposeAsync();
        Directory.Delete(Folder, recursive: true);
    }

    /// <summary>The checkpoint opened in fp32, as a worker or the single-process reference opens it.</summary>
    public MoeTransformer Open() => ModelStore.Open(Checkpoint, new ModelLoadOptions());

    private static int[] RandomTokens(int n, int vocab, ulong seed)
    {
        var rng = new Rng(seed);
        var tokens = new int[n];
        for (int i = 0; i < n; i++) tokens[i] = (int)(rng.NextFloat() * vocab) % vocab;
        return tokens;
    }
}

/// <summary>
/// Training with the experts on the shards and the dense part data-parallel, against <see cref="LmTrainer"/> on the
/// same checkpoint and batches.
/// <para>
/// One worker changes no sum: each shard gets all of its experts' rows in one call and runs the single-process kernels
/// on them (ys and dxs rows, and dW over the same rows, are the fused op's bit for bit), the combine and its adjoint run
/// in pair order here, and without clipping AdamW's update is elementwise; so the parameters are equal bitwise.
/// </para>
/// <para>
/// Three workers change the order of sums: each dense and expert gradient is a sum of three slices' sums (each slice's
/// loss scaled by 1/3, itself rounded), and the clip's norm is summed per shard. A gradient element then moves by a few
/// fp32 ulps of its terms, so AdamW's first moments after one step (0.1·the clipped gradient) are held to 1e-5 of
/// each tensor's largest magnitude (measured 9.1e-7). The parameters are held to 1e-4 of each tensor's largest
/// magnitude (measured 2.1e-5 after one and after three steps) because AdamW divides by |g| + ε: its update
/// lr·g/(|g| + ε) moves by lr·δg·ε/(|g| + ε)², at most lr·δg/(4ε) where |g| = ε = 1e-8. The worst elements are
/// exactly such: an expert weight with g = 8.3e-9 whose gradient moved by 2.4e-11 (4e-8 of the tensor's largest
/// gradient) moved by 1.46e-6 = 2e-5·max|p|. 1e-4·max|p| (about 8e-6 here) allows, at that worst |g|, a gradient
/// difference of 4ε·8e-6/lr = 1.6e-10, 3e-7 of the largest gradient: rounding, not a lost or doubled contribution.
/// Dense parameters alone stay within 1e-6. Moving one expert weight on one silo by 1e-3 of its tensor's largest
/// magnitude fails both checks.
/// </para>
/// </summary>
public sealed class ClusterTrainingTests(TrainingClusterFixture fx) : IClassFixture<TrainingClusterFixture>
{
    /// <summary>Gradients (AdamW's first moments after one step, 0.1·the clipped gradient) per tensor, in units of its largest magnitude.</summary>
    private const float GradientTolerance = 1e-5f;

    /// <summary>Parameters per tensor, in units of its largest magnitude; wider than the gradients' for AdamW's ε (see the class).</summary>
    private const float ParameterTolerance = 1e-4f;

    private static readonly LmTrainOptions Options = new() { Steps = 10, Batch = 6, WarmupSteps = 0, Seed = 21 };

    [Fact]
    public async Task OneWorkerUnclippedIsTheLocalStepBitwise()
    {
        var options = Options with { ClipNorm = 0 };
        var (local, losses) = Local(options, 3);
        var replica = fx.Open();
        var trainer = await ClusterTrainer.StartAsync(fx.Cluster.Client, fx.Plan, [replica], fx.Data, options);
        for (int s = 0; s < 3; s++) Assert.Equal(losses[s], trainer.TrainStep().Loss);
        await trainer.GatherExpertsAsync(replica);
        Numerics.BitwiseEqual(local.Arena.Values, replica.Arena.Values, "parameters after 3 steps");
    }

    [Fact]
    public async Task ThreeWorkersEqualTheLocalStepsWithinTolerance()
    {
        var (local1, losses, localTrainer) = LocalTrainer(Options, 1);
        var (local3, _) = Local(Options, 3);
        var replicas = new[] { fx.Open(), fx.Open(), fx.Open() };
        var trainer = await ClusterTrainer.StartAsync(fx.Cluster.Client, fx.Plan, replicas, fx.Data, Options);
        float loss = trainer.TrainStep().Loss;
        float moments = WorstRelative(local1.Arena, localTrainer.Optimizer.FirstMoment, ClusterFirstMoments(local1, trainer));
        Assert.True(Math.Abs(loss - losses[0]) <= 1e-5f * losses[0], $"step 0 loss {loss} vs {losses[0]}");
        var gathered = fx.Open();
        Array.Copy(replicas[0].Arena.Values, gathered.Arena.Values, gathered.Arena.Length);
        await trainer.GatherExpertsAsync(gathered);
        float after1 = WorstRelative(local1.Arena, local1.Arena.Values, gathered.Arena.Values);
        trainer.TrainStep();
        trainer.TrainStep();
        Array.Copy(replicas[0].Arena.Values, gathered.Arena.Values, gathered.Arena.Length);
        await trainer.GatherExpertsAsync(gathered);
        float after3 = WorstRelative(local3.Arena, local3.Arena.Values, gathered.Arena.Values);
        TestContext.Current.TestOutputHelper?.WriteLine($"worst |Δm|/max|m| after 1 step {moments:G3}; worst |Δp|/max|p| after 1 step {after1:G3}, after 3 steps {after3:G3}");
        Assert.True(moments <= GradientTolerance, $"after 1 step the worst first moment (the clipped gradient) differs by {moments:G3} of its tensor's largest magnitude; allowed {GradientTolerance}.");
        Assert.True(after1 <= ParameterTolerance, $"after 1 step the worst parameter differs by {after1:G3} of its tensor's largest magnitude; allowed {ParameterTolerance}.");
        Assert.True(after3 <= ParameterTolerance, $"after 3 steps the worst parameter differs by {after3:G3} of its tensor's largest magnitude; allowed {ParameterTolerance}.");
        // Every replica took the same update from the same summed gradients.
        for (int w = 1; w < 3; w++) Numerics.BitwiseEqual(replicas[0].Arena.Values, replicas[w].Arena.Values, $"replica {w}");
    }

    [Fact]
    public async Task ShardsSharingASiloGetOneCallAndTheSameStep()
    {
        var (local1, _, localTrainer) = LocalTrainer(Options, 1);
        // Version 1, so its shards are new grains where this plan says: layer 0's first two shards share silo 0.
        var plan = new PlacementPlan(
        [
            new ShardPlan(0, 0, [0, 1], [TinyCluster.Silos[0]]), new ShardPlan(0, 1, [2, 3], [TinyCluster.Silos[0]]), new ShardPlan(0, 2, [4, 5], [TinyCluster.Silos[2]]),
            new ShardPlan(1, 0, [0, 1], [TinyCluster.Silos[0]]), new ShardPlan(1, 1, [2, 3], [TinyCluster.Silos[1]]), new ShardPlan(1, 2, [4, 5], [TinyCluster.Silos[2]]),
        ], version: 1);
        var replicas = new[] { fx.Open(), fx.Open(), fx.Open() };
        var trainer = await ClusterTrainer.StartAsync(fx.Cluster.Client, plan, replicas, fx.Data, Options);
        trainer.TrainStep();
        // Per worker: layer 0 reaches 2 silos and layer 1 reaches 3, once forward and once backward (one call per shard would be 12).
        Assert.Equal(3 * 2 * (2 + 3), trainer.ExpertCalls);
        Assert.Contains(new ShardKey(0, 1, 0, 1), fx.Host(0).Trainers.Keys);
        var m = localTrainer.Optimizer.FirstMoment;
        var cluster = (float[])trainer.Optimizers[0].FirstMoment.Clone();
        for (int silo = 0; silo < 3; silo++)
            foreach (var (key, shard) in fx.Host(silo).Trainers)
                if (key.Version == 1) CopyMoments(local1, key, shard, cluster);
        float moments = WorstRelative(local1.Arena, m, cluster);
        Assert.True(moments <= GradientTolerance, $"the worst first moment differs by {moments:G3} of its tensor's largest magnitude; allowed {GradientTolerance}.");
    }

    [Fact]
    public async Task PerturbedShardFailsTheComparison()
    {
        var (local1, _, localTrainer) = LocalTrainer(Options, 1);
        var replicas = new[] { fx.Open(), fx.Open(), fx.Open() };
        var trainer = await ClusterTrainer.StartAsync(fx.Cluster.Client, fx.Plan, replicas, fx.Data, Options);
        // One weight of one expert on silo 1 moved by 1e-3 of its tensor's largest magnitude before the step.
        var w2 = fx.Host(1).Trainers[new ShardKey(0, 1, 0, fx.Plan.Version)].Bank.W2.Value.Span;
        w2[0] += 1e-3f * System.Numerics.Tensors.TensorPrimitives.MaxMagnitude(w2);
        trainer.TrainStep();
        float moments = WorstRelative(local1.Arena, localTrainer.Optimizer.FirstMoment, ClusterFirstMoments(local1, trainer));
        var gathered = fx.Open();
        Array.Copy(replicas[0].Arena.Values, gathered.Arena.Values, gathered.Arena.Length);
        await trainer.GatherExpertsAsync(gathered);
        float parameters = WorstRelative(local1.Arena, local1.Arena.Values, gathered.Arena.Values);
        Assert.True(moments > GradientTolerance, $"the perturbation left the gradients within {GradientTolerance} ({moments:G3}): that check cannot fail.");
        Assert.True(parameters > ParameterTolerance, $"the perturbation left the parameters within {ParameterTolerance} ({parameters:G3}): that check cannot fail.");
    }

    [Fact]
    public async Task ExpertStateLivesOnlyOnItsShardAndGradientsResetBetweenSteps()
    {
        var replicas = new[] { fx.Open(), fx.Open(), fx.Open() };
        var trainer = await ClusterTrainer.StartAsync(fx.Cluster.Client, fx.Plan, replicas, fx.Data, Options);
        trainer.TrainStep();
        trainer.TrainStep();
        for (int silo = 0; silo < 3; silo++)
        {
            var trainers = fx.Host(silo).Trainers.Where(t => t.Key.Version == fx.Plan.Version).ToDictionary();
            var expected = fx.Plan.Shards.Where(s => s.Silos[0] == TinyCluster.Silos[silo]).Select(s => new ShardKey(s.Layer, s.Shard, 0, fx.Plan.Version).ToString()).Order();
            Assert.Equal(expected, trainers.Keys.Select(k => k.ToString()).Order());
            foreach (var (key, shard) in trainers)
            {
                Assert.Equal(2, shard.Optimizer.Steps);
                Assert.Equal(fx.Plan.Find(key.Layer, key.Shard)!.Experts.Order(), shard.Experts);
                Assert.True(shard.Optimizer.SecondMoment.Any(v => v > 0), $"shard {key} has no second moments after 2 steps");
                Assert.Equal(0, shard.Pending);
                // After a step nothing of it is left to sum into the next.
                Assert.Equal(0.0, shard.Reduce());
            }
        }
        // The replicas' optimizers hold no moments for the experts: they are trained only where they live.
        foreach (var (replica, optimizer) in replicas.Zip(trainer.Optimizers))
            foreach (var moe in replica.MoeLayers)
                foreach (var p in new[] { moe.Bank.W1, moe.Bank.W3!, moe.Bank.W2 })
                {
                    Assert.False(p.Trainable);
                    Assert.True(optimizer.FirstMoment.AsSpan(p.Offset, p.Length).IndexOfAnyExcept(0f) < 0, $"{p.Name} has moments on a worker");
                }
    }

    [Fact]
    public async Task BadSetupsAreOneClearError()
    {
        var two = new[] { fx.Open(), fx.Open() };
        var odd = await Assert.ThrowsAsync<ArgumentException>(() => ClusterTrainer.StartAsync(fx.Cluster.Client, fx.Plan, two, fx.Data, Options with { Batch = 5 }));
        Assert.Contains("Batch 5 does not split into 2 equal worker slices", odd.Message);
        var replicated = new PlacementPlan([.. fx.Plan.Shards.Select(s => s.Layer == 1 && s.Shard == 2 ? s with { Silos = [TinyCluster.Silos[2], TinyCluster.Silos[0]] } : s)]);
        var twice = await Assert.ThrowsAsync<ArgumentException>(() => ClusterTrainer.StartAsync(fx.Cluster.Client, replicated, two, fx.Data, Options));
        Assert.Contains("shard 2 of MoE layer 1 has 2 replicas", twice.Message);
        var changed = fx.Open();
        changed.Arena.Values[0] += 1;
        var mismatch = await Assert.ThrowsAsync<ArgumentException>(() => ClusterTrainer.StartAsync(fx.Cluster.Client, fx.Plan, [fx.Open(), changed], fx.Data, Options));
        Assert.Contains("Worker replica 1 differs from replica 0", mismatch.Message);
    }

    [Fact]
    public async Task ReduceGrainSumsInWorkerOrderWhateverTheArrivalOrder()
    {
        var reduce = fx.Cluster.Client.GetGrain<IGradientReduceGrain>(Guid.NewGuid());
        // In worker order (1e8 + −1e8) + 1 = 1; in arrival order (1 + 1e8) + −1e8 = 0, as 1e8 + 1 rounds to 1e8 in fp32.
        await reduce.Contribute(0, 2, 3, [1f]);
        await reduce.Contribute(0, 0, 3, [1e8f]);
        var missing = await Assert.ThrowsAsync<InvalidOperationException>(() => reduce.Sum(0));
        Assert.Contains("worker 1 has not contributed to step 0", missing.Message);
        await reduce.Contribute(0, 1, 3, [-1e8f]);
        var sum = await reduce.Sum(0);
        Assert.Equal(new[] { 1f }, sum);
        var twice = await Assert.ThrowsAsync<ArgumentException>(() => reduce.Contribute(0, 1, 3, [0f]));
        Assert.Contains("worker 1 contributed to step 0 twice", twice.Message);
    }

    /// <summary>The single-process trainer after <paramref name="steps"/> steps, and its losses.</summary>
    private (MoeTransformer Model, float[] Losses) Local(LmTrainOptions options, int steps)
    {
        var (model, losses, _) = LocalTrainer(options, steps);
        return (model, losses);
    }

    private (MoeTransformer Model, float[] Losses, LmTrainer Trainer) LocalTrainer(LmTrainOptions options, int steps)
    {
        var model = fx.Open();
        var trainer = new LmTrainer(model, fx.Data, options);
        var losses = new float[steps];
        for (int s = 0; s < steps; s++) losses[s] = trainer.TrainStep().Loss;
        return (model, losses, trainer);
    }

    /// <summary>
    /// The first moments of every parameter as the cluster holds them, laid out as <paramref name="like"/>'s arena: the
    /// dense ones from worker 0's optimizer, each expert's from the shard trainer on its silo.
    /// </summary>
    private float[] ClusterFirstMoments(MoeTransformer like, ClusterTrainer trainer)
    {
        var m = (float[])trainer.Optimizers[0].FirstMoment.Clone();
        for (int silo = 0; silo < 3; silo++)
            foreach (var (key, shard) in fx.Host(silo).Trainers)
                if (key.Version == fx.Plan.Version) CopyMoments(like, key, shard, m);
        return m;
    }

    /// <summary>Writes <paramref name="shard"/>'s first moments into <paramref name="m"/>, laid out as <paramref name="like"/>'s arena.</summary>
    private static void CopyMoments(MoeTransformer like, ShardKey key, ShardTrainer shard, float[] m)
    {
        var bank = like.MoeLayers[key.Layer].Bank;
        var to = ShardTrainer.Parameters(bank);
        var from = ShardTrainer.Parameters(shard.Bank);
        for (int p = 0; p < to.Length; p++)
        {
            int each = to[p].Length / bank.Experts; // elements of one expert's slice
            for (int k = 0; k < shard.Experts.Length; k++)
                shard.Optimizer.FirstMoment.AsSpan(from[p].Offset + k * each, each).CopyTo(m.AsSpan(to[p].Offset + shard.Experts[k] * each, each));
        }
    }

    /// <summary>max over parameter tensors of max|Δ| / max|expected|, for two arrays laid out as <paramref name="arena"/>: elementwise, in units of each tensor's scale.</summary>
    private static float WorstRelative(Nn.ParameterArena arena, float[] expected, float[] actual)
    {
        float worst = 0;
        foreach (var p in arena.Parameters)
        {
            var e = expected.AsSpan(p.Offset, p.Length);
            var a = actual.AsSpan(p.Offset, p.Length);
            float scale = 0, diff = 0;
            for (int i = 0; i < e.Length; i++)
            {
                scale = Math.Max(scale, Math.Abs(e[i]));
                diff = Math.Max(diff, Math.Abs(a[i] - e[i]));
            }
            float rel = scale == 0 ? diff : diff / scale;
            worst = Math.Max(worst, rel);
        }
        return worst;
    }

}
