using MoeSharp.Cluster.Config;
using MoeSharp.Cluster.Planning;

namespace MoeSharp.Cluster.Tests.Config;

/// <summary>Reading a cluster configuration file: every field, relative paths, and one line per bad field.</summary>
public sealed class ClusterConfigTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("moe-cluster-config-").FullName;
    private const string Fingerprint = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    private static string Json(string extra = "", string silos = """[{"host":"127.0.0.1","port":11111,"gateway_port":30000},{"host":"127.0.0.1","port":11112,"gateway_port":30001,"checkpoint":"/other/model"}]""") =>
        $$"""{ "silos": {{silos}}, "checkpoint": "model", "fingerprint": "{{Fingerprint}}" {{extra}} }""";

    [Fact]
    public void ReadsEveryFieldAndRoundTrips()
    {
        string json = Json(""", "primary": 1, "transport": "bf16", "call_timeout_ms": 250, "connect_timeout_ms": 1500, "cluster_id": "bench", "plan": {"shards":[{"layer":0,"shard":0,"experts":[0,1],"silos":[0,1]}]} """);
        var c = ClusterConfig.Parse(json, "c.json", _folder);
        Assert.Equal(2, c.Silos.Count);
        Assert.Equal(new SiloEndpoint("127.0.0.1", 11112, 30001, "/other/model"), c.Silos[1]);
        Assert.Equal(1, c.Primary);
        Assert.Equal(Path.Combine(_folder, "model"), c.Checkpoint);
        Assert.Equal("/other/model", c.CheckpointOf(1));
        Assert.Equal(c.Checkpoint, c.CheckpointOf(0));
        Assert.Equal(TransportDType.Bf16, c.Transport);
        Assert.Equal(TimeSpan.FromMilliseconds(250), c.CallTimeout);
        Assert.Equal(TimeSpan.FromMilliseconds(1500), c.ConnectTimeout);
        Assert.Equal("bench", c.ClusterId);
        Assert.Equal([1, 0], c.Silos.Select(s => s.GatewayEndpoint.Port - 30000).Reverse());
        c.PlanFor([2]);

        var back = ClusterConfig.Parse(c.ToJson(), "c.json", "/elsewhere");
        Assert.Equal(c.ToJson(), back.ToJson());
    }

    [Fact]
    public void DefaultsAndAPlanFile()
    {
        File.WriteAllText(Path.Combine(_folder, "plan.json"), PlanFile.Write(PlanFile.RoundRobin([4], 2)));
        var c = ClusterConfig.Parse(Json(""", "plan": "plan.json" """), "c.json", _folder);
        Assert.Equal(TransportDType.Fp32, c.Transport);
        Assert.Equal(TimeSpan.FromSeconds(30), c.CallTimeout);
        Assert.Equal(0, c.Primary);
        Assert.Equal(2, c.PlanFor([4]).Shards.Length);
        var roundRobin = ClusterConfig.Parse(Json(), "c.json", _folder);
        Assert.Null(roundRobin.Plan);
        Assert.Equal(4, roundRobin.PlanFor([3, 3]).Shards.Length);
    }

    [Theory]
    [InlineData("""{ "checkpoint": "m", "fingerprint": "x" }""", "c.json: the field \"silos\" is missing")]
    [InlineData("""{ "silos": [], "checkpoint": "m" }""", "c.json: silos: expected at least one silo")]
    [InlineData("""{ "silos": [{"host":"127.0.0.1","port":70000,"gateway_port":1}], "checkpoint": "m" }""", "c.json: silos[0].port: expected an integer from 1 to 65535, got 70000")]
    [InlineData("""{ "silos": [{"host":"127.0.0.1","port":"11111","gateway_port":1}], "checkpoint": "m" }""", "c.json: silos[0].port: expected an integer from 1 to 65535, got \"11111\"")]
    [InlineData("""{ "silos": [{"port":1,"gateway_port":2}], "checkpoint": "m" }""", "c.json: silos[0]: the field \"host\" is missing")]
    [InlineData("""{ "silos": [{"host":"a","port":1,"gateway_port":2},{"host":"a","port":2,"gateway_port":3}], "checkpoint": "m" }""", "c.json: silos[1]: a:2 is used twice")]
    [InlineData("""{ "silos": [{"host":"a","port":1,"gateway_port":2}], "fingerprint": "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" }""", "c.json: the field \"checkpoint\" is missing")]
    [InlineData("""{ "silos": [{"host":"a","port":1,"gateway_port":2}], "checkpoint": "m" }""", "c.json: the field \"fingerprint\" is missing")]
    [InlineData("""{ "silos": [{"host":"a","port":1,"gateway_port":2}], "checkpoint": "m", "fingerprint": "md5:1" }""", "c.json.fingerprint: expected \"sha256:\" and 64 hex digits")]
    [InlineData("""{ "silos": [{"host":"a","port":1,"gateway_port":2}], "primary": 1, "checkpoint": "m" }""", "c.json.primary: expected an integer from 0 to 0, got 1")]
    [InlineData("""{ "silos": [{"host":"a","port":1,"gateway_port":2}], "checkpoint": "m", "fingerprint": "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "transport": "fp16" }""", "c.json.transport: expected \"fp32\" or \"bf16\", got \"fp16\"")]
    [InlineData("""{ "silos": [{"host":"a","port":1,"gateway_port":2}], "checkpoint": "m", "fingerprint": "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "call_timeout_ms": 0 }""", "c.json.call_timeout_ms: expected an integer of at least 1, got 0")]
    [InlineData("""{ "silos": [{"host":"a","port":1,"gateway_port":2}], "checkpoint": "m", "fingerprint": "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "plan": "absent.json" }""", "c.json.plan: plan file")]
    [InlineData("""{ "silos": [{"host":"a","port":1,"gateway_port":2}], "checkpoint": "m", "fingerprint": "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "plan": {"shards":[{"layer":0}]} }""", "c.json.plan.shards[0]: the field \"shard\" is missing")]
    [InlineData("""{ "silos": [ """, "c.json: not valid JSON at line 1")]
    public void EachBadFieldIsOneLineNamingIt(string json, string expected)
    {
        var e = Assert.ThrowsAny<Exception>(() => ClusterConfig.Parse(json, "c.json", _folder));
        Assert.True(e is InvalidDataException or FileNotFoundException, e.GetType().Name);
        Assert.Contains(expected, e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void AMissingFileAndAPlanThatOmitsAnExpert()
    {
        var missing = Assert.Throws<FileNotFoundException>(() => ClusterConfig.Load(Path.Combine(_folder, "absent.json")));
        Assert.Contains("absent.json' does not exist", missing.Message);
        var c = ClusterConfig.Parse(Json(""", "plan": {"shards":[{"layer":0,"shard":0,"experts":[0,1],"silos":[0]}]} """), "c.json", _folder);
        var e = Assert.Throws<InvalidDataException>(() => c.PlanFor([3]));
        Assert.Equal("c.json: plan: expert 2 of MoE layer 0 is in no shard; every routed expert needs one.", e.Message);
    }

    /// <summary>The fingerprint sees a changed weight byte past the header (at a sampled offset), the config, and nothing else.</summary>
    [Fact]
    public void FingerprintTellsCheckpointsApart()
    {
        string a = Path.Combine(_folder, "a"), b = Path.Combine(_folder, "b");
        Directory.CreateDirectory(a);
        Directory.CreateDirectory(b);
        var weights = new byte[3 << 20];
        new Random(1).NextBytes(weights);
        foreach (string d in (string[])[a, b])
        {
            File.WriteAllText(Path.Combine(d, "config.json"), "{}");
            File.WriteAllBytes(Path.Combine(d, "model.safetensors"), weights);
            File.WriteAllText(Path.Combine(d, "tokenizer.json"), d);
        }
        string fa = CheckpointFingerprint.Of(a);
        Assert.Matches("^sha256:[0-9a-f]{64}$", fa);
        Assert.Equal(fa, CheckpointFingerprint.Of(b));
        // The last sample ends at the file's end.
        weights[^1] ^= 1;
        File.WriteAllBytes(Path.Combine(b, "model.safetensors"), weights);
        Assert.NotEqual(fa, CheckpointFingerprint.Of(b));
        weights[^1] ^= 1;
        File.WriteAllBytes(Path.Combine(b, "model.safetensors"), weights);
        File.WriteAllText(Path.Combine(b, "config.json"), "{ }");
        Assert.NotEqual(fa, CheckpointFingerprint.Of(b));

        var c = ClusterConfig.Parse(Json().Replace(Fingerprint, fa), "c.json", _folder);
        c.CheckCheckpoint(a, "silo 0");
        var e = Assert.Throws<InvalidDataException>(() => c.CheckCheckpoint(b, "silo 1"));
        Assert.Contains($"silo 1's checkpoint '{b}' has fingerprint sha256:", e.Message);
        Assert.Contains($"the configuration expects {fa}", e.Message);
        Assert.Throws<FileNotFoundException>(() => CheckpointFingerprint.Of(Path.Combine(_folder, "none")));
    }
}
