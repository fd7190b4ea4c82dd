using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using MoeSharp.Cluster.Inference;
using MoeSharp.Cluster.Placement;
using MoeSharp.Models;

namespace MoeSharp.Cluster.Config;

/// <summary>
/// A model in this process attached to the cluster of a <see cref="ClusterConfig"/>: its dense part runs here, its
/// routed experts on the silos. <see cref="Open"/> checks, in order and each as one line: this process's checkpoint
/// against the configured fingerprint, the plan against the model, a gateway reachable within the connect timeout,
/// and every shard replica's checkpoint against the model. Disposing detaches the experts (they run here again) and
/// closes the connection.
/// </summary>
public sealed class ClusterConnection : IDisposable
{
    private readonly IHost _client;

    private ClusterConnection(ClusterConfig config, IHost client, ClusterSession session)
    {
        Config = config;
        _client = client;
        Session = session;
    }

    /// <summary>The configuration connected to.</summary>
    public ClusterConfig Config { get; }

    /// <summary>The attached model, its plan and the runners' counters.</summary>
    public ClusterSession Session { get; }

    /// <summary>Row bytes sent to the silos and received back, over every MoE layer, since attaching.</summary>
    public long Bytes => Session.Counters.BytesSent + Session.Counters.BytesReceived;

    /// <summary>Layer forwards in which some expert did not answer and the gate renormalised over the others.</summary>
    public long Degraded => Session.Counters.DegradedRuns;

    /// <summary>[L] routed experts of each MoE layer, the shape a plan must cover.</summary>
    public static int[] ExpertsPerLayer(MoeTransformer model)
    {
        ArgumentNullException.ThrowIfNull(model);
        var counts = new int[model.MoeLayers.Count];
        for (int l = 0; l < counts.Length; l++) counts[l] = model.MoeLayers[l].Bank.Experts;
        return counts;
    }

    /// <summary>Attaches <paramref name="model"/>, opened from <paramref name="checkpoint"/>, to the cluster of <paramref name="config"/>.</summary>
    public static async Task<ClusterConnection> Open(MoeTransformer model, string checkpoint, ClusterConfig config)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(config);
        config.CheckCheckpoint(checkpoint, "this process");
        var plan = config.PlanFor(ExpertsPerLayer(model));
        var client = await ClusterHosting.Connect(config);
        try
        {
            var options = new ClusterRunnerOptions { Bf16 = config.Transport == TransportDType.Bf16, Timeout = config.CallTimeout };
            var session = await model.AttachClusterAsync(client.Services.GetRequiredService<IClusterClient>(), plan, options);
            return new ClusterConnection(config, client, session);
        }
        catch (Exception e) when (e is TimeoutException or InvalidOperationException or Orleans.Runtime.OrleansException)
        {
            await ClusterHosting.Stop(client, TimeSpan.FromSeconds(5));
            client.Dispose();
            throw new IOException($"{config.Source}: the silos did not describe their shards: {e.Message.ReplaceLineEndings(" ")}", e);
        }
        catch
        {
            await ClusterHosting.Stop(client, TimeSpan.FromSeconds(5));
            client.Dispose();
            throw;
        }
    }

    /// <summary>Detaches the model and closes the connection.</summary>
    public void Dispose()
    {
        Session.Dispose();
        ClusterHosting.Stop(_client, TimeSpan.FromSeconds(5)).GetAwaiter().GetResult();
        _client.Dispose();
    }
}
