using Microsoft.Extensions.Logging;
using MoeSharp.Models;

namespace MoeSharp.Server.Http;

/// <summary>Where <see cref="MoeServer"/> listens, whom it serves and what it accepts.</summary>
public sealed record ServerOptions
{
    /// <summary>The address to bind: an IP address, <c>localhost</c>, or <c>0.0.0.0</c> / <c>*</c> for every interface.</summary>
    public string Host { get; init; } = "127.0.0.1";

    /// <summary>The TCP port; 0 takes any free one (see <see cref="MoeServer.Address"/>).</summary>
    public int Port { get; init; } = 8080;

    /// <summary>When set, every request but <c>/health</c> needs <c>Authorization: Bearer</c> with this key.</summary>
    public string? ApiKey { get; init; }

    /// <summary>The largest request body accepted; a larger one is answered 413.</summary>
    public long MaxBodyBytes { get; init; } = 1 << 20;

    /// <summary>How long a shutdown waits for running requests to finish before it cuts them off.</summary>
    public TimeSpan DrainTimeout { get; init; } = TimeSpan.FromMinutes(2);

    /// <summary>
    /// Sampling for whatever a request leaves unset, and the threads of every forward pass; the seed aside: a request
    /// without one gets a fresh random seed.
    /// </summary>
    public SamplingOptions Sampling { get; init; } = SamplingOptions.Default;

    /// <summary>What the console log shows; <see cref="LogLevel.None"/> silences it.</summary>
    public LogLevel LogLevel { get; init; } = LogLevel.Warning;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first field out of range.</summary>
    public void Validate()
    {
        if (Host is not ("localhost" or "*" or "0.0.0.0") && !System.Net.IPAddress.TryParse(Host, out _))
            throw new ArgumentException($"host '{Host}' is not an IP address; expected one such as 127.0.0.1, or localhost, or 0.0.0.0 for every interface.", nameof(Host));
        if (Port is < 0 or > 65535) throw new ArgumentException($"Port must be in [0, 65535], got {Port}.", nameof(Port));
        if (ApiKey is { Length: 0 }) throw new ArgumentException("ApiKey is empty; leave it null to serve without a key.", nameof(ApiKey));
        if (MaxBodyBytes < 1) throw new ArgumentException($"MaxBodyBytes must be at least 1, got {MaxBodyBytes}.", nameof(MaxBodyBytes));
        if (DrainTimeout < TimeSpan.Zero) throw new ArgumentException($"DrainTimeout must not be negative, got {DrainTimeout}.", nameof(DrainTimeout));
        Sampling.Validate();
    }
}
