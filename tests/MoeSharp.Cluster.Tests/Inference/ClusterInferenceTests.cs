using MoeSharp.Cluster.Inference;
using MoeSharp.Cluster.Placement;
using MoeSharp.Cluster.Shards;
using MoeSharp.Experts;
using MoeSharp.IO;
using MoeSharp.Models;
using Orleans.TestingHost;

namespace MoeSharp.Cluster.Tests.Inference;

/// <summary>One 3-silo cluster serving <see cref="TinyCluster"/>'s model in place, shared by the tests of a class.</summary>
public sealed class ClusterFixture : IAsyncLifetime
{
    public string Folder { get; } = Directory.CreateTempSubdirectory("moesharp-cluster-").FullName;
    public string Checkpoint { get; private set; } = "";
    public InProcessTestCluster Cluster { get; private set; } = null!;
    public PlacementPlan Plan { get; } = TinyCluster.Plan();

    public ShardHost Host(int silo) => TinyCluster.Host(Cluster.Silos.Single(s => s.Name == TinyCluster.Silos[silo]));

    public async ValueTask InitializeAsync()
    {
        Checkpoint = TinyCluster.WriteModel(Path.Combine(Folder, "model"));
        Cluster = await TinyCluster.Deploy(Checkpoint, Plan);
    }

    public async ValueTask DisposeAsync()
    {
        await Cluster.StopAllSilosAsync();
        await Cluster.DisposeAsync();
        Directory.Delete(Folder, recursive: true);
    }
}

/// <summary>
/// Generation with the experts on the cluster against the same model run in one process: fp32 transport is bitwise
/// equal (same kernels on the same mapped bytes, rows per expert unchanged, the combine in the same order); bf16 is
/// held to a stated tolerance; faults skip exactly the lost shard's experts; bad plans and checkpoints are one line.
/// </summary>
public sealed class ClusterInferenceTests(ClusterFixture fx) : IClassFixture<ClusterFixture>
{
    private static readonly int[] Prompt = [3, 14, 15, 92, 65, 35, 89, 79];

    private (long Calls, long Sections, Dictionary<(int, ShardKey), long> Served) ServerCounts()
    {
        long calls = 0, sections = 0;
        var served = new Dictionary<(int, ShardKey), long>();
        for (int i = 0; i < 3; i++)
        {
            var host = fx.Host(i);
            foreach (var (_, n) in host.CallsPerStep)
            {
                Assert.Equal(1, n); // one call per (layer, step) reached this silo: never one per shard or per token
                calls += n;
            }
            foreach (var (key, n) in host.Served)
            {
                sections += n;
                served[(i, key)] = n;
            }
        }
        return (calls, sections, served);
    }

    /// <summary>
    /// Greedy decoding, prompt of 8 then 6 steps, fp32 on the wire: every step's logits bitwise equal to the single
    /// process's (tolerance 0), and the same greedy tokens from <see cref="Generator"/>. Each silo gets at most one call
    /// per layer and step (its counters), the first silo's two shard replicas of layer 1 come in one call (more sections
    /// computed than calls), both replicas of the replicated shard serve, and the bytes are K·D·4 per token per layer each way.
    /// </summary>
    [Fact]
    public async Task ClusterGenerationEqualsLocalBitwiseWithOneCallPerSiloAndLayer()
    {
        using var model = ModelStore.Open(fx.Checkpoint, TinyCluster.InPlace);
        Assert.True(model.MoeLayers[0].Bank.IsStored);
        var expected = await Task.Run(() => TinyCluster.Decode(model, 6));
        var tokens = await Task.Run(() => Generator.Greedy(model, Prompt, 8, threads: 2));
        var before = ServerCounts();
        using var session = await model.AttachClusterAsync(fx.Cluster.Client, fx.Plan);
        var actual = await Task.Run(() => TinyCluster.Decode(model, 6));
        TinyCluster.AssertBitwise(expected.Logits, actual.Logits);
        Assert.Equal(0, actual.Degraded);
        var counters = session.Counters;
        Assert.Equal(0, counters.LostCalls + counters.LostSections + counters.DegradedRuns);
        var after = ServerCounts();
        Assert.Equal(counters.Calls, after.Calls - before.Calls);
        Assert.True(after.Sections - before.Sections > counters.Calls, "the first silo's two layer-1 replicas should share calls");
        Assert.True(after.Served.GetValueOrDefault((0, new ShardKey(1, 2, 0))) > before.Served.GetValueOrDefault((0, new ShardKey(1, 2, 0))),
            "replica 0 of the replicated shard never served");
        Assert.True(after.Served.GetValueOrDefault((2, new ShardKey(1, 2, 1))) > before.Served.GetValueOrDefault((2, new ShardKey(1, 2, 1))),
            "replica 1 of the replicated shard never served");
        long perTokenAndLayer = TinyCluster.TopK * TinyCluster.Dim * 4;
        Assert.Equal(actual.Tokens * TinyCluster.Layers * perTokenAndLayer, counters.BytesSent);
        Assert.Equal(counters.BytesSent, counters.BytesReceived);
        Assert.True(counters.Waited > TimeSpan.Zero);
        Assert.Equal(tokens, await Task.Run(() => Generator.Greedy(model, Prompt, 8, threads: 2)));
    }

    /// <summary>
    /// Continuous batching (what <c>moe serve</c> runs) through the cluster: three concurrent greedy requests share the
    /// layers' calls and each gets the tokens the single process generates for it alone. Tokens, not logits, since
    /// the rows an expert gets in a step depend on which requests share it (decode's MatVec against MatMul).
    /// </summary>
    [Fact]
    public async Task ContinuousBatchingThroughTheClusterGeneratesEachRequestsTokens()
    {
        using var model = ModelStore.Open(fx.Checkpoint, TinyCluster.InPlace);
        int[][] prompts = [Prompt, [5, 6, 7], [90, 1, 44, 2, 13]];
        var expected = await Task.Run(() => prompts.Select(p => Generator.Greedy(model, p, 6, threads: 2)).ToArray());
        using var session = await model.AttachClusterAsync(fx.Cluster.Client, fx.Plan);
        await using var batch = new BatchGenerator(model, new BatchOptions { MaxBatch = 4, Threads = 2 });
        var greedy = new SamplingOptions { Temperature = 0 };
        var streams = prompts.Select(p => batch.Generate(p, 6, greedy)).ToArray();
        for (int i = 0; i < prompts.Length; i++)
        {
            var ids = new List<int>();
            await foreach (var token in streams[i]) ids.Add(token.Id);
            Assert.Equal(expected[i], ids);
        }
        Assert.Equal(0, session.Counters.DegradedRuns);
    }

    /// <summary>
    /// bf16 on the wire both ways: the prompt's logits [8, V] within a relative L2 error of 1e-4 of fp32's, about 3× the
    /// 3.4e-5 measured (bf16 keeps 7 bits of mantissa, ≤ 2⁻⁸ relative per value, rounded on the way out and back per
    /// expert pair over two layers, and the MoE output is one term of the residual stream); nonzero, so the rows did go
    /// as bf16. K·D·2 bytes per token per layer each way, half of fp32.
    /// </summary>
    [Fact]
    public async Task Bf16TransportStaysWithinToleranceAtHalfTheBytes()
    {
        using var model = ModelStore.Open(fx.Checkpoint, TinyCluster.InPlace);
        var expected = await Task.Run(() => TinyCluster.Decode(model, 0));
        using var session = await model.AttachClusterAsync(fx.Cluster.Client, fx.Plan, new ClusterRunnerOptions { Bf16 = true });
        var actual = await Task.Run(() => TinyCluster.Decode(model, 0));
        double num = 0, den = 0;
        for (int i = 0; i < expected.Logits[0].Length; i++)
        {
            double diff = actual.Logits[0][i] - expected.Logits[0][i];
            num += diff * diff;
            den += (double)expected.Logits[0][i] * expected.Logits[0][i];
        }
        double error = Math.Sqrt(num / den);
        Assert.True(error is > 0 and < 1e-4, $"bf16 relative L2 error {error:G3} of the prompt's logits");
        Assert.Equal(actual.Tokens * TinyCluster.Layers * TinyCluster.TopK * TinyCluster.Dim * 2, session.Counters.BytesSent);
        Assert.Equal(session.Counters.BytesSent, session.Counters.BytesReceived);
    }

    /// <summary>
    /// A plan of version 1 that moves layer 0's third shard from the third silo to the first is applied before decode
    /// step 3 of 6: the logits stay bitwise the single process's (tolerance 0), the moved replica is activated on the
    /// first silo although the silos' own plan is still version 0, and the third silo gets no layer-0 call of this
    /// caller after the switch. A plan whose version does not increase is refused.
    /// </summary>
    [Fact]
    public async Task APlanAppliedWhileGeneratingMovesAShardAndResultsStayExact()
    {
        using var model = ModelStore.Open(fx.Checkpoint, TinyCluster.InPlace);
        var expected = await Task.Run(() => TinyCluster.Decode(model, 6));
        using var session = await model.AttachClusterAsync(fx.Cluster.Client, fx.Plan);
        var shards = fx.Plan.Shards.ToList();
        shards[2] = shards[2] with { Silos = [TinyCluster.Silos[0]] };
        var moved = new PlacementPlan(shards, version: 1);
        var third = fx.Host(2);
        int LayerZeroCalls() => third.CallsPerStep.Keys.Count(k => k.Caller == session.Counters.Caller && k.Layer == 0);
        int before = -1;
        var actual = await Task.Run(() => TinyCluster.Decode(model, 6, step =>
        {
            if (step != 3) return;
            session.ApplyPlanAsync(moved).GetAwaiter().GetResult();
            before = LayerZeroCalls();
        }));
        TinyCluster.AssertBitwise(expected.Logits, actual.Logits);
        Assert.Equal(1, session.Plan.Version);
        Assert.True(fx.Host(0).Activations.ContainsKey(new ShardKey(0, 2, 0, 1)), "the moved replica was not activated on the first silo");
        Assert.Equal(before, LayerZeroCalls());
        var ex = await Assert.ThrowsAsync<ArgumentException>(() => session.ApplyPlanAsync(moved));
        OneLine(ex, "version 1 does not follow the current version 1");
    }

    /// <summary>Runs locally, then withholds some experts, as a lost shard does.</summary>
    private sealed class Withholding(params int[] silent) : IExpertRunner
    {
        public void Run(ExpertBank bank, ReadOnlySpan<float> xs, ReadOnlySpan<int> expertOffsets, Span<float> ys, Span<bool> answered)
        {
            LocalExpertRunner.Instance.Run(bank, xs, expertOffsets, ys, answered);
            foreach (int e in silent) answered[e] = false;
        }
    }

    /// <summary>
    /// The third silo's layer-0 shard (experts 4 and 5) answers late (2 s against a 300 ms timeout), a row short, or
    /// with a NaN: each time the output is bitwise the single process's with experts 4 and 5 of layer 0 withheld (the
    /// gate renormalised over the rest), the degraded tokens are the same, and once the fault is gone the output is
    /// exact again.
    /// </summary>
    [Theory]
    [InlineData(ShardFaultKind.Late)]
    [InlineData(ShardFaultKind.WrongRowCount)]
    [InlineData(ShardFaultKind.NotFinite)]
    public async Task ALateOrMalformedShardIsSkippedAndTheGateRenormalises(ShardFaultKind kind)
    {
        using var model = ModelStore.Open(fx.Checkpoint, TinyCluster.InPlace);
        var exact = await Task.Run(() => TinyCluster.Decode(model, 2));
        model.MoeLayers[0].Bank.Runner = new Withholding(4, 5);
        var withheld = await Task.Run(() => TinyCluster.Decode(model, 2));
        model.MoeLayers[0].Bank.Runner = null;
        Assert.True(withheld.Degraded > 0, "the prompt should route some token to expert 4 or 5 of layer 0");
        var host = fx.Host(2);
        using var session = await model.AttachClusterAsync(fx.Cluster.Client, fx.Plan, new ClusterRunnerOptions { Timeout = TimeSpan.FromMilliseconds(300) });
        host.Fault = new ShardFault(0, kind, TimeSpan.FromSeconds(2));
        try
        {
            var faulty = await Task.Run(() => TinyCluster.Decode(model, 2));
            TinyCluster.AssertBitwise(withheld.Logits, faulty.Logits);
            Assert.Equal(withheld.Degraded, faulty.Degraded);
        }
        finally
        {
            host.Fault = null;
        }
        var counters = session.Counters;
        Assert.True(counters.DegradedRuns > 0);
        if (kind == ShardFaultKind.Late) Assert.True(counters.LostCalls > 0, "a late call should count as lost");
        else Assert.True(counters.LostSections > 0 && counters.LostCalls == 0, $"{counters.LostSections} lost sections, {counters.LostCalls} lost calls");
        Assert.NotNull(counters.LastFault);
        var healed = await Task.Run(() => TinyCluster.Decode(model, 2));
        TinyCluster.AssertBitwise(exact.Logits, healed.Logits);
    }

    private static void OneLine(Exception ex, params string[] parts)
    {
        Assert.DoesNotContain('\n', ex.Message);
        foreach (string part in parts) Assert.Contains(part, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task APlanThatOmitsAnExpertIsOneClearLine()
    {
        using var model = ModelStore.Open(fx.Checkpoint, TinyCluster.InPlace);
        var shards = fx.Plan.Shards.ToList();
        shards[^1] = shards[^1] with { Experts = [4] };
        var ex = await Assert.ThrowsAsync<ArgumentException>(() => model.AttachClusterAsync(fx.Cluster.Client, new PlacementPlan(shards)));
        OneLine(ex, "no shard holds expert 5 of MoE layer 1");
        Assert.All(model.MoeLayers, m => Assert.Null(m.Bank.Runner));
    }

    [Fact]
    public async Task APlanNamingASiloTheClusterLacksIsOneClearLine()
    {
        using var model = ModelStore.Open(fx.Checkpoint, TinyCluster.InPlace);
        var shards = fx.Plan.Shards.ToList();
        shards[1] = shards[1] with { Silos = ["Nowhere"] };
        var ex = await Assert.ThrowsAsync<ArgumentException>(() => model.AttachClusterAsync(fx.Cluster.Client, new PlacementPlan(shards)));
        OneLine(ex, "layer 0 shard 1 names silo 'Nowhere'", TinyCluster.Silos[2]);
    }

    /// <summary>The silos serve H = 64 experts; a model here with H = 48 is refused before any row is sent.</summary>
    [Fact]
    public async Task ACheckpointOfAnotherShapeIsOneClearLine()
    {
        string other = TinyCluster.WriteModel(Path.Combine(fx.Folder, "narrow"), hidden: 48);
        using var model = ModelStore.Open(other, TinyCluster.InPlace);
        var ex = await Assert.ThrowsAsync<InvalidDataException>(() => model.AttachClusterAsync(fx.Cluster.Client, fx.Plan));
        OneLine(ex, fx.Checkpoint, "32→64", "32→48");
        Assert.All(model.MoeLayers, m => Assert.Null(m.Bank.Runner));
    }

    /// <summary>A checkpoint of the same shape from another seed differs in its router weights, which attach compares.</summary>
    [Fact]
    public async Task AnotherCheckpointOfTheSameShapeIsOneClearLine()
    {
        string other = TinyCluster.WriteModel(Path.Combine(fx.Folder, "reseeded"), seed: 6);
        using var model = ModelStore.Open(other, TinyCluster.InPlace);
        var ex = await Assert.ThrowsAsync<InvalidDataException>(() => model.AttachClusterAsync(fx.Cluster.Client, fx.Plan));
        OneLine(ex, fx.Checkpoint, "other router weights in MoE layer 0", "must load the same checkpoint");
        Assert.All(model.MoeLayers, m => Assert.Null(m.Bank.Runner));
    }
}
