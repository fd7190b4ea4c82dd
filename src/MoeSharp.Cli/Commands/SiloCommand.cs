using System.CommandLine;
using System.Runtime.InteropServices;
using MoeSharp.Cluster.Config;
using MoeSharp.Cluster.Placement;
using MoeSharp.IO;

namespace MoeSharp.Cli.Commands;

/// <summary>
/// <c>moe silo</c>: one silo of an expert-parallel cluster, holding the expert shards its configuration's plan
/// places on it, until Ctrl-C or SIGTERM; or, with <c>--fingerprint</c>, the checkpoint fingerprint a configuration
/// file needs. The silo checks its checkpoint against the configuration before it listens.
/// </summary>
internal static class SiloCommand
{
    public static Command Create()
    {
        var cluster = new Option<FileInfo?>("--cluster") { Description = "The cluster configuration file (silos, checkpoint and its fingerprint, plan, transport, timeouts)." };
        var index = CliOptions.Optional("--index", 0, int.MaxValue, description: "Which silo of the configuration's list this process is (0-based).");
        var fingerprint = new Option<FileSystemInfo?>("--fingerprint") { Description = "Print the fingerprint of this checkpoint (model folder or GGUF file) for the configuration's \"fingerprint\" field, and exit." };
        var command = new Command("silo", "Run one silo of an expert-parallel cluster (Ctrl-C stops it), or print a checkpoint's fingerprint.")
        {
            cluster, index, fingerprint,
        };
        command.SetAction(p =>
        {
            if (p.GetValue(fingerprint) is { } checkpoint)
            {
                Console.WriteLine(CheckpointFingerprint.Of(checkpoint.FullName));
                return 0;
            }
            var file = p.GetValue(cluster) ?? throw new ArgumentException("moe silo: give --cluster CONFIG and --index I (or --fingerprint CHECKPOINT).");
            int i = p.GetValue(index) ?? throw new ArgumentException("moe silo: give --index I, the silo's place in the configuration's silo list.");
            var config = ClusterConfig.Load(file.FullName);
            if (i >= config.Silos.Count)
                throw new ArgumentException($"--index: silo {i} is out of range; {file.Name} lists {config.Silos.Count} silos (0..{config.Silos.Count - 1}).");
            string path = config.CheckpointOf(i);
            config.CheckCheckpoint(path, $"silo {i}");
            PlacementPlan plan;
            using (var model = ModelStore.Open(path, CliOptions.Inference(null, null))) plan = config.PlanFor(ClusterConnection.ExpertsPerLayer(model));
            return Run(config, i, plan).GetAwaiter().GetResult();
        });
        return command;
    }

    private static async Task<int> Run(ClusterConfig config, int index, PlacementPlan plan)
    {
        using var host = ClusterHosting.Silo(config, index, plan);
        var stop = new TaskCompletionSource();
        ConsoleCancelEventHandler onCancel = (_, e) =>
        {
            e.Cancel = true;
            stop.TrySetResult();
        };
        Console.CancelKeyPress += onCancel;
        using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c =>
        {
            c.Cancel = true;
            stop.TrySetResult();
        });
        try
        {
            await ClusterHosting.StartSilo(host, config, index);
            Console.Error.WriteLine($"silo {index} of {config.Silos.Count} at {config.Silos[index]} (gateway {config.Silos[index].GatewayPort}); Ctrl-C stops it");
            await stop.Task;
            await ClusterHosting.Stop(host, TimeSpan.FromSeconds(10));
            Console.Error.WriteLine("stopped");
            return 0;
        }
        finally
        {
            Console.CancelKeyPress -= onCancel;
        }
    }
}
