using MoeSharp.Cluster.Planning;

namespace MoeSharp.Cluster.Tests.Planning;

/// <summary>A plan's validation (one line per problem, naming the shard) and its JSON form.</summary>
public sealed class PlacementPlanTests
{
    private static readonly int[] TwoLayersOfFour = [4, 4];

    [Fact]
    public void RoundRobinCoversEveryExpertOnce()
    {
        var plan = PlacementPlan.RoundRobin(TwoLayersOfFour, 3);
        plan.Validate(TwoLayersOfFour, 3);
        Assert.Equal([0, 3], plan.ShardsOf(1)[0].Experts);
        Assert.Equal([2], plan.ShardsOf(1)[2].Experts);
        Assert.Equal(6, plan.Shards.Count);
    }

    [Fact]
    public void JsonRoundTripKeepsEveryShard()
    {
        var plan = new PlacementPlan([
            new ShardPlacement(0, 0, [0, 1, 2], [0]),
            new ShardPlacement(0, 1, [3], [1, 2]),
            new ShardPlacement(1, 7, [3, 1, 0, 2], [2]),
        ]);
        var back = PlacementPlan.FromJson(plan.ToJson());
        Assert.Equal(plan.Shards.Count, back.Shards.Count);
        for (int i = 0; i < plan.Shards.Count; i++)
        {
            Assert.Equal((plan.Shards[i].Layer, plan.Shards[i].Shard), (back.Shards[i].Layer, back.Shards[i].Shard));
            Assert.Equal(plan.Shards[i].Experts, back.Shards[i].Experts);
            Assert.Equal(plan.Shards[i].Silos, back.Shards[i].Silos);
        }
        Assert.Equal(plan.ToJson(), back.ToJson());
        back.Validate(TwoLayersOfFour, 3);
        Assert.Equal(2, back.Holders(0, 3).Count);
    }

    [Theory]
    [InlineData("""{"shards":[{"layer":0,"shard":0,"experts":[0,1,2],"silos":[0]},{"layer":1,"shard":0,"experts":[0,1,2,3],"silos":[1]}]}""",
        "expert 3 of MoE layer 0 is in no shard")]
    [InlineData("""{"shards":[{"layer":0,"shard":0,"experts":[0,1,2,3],"silos":[3]},{"layer":1,"shard":0,"experts":[0,1,2,3],"silos":[1]}]}""",
        "shards[0] (layer 0, shard 0): silo 3 is out of range; the cluster has 3 silos")]
    [InlineData("""{"shards":[{"layer":0,"shard":0,"experts":[0,1,2,3],"silos":[]},{"layer":1,"shard":0,"experts":[0,1,2,3],"silos":[1]}]}""",
        "shards[0] (layer 0, shard 0): the shard is on no silo")]
    [InlineData("""{"shards":[{"layer":0,"shard":0,"experts":[0,1,1,2,3],"silos":[0]},{"layer":1,"shard":0,"experts":[0,1,2,3],"silos":[1]}]}""",
        "shards[0] (layer 0, shard 0): expert 1 appears twice in the shard")]
    [InlineData("""{"shards":[{"layer":0,"shard":0,"experts":[0,1,2,3],"silos":[0]},{"layer":1,"shard":0,"experts":[0,1,2,4],"silos":[1]}]}""",
        "shards[1] (layer 1, shard 0): expert 4 is out of range; layer 1 has 4 experts")]
    [InlineData("""{"shards":[{"layer":0,"shard":0,"experts":[0,1,2,3],"silos":[0]},{"layer":2,"shard":0,"experts":[0],"silos":[1]}]}""",
        "shards[1] (layer 2, shard 0): layer 2 is out of range; the model has 2 MoE layers")]
    [InlineData("""{"shards":[{"layer":0,"shard":0,"experts":[0,1],"silos":[0]},{"layer":0,"shard":0,"experts":[2,3],"silos":[1]}]}""",
        "shard 0 of layer 0 is defined twice")]
    [InlineData("""{"shards":[{"layer":0,"shard":0,"experts":[0,1,2,3],"silos":[1,1]},{"layer":1,"shard":0,"experts":[0,1,2,3],"silos":[1]}]}""",
        "silo 1 is named twice")]
    public void EachProblemIsOneLineNamingIt(string json, string expected)
    {
        var plan = PlacementPlan.FromJson(json, "plan.json");
        var e = Assert.Throws<InvalidDataException>(() => plan.Validate(TwoLayersOfFour, 3, "plan.json"));
        Assert.StartsWith("plan.json: ", e.Message);
        Assert.Contains(expected, e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Theory]
    [InlineData("""{"shards":[{"layer":0,"experts":[0],"silos":[0]}]}""", "plan.json.shards[0]: the field \"shard\" is missing")]
    [InlineData("""{"shards":[{"layer":0,"shard":0,"experts":[-1],"silos":[0]}]}""", "plan.json.shards[0].experts[0]: expected an integer of at least 0, got -1")]
    [InlineData("""{"shards":{}}""", "plan.json.shards: expected an array, got an object")]
    [InlineData("""{"shards":[""", "plan.json: not valid JSON at line 1")]
    public void MalformedJsonNamesTheField(string json, string expected)
    {
        var e = Assert.Throws<InvalidDataException>(() => PlacementPlan.FromJson(json, "plan.json"));
        Assert.Contains(expected, e.Message);
    }
}
