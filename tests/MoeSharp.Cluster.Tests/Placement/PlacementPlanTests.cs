using MoeSharp.Cluster.Placement;

namespace MoeSharp.Cluster.Tests.Placement;

/// <summary>A placement plan is checked against the model's shape and the live silos, each problem one line naming the shard.</summary>
public sealed class PlacementPlanTests
{
    private static readonly string[] Silos = ["a", "b", "c"];

    [Fact]
    public void AnEvenPlanCoversEveryExpertOnceAndCyclesTheSilos()
    {
        var plan = PlacementPlan.Even(2, 8, 3, Silos);
        plan.Validate(2, 8);
        plan.ValidateSilos(Silos);
        var layer1 = plan.ShardsOf(1);
        Assert.Equal([[0, 1], [2, 3, 4], [5, 6, 7]], layer1.Select(s => s.Experts));
        Assert.Equal(["a", "b", "c"], layer1.Select(s => s.Silos.Single()));
        Assert.Same(layer1[2], plan.Find(1, 2));
        Assert.Null(plan.Find(2, 0));
    }

    public static TheoryData<string, string> Broken() => new()
    {
        { "layer", "placement plan: layer 2 shard 0: the model has 2 MoE layers (0..1)." },
        { "twice", "placement plan: layer 0 shard 1 appears twice." },
        { "empty", "placement plan: layer 0 shard 1 holds no experts." },
        { "no replica", "placement plan: layer 0 shard 1 has no replica (no silo)." },
        { "same silo", "placement plan: layer 0 shard 1 puts two replicas on one silo (b, b)." },
        { "range", "placement plan: layer 0 shard 1: expert 4 is outside the layer's 4 experts (0..3)." },
        { "shared", "placement plan: layer 0 shard 1: expert 1 is already held by shard 0; replicate a shard instead." },
        { "omitted", "placement plan: no shard holds expert 3 of MoE layer 1; every expert of every layer needs a shard." },
    };

    [Theory]
    [MemberData(nameof(Broken))]
    public void EachBrokenPlanIsOneClearLine(string fault, string message)
    {
        var shards = new List<ShardPlan>
        {
            new(0, 0, [0, 1], ["a"]), new(0, 1, [2, 3], ["b"]),
            new(1, 0, [0, 1], ["a"]), new(1, 1, [2, 3], ["b", "c"]),
        };
        shards[1] = fault switch
        {
            "layer" => shards[1],
            "twice" => shards[1] with { Shard = 1 },
            "empty" => shards[1] with { Experts = [] },
            "no replica" => shards[1] with { Silos = [] },
            "same silo" => shards[1] with { Silos = ["b", "b"] },
            "range" => shards[1] with { Experts = [2, 3, 4] },
            "shared" => shards[1] with { Experts = [1, 2, 3] },
            _ => shards[1],
        };
        if (fault == "layer") shards.Add(new ShardPlan(2, 0, [0], ["a"]));
        if (fault == "twice") shards.Insert(2, new ShardPlan(0, 1, [2], ["c"]));
        if (fault == "omitted") shards[3] = shards[3] with { Experts = [2] };
        var ex = Assert.Throws<ArgumentException>(() => new PlacementPlan(shards).Validate(2, 4));
        Assert.Equal(message, ex.Message);
    }

    [Fact]
    public void ASiloTheClusterLacksIsOneClearLine()
    {
        var plan = new PlacementPlan([new ShardPlan(0, 0, [0], ["a"]), new ShardPlan(0, 1, [1], ["d"])]);
        var ex = Assert.Throws<ArgumentException>(() => plan.ValidateSilos(Silos));
        Assert.Equal("placement plan: layer 0 shard 1 names silo 'd', which is not in the cluster (active silos: a, b, c).", ex.Message);
    }
}
