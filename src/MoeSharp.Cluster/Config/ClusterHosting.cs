using System.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using MoeSharp.Cluster.Placement;
using MoeSharp.Cluster.Planning;
using MoeSharp.Cluster.Shards;
using MoeSharp.IO;
using Orleans.Configuration;

namespace MoeSharp.Cluster.Config;

/// <summary>
/// Builds the two kinds of process a <see cref="ClusterConfig"/> describes: a silo (Orleans development clustering,
/// seeded by the primary silo, on the configured host and ports) and a client (static gateway list: every silo's
/// gateway). Starting either is bounded by <see cref="ClusterConfig.ConnectTimeout"/>, so an unreachable cluster is an
/// <see cref="IOException"/> of one line, never a hang. No logging provider is added: a silo prints only what its
/// command prints.
/// </summary>
public static class ClusterHosting
{
    /// <summary>
    /// The host of silo <paramref name="index"/>, not started, named <see cref="PlanFile.SiloName"/>(index) and
    /// serving the expert shards <paramref name="plan"/> places on it from its checkpoint, mapped in place. Check the
    /// checkpoint with <see cref="ClusterConfig.CheckCheckpoint"/> and the plan with <see cref="ClusterConfig.PlanFor"/> first.
    /// </summary>
    public static IHost Silo(ClusterConfig config, int index, PlacementPlan plan)
    {
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentNullException.ThrowIfNull(config);
        if ((uint)index >= (uint)config.Silos.Count)
            throw new ArgumentException($"silo index {index} is out of range; {config.Source} lists {config.Silos.Count} silos (0..{config.Silos.Count - 1}).");
        var me = config.Silos[index];
        var primary = config.Silos[config.Primary].SiloEndpointAddress;
        return new HostBuilder()
            .UseOrleans(silo =>
            {
                silo.UseDevelopmentClustering(primary);
                silo.ConfigureEndpoints(me.SiloEndpointAddress.Address, me.Port, me.GatewayPort, listenOnAnyHostAddress: false);
                silo.Configure<ClusterOptions>(o =>
                {
                    o.ClusterId = config.ClusterId;
                    o.ServiceId = config.ClusterId;
                });
                silo.Configure<SiloOptions>(o => o.SiloName = PlanFile.SiloName(index));
                silo.Configure<SiloMessagingOptions>(o => o.ResponseTimeout = config.CallTimeout);
                silo.AddExpertShards(new ShardHostOptions { Checkpoint = config.CheckpointOf(index), Load = new ModelLoadOptions { InPlace = true }, Plan = plan });
            })
            .Build();
    }

    /// <summary>
    /// Starts <paramref name="silo"/> within the connect timeout (a non-primary silo waits for the primary); a port
    /// in use or a primary that never answers is one line naming the silo.
    /// </summary>
    public static async Task StartSilo(IHost silo, ClusterConfig config, int index)
    {
        using var timeout = new CancellationTokenSource(config.ConnectTimeout);
        try
        {
            await silo.StartAsync(timeout.Token);
        }
        catch (OperationCanceledException e)
        {
            throw new IOException($"silo {index} ({config.Silos[index]}) did not join the cluster within {config.ConnectTimeout.TotalSeconds:0.#} s; is the primary silo {config.Primary} ({config.Silos[config.Primary]}) running?", e);
        }
        catch (Exception e) when (e is System.Net.Sockets.SocketException or Orleans.Runtime.OrleansException or InvalidOperationException)
        {
            throw new IOException($"silo {index} ({config.Silos[index]}) could not start: {e.Message.ReplaceLineEndings(" ")}", e);
        }
    }

    /// <summary>
    /// A started client connected to any of the silos' gateways, retrying until the connect timeout; after it, one
    /// line listing the gateways tried.
    /// </summary>
    public static async Task<IHost> Connect(ClusterConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        var clock = Stopwatch.StartNew();
        var host = new HostBuilder()
            .UseOrleansClient(client =>
            {
                var gateways = new System.Net.IPEndPoint[config.Silos.Count];
                for (int i = 0; i < gateways.Length; i++) gateways[i] = config.Silos[i].GatewayEndpoint;
                client.UseStaticClustering(gateways);
                client.Configure<ClusterOptions>(o =>
                {
                    o.ClusterId = config.ClusterId;
                    o.ServiceId = config.ClusterId;
                });
                client.Configure<ClientMessagingOptions>(o => o.ResponseTimeout = config.CallTimeout);
                // Silos may still be starting when the client does (a script starts them together): keep trying
                // until the deadline, then give up with the list of gateways.
                client.UseConnectionRetryFilter(async (_, token) =>
                {
                    if (clock.Elapsed >= config.ConnectTimeout) return false;
                    await Task.Delay(TimeSpan.FromMilliseconds(200), token);
                    return true;
                });
            })
            .Build();
        using var timeout = new CancellationTokenSource(config.ConnectTimeout + TimeSpan.FromSeconds(1));
        try
        {
            await host.StartAsync(timeout.Token);
            return host;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            host.Dispose();
            var tried = new List<string>();
            foreach (var s in config.Silos) tried.Add($"{s.Host}:{s.GatewayPort}");
            throw new IOException($"{config.Source}: no reachable silo within {config.ConnectTimeout.TotalSeconds:0.#} s (gateways tried: {string.Join(", ", tried)}).", e);
        }
    }

    /// <summary>Stops a started host within <paramref name="grace"/>, swallowing nothing but the stop's own timeout.</summary>
    public static async Task Stop(IHost host, TimeSpan grace)
    {
        ArgumentNullException.ThrowIfNull(host);
        using var timeout = new CancellationTokenSource(grace);
        try
        {
            await host.StopAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            // A peer that is already gone cannot acknowledge the goodbye; the process ends anyway.
        }
    }

    /// <summary>The client's grain factory, for the runner.</summary>
    public static IGrainFactory Grains(IHost client) => client.Services.GetRequiredService<IClusterClient>();
}
