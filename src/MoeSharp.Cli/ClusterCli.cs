using System.CommandLine;
using System.Globalization;
using MoeSharp.Cluster.Config;
using MoeSharp.Models;

namespace MoeSharp.Cli;

/// <summary>
/// <c>--cluster CONFIG</c> on the inference commands: the model's dense part runs in this process, its routed experts
/// on the silos the configuration lists (started with <c>moe silo</c>). Everything <see cref="ClusterConnection.Open"/>
/// checks is checked before the first token, each failure one line and exit code 2. When the command ends, one line
/// on stderr says what went over the network and whether any step was degraded.
/// </summary>
internal static class ClusterCli
{
    /// <summary>The option, null when absent.</summary>
    public static Option<FileInfo?> Option() => new("--cluster")
    {
        Description = "Run the routed experts on the silos of this cluster configuration file (see 'moe silo'); the dense part runs here.",
    };

    /// <summary>
    /// Attaches <paramref name="model"/>, opened from <paramref name="checkpoint"/>, to the cluster in
    /// <paramref name="file"/>. The silos run the experts as the checkpoint stores them, so a command's own weight
    /// options (<paramref name="quantize"/>, <paramref name="maxMemoryGb"/>) would make this process differ from them:
    /// refused, one line.
    /// </summary>
    public static Attached Attach(MoeTransformer model, string checkpoint, FileInfo file, MoeSharp.Formats.WeightFormat? quantize = null, double? maxMemoryGb = null)
    {
        if (quantize is not null || maxMemoryGb is not null)
            throw new ArgumentException($"--cluster: the silos run the experts as the checkpoint stores them; {(quantize is not null ? "--quantize" : "--max-memory")} does not reach them, so leave it out (quantize the checkpoint with 'moe quantize' instead).");
        return new(ClusterConnection.Open(model, checkpoint, ClusterConfig.Load(file.FullName)).GetAwaiter().GetResult());
    }

    /// <summary>The connection of one command; disposing it reports the counters and detaches.</summary>
    internal sealed class Attached(ClusterConnection connection) : IDisposable
    {
        public void Dispose()
        {
            var c = connection.Session.Counters;
            Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"cluster: {connection.Config.Silos.Count} silos, {c.Calls:N0} calls, {c.BytesSent:N0} bytes sent, {c.BytesReceived:N0} received ({connection.Config.Transport.ToString().ToLowerInvariant()}), {c.DegradedRuns} degraded layer steps{(c.LastFault is { } f ? $"; last fault: {f}" : "")}"));
            connection.Dispose();
        }
    }
}
