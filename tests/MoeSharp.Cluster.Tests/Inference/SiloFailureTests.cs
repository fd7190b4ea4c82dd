using MoeSharp.Cluster.Inference;
using MoeSharp.Cluster.Shards;
using MoeSharp.IO;

namespace MoeSharp.Cluster.Tests.Inference;

/// <summary>A silo killed in the middle of a generation, on a cluster of its own.</summary>
public sealed class SiloFailureTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("moesharp-cluster-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    /// <summary>
    /// The third silo is killed while the prompt's layer-0 call to it is in flight (timeout 5 s): the generation of
    /// 8 more tokens finishes, with degraded tokens (its experts skipped, the gate renormalised); once the cluster has
    /// declared it dead its shards are re-placed on the survivors from the checkpoint, and a new generation is bitwise
    /// the single process's again (tolerance 0). The silos and the caller load the fp32 arena here (the blocked GEMMs),
    /// where the other cluster tests load in place (the stored matrices' products).
    /// </summary>
    [Fact]
    public async Task AKilledSiloDegradesTheRequestThenItsShardsMoveAndResultsAreExactAgain()
    {
        string checkpoint = TinyCluster.WriteModel(Path.Combine(_folder, "model"));
        var plan = TinyCluster.Plan();
        var arena = new ModelLoadOptions();
        var cluster = await TinyCluster.Deploy(checkpoint, plan, arena);
        try
        {
            using var model = ModelStore.Open(checkpoint, arena);
            Assert.False(model.MoeLayers[0].Bank.IsStored);
            var expected = await Task.Run(() => TinyCluster.Decode(model, 8));
            using var session = await model.AttachClusterAsync(cluster.Client, plan, new ClusterRunnerOptions { Timeout = TimeSpan.FromSeconds(5) });
            var victim = cluster.Silos.Single(s => s.Name == TinyCluster.Silos[2]);
            Task? kill = null;
            var during = await Task.Run(() => TinyCluster.Decode(model, 8, step =>
            {
                if (step != 0) return;
                // The victim holds its layer-0 answer for 3 s, so that the kill lands while the prompt's call is in flight.
                TinyCluster.Host(victim).Fault = new ShardFault(0, ShardFaultKind.Late, TimeSpan.FromSeconds(3));
                kill = Task.Run(async () =>
                {
                    await Task.Delay(300);
                    await cluster.KillSiloAsync(victim);
                });
            }));
            await kill!;
            Assert.Equal(expected.Logits.Count, during.Logits.Count);
            Assert.True(during.Degraded > 0, "no token lost an expert after the kill");
            Assert.True(session.Counters.DegradedRuns > 0 && session.Counters.LostCalls + session.Counters.LostSections > 0);

            var management = cluster.Client.GetGrain<IManagementGrain>(0);
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
            while ((await management.GetHosts(onlyActive: true)).Count > 2)
            {
                Assert.True(DateTime.UtcNow < deadline, "the killed silo was not declared dead within 30 s");
                await Task.Delay(200);
            }
            var after = await Task.Run(() => TinyCluster.Decode(model, 8));
            TinyCluster.AssertBitwise(expected.Logits, after.Logits);
            Assert.Equal(0, after.Degraded);
            var moved = cluster.Silos.Where(s => s != victim).Select(TinyCluster.Host)
                .SelectMany(h => h.Activations.Keys).Where(k => k == new ShardKey(0, 2, 0) || k == new ShardKey(1, 2, 1)).ToList();
            Assert.NotEmpty(moved);
        }
        finally
        {
            await cluster.StopAllSilosAsync();
            await cluster.DisposeAsync();
        }
    }
}
