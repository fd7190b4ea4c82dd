using System.CommandLine;
using Microsoft.Extensions.Hosting;
using MoeSharp.Cluster.Config;
using MoeSharp.Cluster.Planning;
using MoeSharp.Models;

namespace MoeSharp.Cli;

/// <summary>
/// <c>--cluster CONFIG</c> on the inference commands: the model's dense part runs in this process, its routed experts
/// on the silos the configuration lists (started with <c>moe silo</c>). Before the first token: the configuration is
/// read, this process's checkpoint is checked against its fingerprint, the plan against the model, and a gateway is
/// reached within the connect timeout; each failure is one line and exit code 2.
/// </summary>
internal static class ClusterCli
{
    /// <summary>The option, null when absent.</summary>
    public static Option<FileInfo?> Option() => new("--cluster")
    {
        Description = "Run the routed experts on the silos of this cluster configuration file (see 'moe silo'); the dense part runs here.",
    };

    /// <summary>[L] routed experts of each MoE layer, the plan's shape.</summary>
    public static int[] ExpertsPerLayer(MoeTransformer model)
    {
        var counts = new int[model.MoeLayers.Count];
        for (int l = 0; l < counts.Length; l++) counts[l] = model.MoeLayers[l].Bank.Experts;
        return counts;
    }

    /// <summary>
    /// Connects <paramref name="model"/> (opened from <paramref name="checkpoint"/>) to the cluster in
    /// <paramref name="file"/>; disposing the session detaches the experts and closes the connection.
    /// </summary>
    public static ClusterSession Attach(MoeTransformer model, string checkpoint, FileInfo file)
    {
        var config = ClusterConfig.Load(file.FullName);
        config.CheckCheckpoint(checkpoint, "this process");
        var plan = config.PlanFor(ExpertsPerLayer(model));
        var client = ClusterHosting.Connect(config).GetAwaiter().GetResult();
        return new ClusterSession(config, plan, model, client);
    }

    /// <summary>What a silo process registers so that the grains of <paramref name="plan"/> run there on <paramref name="model"/>'s experts.</summary>
    public static Action<Orleans.Hosting.ISiloBuilder> SiloServices(ClusterConfig config, PlacementPlan plan, MoeTransformer model, int threads) =>
        _ => { };
}

/// <summary>A model attached to a cluster: the client connection and the plan its experts run by.</summary>
internal sealed class ClusterSession(ClusterConfig config, PlacementPlan plan, MoeTransformer model, IHost client) : IDisposable
{
    /// <summary>The configuration connected to.</summary>
    public ClusterConfig Config { get; } = config;

    /// <summary>The plan in force.</summary>
    public PlacementPlan Plan { get; } = plan;

    /// <summary>The attached model.</summary>
    public MoeTransformer Model { get; } = model;

    public void Dispose()
    {
        ClusterHosting.Stop(client, TimeSpan.FromSeconds(5)).GetAwaiter().GetResult();
        client.Dispose();
    }
}
