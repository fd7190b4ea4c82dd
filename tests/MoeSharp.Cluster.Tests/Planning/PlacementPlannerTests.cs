using MoeSharp.Cluster.Placement;
using MoeSharp.Cluster.Planning;

namespace MoeSharp.Cluster.Tests.Planning;

/// <summary>The planner against plans derived by hand, and its balance bound on random loads.</summary>
public sealed class PlacementPlannerTests
{
    /// <summary>
    /// 8 experts, expert 3 takes 70 of 140 tokens, 3 silos × 3 slots: one spare slot, and expert 3 (70 per replica,
    /// above the 140/8 expert mean) takes it. Heaviest first onto the least-loaded silo with room: 3→s0, 3→s1 (s0
    /// holds it), 0,1,2→s2 (10, 20, 30), then 4→s0, 5→s1, 6→s0, 7→s1 (45, 45, 55, 55). Silo loads 55, 55, 30
    /// against 90, 30, 20 for round robin. Shards: each silo's own experts, then expert 3 with a replica on s0 and s1.
    /// </summary>
    [Fact]
    public void AHotExpertIsReplicatedAndColdOnesPackAroundIt()
    {
        var load = Load([10, 10, 10, 70, 10, 10, 10, 10]);
        var plan = PlacementPlanner.Plan(load, new PlannerOptions { Silos = 3, SlotsPerSilo = 3 });
        Assert.Equal(4, plan.Shards.Length);
        Assert.Equal([4, 6], plan.Shards[0].Experts);
        Assert.Equal([5, 7], plan.Shards[1].Experts);
        Assert.Equal([0, 1, 2], plan.Shards[2].Experts);
        Assert.Equal([3], plan.Shards[3].Experts);
        Assert.Equal(["silo0"], plan.Shards[0].Silos);
        Assert.Equal(["silo1"], plan.Shards[1].Silos);
        Assert.Equal(["silo2"], plan.Shards[2].Silos);
        Assert.Equal(["silo0", "silo1"], plan.Shards[3].Silos);
        for (int s = 0; s < 4; s++) Assert.Equal((0, s), (plan.Shards[s].Layer, plan.Shards[s].Shard));
        PlanFile.Validate(plan, [8], 3);
        plan.Validate(1, 8);

        var loads = PlacementPlanner.SiloLoads(plan, load, 3)[0];
        Assert.Equal([55.0, 55.0, 30.0], loads);
        // The greedy bound: no silo above the mean by more than the heaviest replica (35).
        Assert.True(loads.Max() <= 140.0 / 3 + 35, $"max silo load {loads.Max()}");
        Assert.Equal(55 / (140.0 / 3), PlacementPlanner.Imbalance(loads), 12);
        var before = PlacementPlanner.SiloLoads(PlanFile.RoundRobin([8], 3), load, 3)[0];
        Assert.Equal([90.0, 30.0, 20.0], before);
    }

    /// <summary>
    /// The default slots (ceil(8/3) + 1 = 4) let expert 3 take one replica per silo (23⅓ each, still above the
    /// 17.5 expert mean); the cold experts at 10 are below the mean and stay single. Packing: 0→s0, 1→s1, 2→s2, 4→s0, 5→s1,
    /// 6→s2, 7→s0 (ties to the lower silo).
    /// </summary>
    [Fact]
    public void DefaultSlotsReplicateTheHotExpertOnEverySilo()
    {
        var load = Load([10, 10, 10, 70, 10, 10, 10, 10]);
        var plan = PlacementPlanner.Plan(load, new PlannerOptions { Silos = 3 });
        Assert.Equal([0, 4, 7], plan.Shards[0].Experts);
        Assert.Equal([1, 5], plan.Shards[1].Experts);
        Assert.Equal([2, 6], plan.Shards[2].Experts);
        Assert.Equal([3], plan.Shards[3].Experts);
        Assert.Equal(["silo0", "silo1", "silo2"], plan.Shards[3].Silos);
        Assert.Equal(4, plan.Shards.Length);
    }

    /// <summary>Balanced loads need no replica: every expert once, four per silo.</summary>
    [Fact]
    public void UniformLoadGivesNoReplica()
    {
        var plan = PlacementPlanner.Plan(Load([5, 5, 5, 5, 5, 5, 5, 5]), new PlannerOptions { Silos = 2 });
        Assert.Equal(2, plan.Shards.Length);
        Assert.All(plan.Shards, s => Assert.Equal(4, s.Experts.Length));
        Assert.All(plan.Shards, s => Assert.Single(s.Silos));
    }

    /// <summary>
    /// Random skewed loads (Zipf-like, 2 layers of 16 experts, 4 silos): every plan is valid, the same input gives
    /// the same plan, and each layer's largest silo load is at most the mean plus the heaviest single replica (the
    /// greedy longest-processing-time bound) and never worse than round robin's.
    /// </summary>
    [Fact]
    public void RandomSkewStaysWithinTheGreedyBound()
    {
        var rng = new Random(14);
        for (int trial = 0; trial < 50; trial++)
        {
            var load = new ExpertLoad([16, 16]);
            for (int l = 0; l < 2; l++)
            {
                var counts = new int[16];
                for (int e = 0; e < 16; e++) counts[e] = (int)(1000 / Math.Pow(1 + rng.Next(16), 1.2));
                load.Add(l, counts);
            }
            var options = new PlannerOptions { Silos = 4 };
            var plan = PlacementPlanner.Plan(load, options);
            PlanFile.Validate(plan, [16, 16], 4);
            Assert.Equal(PlanFile.Write(plan), PlanFile.Write(PlacementPlanner.Plan(load, options)));
            var after = PlacementPlanner.SiloLoads(plan, load, 4);
            var before = PlacementPlanner.SiloLoads(PlanFile.RoundRobin([16, 16], 4), load, 4);
            for (int l = 0; l < 2; l++)
            {
                double total = 0, heaviest = 0;
                foreach (var e in load.Of(l).ToArray()) total += e;
                foreach (var shard in plan.ShardsOf(l))
                    foreach (int e in shard.Experts) heaviest = Math.Max(heaviest, load.Of(l)[e] / (double)shard.Silos.Length);
                Assert.True(after[l].Max() <= total / 4 + heaviest + 1e-9, $"trial {trial} layer {l}: max {after[l].Max()}, mean {total / 4}, heaviest replica {heaviest}");
                Assert.True(after[l].Max() <= before[l].Max() + 1e-9, $"trial {trial} layer {l}: planned {after[l].Max()} worse than round robin {before[l].Max()}");
            }
        }
    }

    [Fact]
    public void TooFewSlotsIsOneLine()
    {
        var e = Assert.Throws<ArgumentException>(() => PlacementPlanner.Plan(Load([1, 1, 1, 1, 1]), new PlannerOptions { Silos = 2, SlotsPerSilo = 2 }));
        Assert.Contains("SlotsPerSilo to at least 3", e.Message);
    }

    private static ExpertLoad Load(int[] tokens)
    {
        var load = new ExpertLoad([tokens.Length]);
        load.Add(0, tokens);
        return load;
    }
}
