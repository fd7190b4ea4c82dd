using MoeSharp.Autograd;
using MoeSharp.Cluster.Placement;
using MoeSharp.Cluster.Shards;
using MoeSharp.IO;
using MoeSharp.Models;
using Orleans.Configuration;
using Orleans.TestingHost;

namespace MoeSharp.Cluster.Tests;

/// <summary>
/// A tiny Mixtral (2 MoE layers of 6 experts, top-2, D 32, H 64) saved as a Hugging Face folder, and in-process
/// clusters of 3 silos that serve it in place, with liveness settings that declare a killed silo dead in seconds.
/// </summary>
internal static class TinyCluster
{
    public const int Layers = 2, Experts = 6, TopK = 2, Dim = 32;

    /// <summary>The silo names an in-process test cluster gives its first three silos.</summary>
    public static readonly string[] Silos = ["Silo_0", "Silo_1", "Silo_2"];

    public static readonly ModelLoadOptions InPlace = new() { InPlace = true };

    /// <summary>Writes config.json and model.safetensors (random weights from <paramref name="seed"/>) into <paramref name="folder"/>.</summary>
    public static string WriteModel(string folder, int hidden = 64, ulong seed = 5)
    {
        string json = $$"""
            { "model_type": "mixtral", "hidden_size": {{Dim}}, "num_hidden_layers": {{Layers}}, "num_attention_heads": 4, "num_key_value_heads": 2,
              "intermediate_size": {{hidden}}, "num_local_experts": {{Experts}}, "num_experts_per_tok": {{TopK}}, "vocab_size": 96,
              "max_position_embeddings": 64, "rope_theta": 10000.0 }
            """;
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, "config.json"), json);
        using var doc = System.Text.Json.JsonDocument.Parse(json);
        // Weights of std 0.08, so the logits stand well apart and greedy picks are not near ties.
        var config = ModelStore.FromHuggingFace(doc.RootElement, "test") with { InitStd = 0.08f };
        ModelStore.Save(Path.Combine(folder, "model.safetensors"), new MoeTransformer(config, seed).Arena);
        return folder;
    }

    /// <summary>
    /// Layer l's shards {0,1}, {2,3}, {4,5} on the three silos in order, except that layer 1's last shard has two
    /// replicas, the first on the first silo (which then holds two of layer 1's shard replicas: the prompt, whose rows
    /// reach every shard and take replica 0, sends them in one call) and the second on the third silo.
    /// </summary>
    public static PlacementPlan Plan() => new(
    [
        new ShardPlan(0, 0, [0, 1], [Silos[0]]), new ShardPlan(0, 1, [2, 3], [Silos[1]]), new ShardPlan(0, 2, [4, 5], [Silos[2]]),
        new ShardPlan(1, 0, [0, 1], [Silos[0]]), new ShardPlan(1, 1, [2, 3], [Silos[1]]), new ShardPlan(1, 2, [5, 4], [Silos[0], Silos[2]]),
    ]);

    /// <summary>Deploys 3 silos serving <paramref name="checkpoint"/> under <paramref name="plan"/>, loaded as <paramref name="load"/> says (default in place).</summary>
    public static async Task<InProcessTestCluster> Deploy(string checkpoint, PlacementPlan plan, ModelLoadOptions? load = null)
    {
        load ??= InPlace;
        var builder = new InProcessTestClusterBuilder(3);
        builder.ConfigureSilo((_, silo) =>
        {
            silo.AddExpertShards(new ShardHostOptions { Checkpoint = checkpoint, Load = load, Plan = plan });
            silo.Configure<ClusterMembershipOptions>(o =>
            {
                o.ProbeTimeout = TimeSpan.FromMilliseconds(500);
                o.NumMissedProbesLimit = 2;
                o.NumVotesForDeathDeclaration = 1;
                o.TableRefreshTimeout = TimeSpan.FromSeconds(1);
                o.IAmAliveTablePublishTimeout = TimeSpan.FromSeconds(1);
            });
        });
        var cluster = builder.Build();
        await cluster.DeployAsync();
        return cluster;
    }

    public static ShardHost Host(InProcessSiloHandle silo) => (ShardHost)silo.ServiceProvider.GetService(typeof(ShardHost))!;

    /// <summary>Logits of the prompt (prefill) and of <paramref name="steps"/> greedy decode steps, and the degraded tokens summed over layers and steps.</summary>
    public static (List<float[]> Logits, int Degraded, int Tokens) Decode(MoeTransformer model, int steps, Action<int>? beforeStep = null)
    {
        var tape = new Tape();
        var kv = model.NewCache();
        var all = new List<float[]>();
        int[] ids = [3, 14, 15, 92, 65, 35, 89, 79];
        int degraded = 0, tokens = 0;
        using (tape.NoGrad())
            for (int step = 0; step <= steps; step++)
            {
                beforeStep?.Invoke(step);
                var output = model.Forward(tape, ids, kv);
                tokens += ids.Length;
                foreach (var moe in output.Moe) degraded += moe.Stats.Degraded;
                var logits = output.Logits.Span.ToArray();
                all.Add(logits);
                ids = [System.Numerics.Tensors.TensorPrimitives.IndexOfMax(logits.AsSpan(logits.Length - model.Config.Vocab))];
                tape.Reset();
            }
        return (all, degraded, tokens);
    }

    public static void AssertBitwise(List<float[]> expected, List<float[]> actual)
    {
        Assert.Equal(expected.Count, actual.Count);
        for (int s = 0; s < expected.Count; s++) Numerics.BitwiseEqual(expected[s], actual[s], $"step {s} logits");
    }
}
