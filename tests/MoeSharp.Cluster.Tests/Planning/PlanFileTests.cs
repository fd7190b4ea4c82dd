using MoeSharp.Cluster.Placement;
using MoeSharp.Cluster.Planning;

namespace MoeSharp.Cluster.Tests.Planning;

/// <summary>A plan's validation (one line per problem, naming the shard) and its JSON form.</summary>
public sealed class PlanFileTests
{
    private static readonly int[] TwoLayersOfFour = [4, 4];

    [Fact]
    public void RoundRobinCoversEveryExpertOnce()
    {
        var plan = PlanFile.RoundRobin(TwoLayersOfFour, 3);
        PlanFile.Validate(plan, TwoLayersOfFour, 3);
        plan.Validate(2, 4);
        Assert.Equal(["silo1"], plan.ShardsOf(0)[1].Silos);
        Assert.Equal([0, 3], plan.ShardsOf(1)[0].Experts);
        Assert.Equal([2], plan.ShardsOf(1)[2].Experts);
        Assert.Equal(6, plan.Shards.Length);
    }

    [Fact]
    public void JsonRoundTripKeepsEveryShard()
    {
        var plan = new PlacementPlan([
            new ShardPlan(0, 0, [0, 1, 2], ["silo0"]),
            new ShardPlan(0, 1, [3], ["silo1", "silo2"]),
            new ShardPlan(1, 7, [3, 1, 0, 2], ["silo2"]),
        ]);
        string json = PlanFile.Write(plan);
        Assert.Contains("\"silos\": [\n        1,\n        2\n      ]", json.ReplaceLineEndings("\n"));
        var back = PlanFile.Read(json);
        Assert.Equal(plan.Shards.Length, back.Shards.Length);
        for (int i = 0; i < plan.Shards.Length; i++)
        {
            Assert.Equal((plan.Shards[i].Layer, plan.Shards[i].Shard), (back.Shards[i].Layer, back.Shards[i].Shard));
            Assert.Equal(plan.Shards[i].Experts, back.Shards[i].Experts);
            Assert.Equal(plan.Shards[i].Silos, back.Shards[i].Silos);
        }
        Assert.Equal(json, PlanFile.Write(back));
        PlanFile.Validate(back, TwoLayersOfFour, 3);
        Assert.Throws<ArgumentException>(() => PlanFile.Write(new PlacementPlan([new ShardPlan(0, 0, [0], ["node-a"])])));
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
    [InlineData("""{"shards":[{"layer":0,"shard":0,"experts":[0,1,2],"silos":[0]},{"layer":0,"shard":1,"experts":[2,3],"silos":[1]},{"layer":1,"shard":0,"experts":[0,1,2,3],"silos":[1]}]}""",
        "shards[1] (layer 0, shard 1): expert 2 is already in shard 0 of layer 0; an expert lives in one shard")]
    [InlineData("""{"shards":[{"layer":0,"shard":0,"experts":[0,1,2,3],"silos":[1,1]},{"layer":1,"shard":0,"experts":[0,1,2,3],"silos":[1]}]}""",
        "silo 1 is named twice")]
    public void EachProblemIsOneLineNamingIt(string json, string expected)
    {
        var plan = PlanFile.Read(json, "plan.json");
        var e = Assert.Throws<InvalidDataException>(() => PlanFile.Validate(plan, TwoLayersOfFour, 3, "plan.json"));
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
        var e = Assert.Throws<InvalidDataException>(() => PlanFile.Read(json, "plan.json"));
        Assert.Contains(expected, e.Message);
    }
}
