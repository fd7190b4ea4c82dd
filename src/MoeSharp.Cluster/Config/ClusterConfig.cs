using System.Net;
using System.Text.Json;
using MoeSharp.Cluster.Placement;
using MoeSharp.Cluster.Planning;

namespace MoeSharp.Cluster.Config;

/// <summary>How rows travel between the sequence's process and the silos: fp32, or bf16 for half the bytes.</summary>
public enum TransportDType
{
    /// <summary>4 bytes per element; results equal local inference.</summary>
    Fp32,
    /// <summary>2 bytes per element (round to nearest even); results within bf16's precision of local inference.</summary>
    Bf16,
}

/// <summary>
/// One silo of the cluster: where it listens for other silos (<see cref="Port"/>) and for clients
/// (<see cref="GatewayPort"/>), and, when its copy of the checkpoint lives elsewhere than the cluster's, where.
/// </summary>
public sealed record SiloEndpoint(string Host, int Port, int GatewayPort, string? Checkpoint = null)
{
    /// <summary>The silo-to-silo endpoint; <see cref="Host"/> is an IP address or a name resolved now.</summary>
    public IPEndPoint SiloEndpointAddress => new(Resolve(Host), Port);

    /// <summary>The client-to-silo (gateway) endpoint.</summary>
    public IPEndPoint GatewayEndpoint => new(Resolve(Host), GatewayPort);

    /// <summary>"host:port".</summary>
    public override string ToString() => $"{Host}:{Port}";

    private static IPAddress Resolve(string host)
    {
        if (IPAddress.TryParse(host, out var ip)) return ip;
        try
        {
            foreach (var a in Dns.GetHostAddresses(host))
                if (a.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork) return a;
        }
        catch (System.Net.Sockets.SocketException e)
        {
            throw new IOException($"silo host '{host}' does not resolve: {e.Message}", e);
        }
        throw new IOException($"silo host '{host}' has no IPv4 address.");
    }
}

/// <summary>
/// A cluster configuration file (<c>--cluster CONFIG</c>): the silos, which one is the primary (the membership
/// seed of Orleans' development clustering), the checkpoint every silo opens and its
/// <see cref="CheckpointFingerprint"/>, the placement plan, the transport dtype and the timeouts. Every silo and
/// client reads the same file. JSON, snake_case; relative paths are relative to the file's folder:
/// <code>
/// { "silos": [ { "host": "127.0.0.1", "port": 11111, "gateway_port": 30000 }, … ],
///   "primary": 0, "checkpoint": "model", "fingerprint": "sha256:…",
///   "plan": { "shards": [ … ] }   (or "plan": "plan.json"; absent: round robin),
///   "transport": "fp32", "call_timeout_ms": 30000, "connect_timeout_ms": 10000, "cluster_id": "moe" }
/// </code>
/// </summary>
public sealed record ClusterConfig
{
    /// <summary>The file this configuration came from (for messages), or "cluster config".</summary>
    public string Source { get; init; } = "cluster config";
    /// <summary>The silos, index i is silo i of the plan.</summary>
    public required IReadOnlyList<SiloEndpoint> Silos { get; init; }
    /// <summary>The silo the others join through.</summary>
    public int Primary { get; init; }
    /// <summary>The checkpoint (model folder or GGUF file), absolute.</summary>
    public required string Checkpoint { get; init; }
    /// <summary>What <see cref="CheckpointFingerprint.Of"/> gives for <see cref="Checkpoint"/>.</summary>
    public required string Fingerprint { get; init; }
    /// <summary>The plan as written (silos named by <see cref="PlanFile.SiloName"/>), or null for <see cref="PlanFile.RoundRobin"/> over the model's layers.</summary>
    public PlacementPlan? Plan { get; init; }
    /// <summary>Row transport.</summary>
    public TransportDType Transport { get; init; } = TransportDType.Fp32;
    /// <summary>How long one shard call may take before its experts count as not answering; Orleans' own default, so a slow prefill is not degraded by mistake.</summary>
    public TimeSpan CallTimeout { get; init; } = TimeSpan.FromSeconds(30);
    /// <summary>How long a client waits for a gateway before giving up.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(10);
    /// <summary>Orleans' cluster and service id; silos with different ids do not join.</summary>
    public string ClusterId { get; init; } = "moe";

    /// <summary>The checkpoint silo <paramref name="index"/> opens: its own when given, else the cluster's.</summary>
    public string CheckpointOf(int index) => Silos[index].Checkpoint ?? Checkpoint;

    /// <summary>Reads a configuration file; anything wrong is one line naming the file and the field.</summary>
    public static ClusterConfig Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"cluster config '{path}' does not exist.");
        return Parse(File.ReadAllText(path), path, Path.GetDirectoryName(Path.GetFullPath(path))!);
    }

    /// <summary>Reads configuration JSON; relative paths resolve against <paramref name="folder"/>.</summary>
    public static ClusterConfig Parse(string json, string source, string folder)
    {
        using var doc = JsonFields.Parse(json, source);
        var root = doc.RootElement;
        var silos = new List<SiloEndpoint>();
        int i = 0;
        foreach (var s in JsonFields.Array(root, "silos", source))
        {
            string at = $"{source}: silos[{i++}]";
            string host = JsonFields.String(s, "host", at);
            if (host.Length == 0) throw new InvalidDataException($"{at}.host: expected an IP address or host name, got \"\".");
            string? own = JsonFields.OptionalString(s, "checkpoint", at);
            silos.Add(new SiloEndpoint(host, JsonFields.Int(s, "port", at, 1, 65535), JsonFields.Int(s, "gateway_port", at, 1, 65535),
                own is null ? null : Path.GetFullPath(own, folder)));
        }
        if (silos.Count == 0) throw new InvalidDataException($"{source}: silos: expected at least one silo, got an empty list.");
        var taken = new HashSet<(string, int)>();
        for (int k = 0; k < silos.Count; k++)
            foreach (int port in (int[])[silos[k].Port, silos[k].GatewayPort])
                if (!taken.Add((silos[k].Host, port)))
                    throw new InvalidDataException($"{source}: silos[{k}]: {silos[k].Host}:{port} is used twice; every silo and gateway port on a host must differ.");

        int primary = JsonFields.OptionalInt(root, "primary", source, 0, 0, silos.Count - 1);
        string fingerprint = JsonFields.String(root, "fingerprint", source);
        if (!fingerprint.StartsWith("sha256:", StringComparison.Ordinal) || fingerprint.Length != 71)
            throw new InvalidDataException($"{source}.fingerprint: expected \"sha256:\" and 64 hex digits (as 'moe silo --fingerprint CHECKPOINT' prints), got \"{fingerprint}\".");

        PlacementPlan? plan = null;
        if (JsonFields.Optional(root, "plan", source) is { } p)
        {
            if (p.ValueKind == JsonValueKind.String)
            {
                string planPath = Path.GetFullPath(JsonFields.AsString(p, $"{source}.plan"), folder);
                if (!File.Exists(planPath)) throw new FileNotFoundException($"{source}.plan: plan file '{planPath}' does not exist.");
                plan = PlanFile.Read(File.ReadAllText(planPath), planPath);
            }
            else
            {
                plan = PlanFile.Read(p, $"{source}.plan");
            }
        }

        string transport = JsonFields.OptionalString(root, "transport", source) ?? "fp32";
        var dtype = transport switch
        {
            "fp32" => TransportDType.Fp32,
            "bf16" => TransportDType.Bf16,
            _ => throw new InvalidDataException($"{source}.transport: expected \"fp32\" or \"bf16\", got \"{transport}\"."),
        };
        return new ClusterConfig
        {
            Source = source,
            Silos = silos,
            Primary = primary,
            Checkpoint = Path.GetFullPath(JsonFields.String(root, "checkpoint", source), folder),
            Fingerprint = fingerprint,
            Plan = plan,
            Transport = dtype,
            CallTimeout = TimeSpan.FromMilliseconds(JsonFields.OptionalInt(root, "call_timeout_ms", source, 30_000, 1)),
            ConnectTimeout = TimeSpan.FromMilliseconds(JsonFields.OptionalInt(root, "connect_timeout_ms", source, 10_000, 1)),
            ClusterId = JsonFields.OptionalString(root, "cluster_id", source) ?? "moe",
        };
    }

    /// <summary>
    /// The plan to run for a model with <paramref name="expertsPerLayer"/>[l] routed experts in MoE layer l: the
    /// configured one, validated against the model and the silos (a plan that omits an expert is one line), or
    /// round robin when the file names none.
    /// </summary>
    public PlacementPlan PlanFor(IReadOnlyList<int> expertsPerLayer)
    {
        var plan = Plan ?? PlanFile.RoundRobin(expertsPerLayer, Silos.Count);
        PlanFile.Validate(plan, expertsPerLayer, Silos.Count, $"{Source}: plan");
        return plan;
    }

    /// <summary>
    /// Checks that <paramref name="checkpoint"/> (the copy this process opened) is the configured one: a mismatch is
    /// one line naming both fingerprints, so silos with different checkpoints never serve together.
    /// </summary>
    public void CheckCheckpoint(string checkpoint, string who)
    {
        string actual = CheckpointFingerprint.Of(checkpoint);
        if (actual != Fingerprint)
            throw new InvalidDataException($"{Source}: {who}'s checkpoint '{checkpoint}' has fingerprint {actual}, the configuration expects {Fingerprint}; every silo must open the same checkpoint.");
    }

    /// <summary>The configuration as JSON (the plan inline), readable by <see cref="Parse"/>.</summary>
    public string ToJson()
    {
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteStartArray("silos");
            foreach (var s in Silos)
            {
                w.WriteStartObject();
                w.WriteString("host", s.Host);
                w.WriteNumber("port", s.Port);
                w.WriteNumber("gateway_port", s.GatewayPort);
                if (s.Checkpoint is not null) w.WriteString("checkpoint", s.Checkpoint);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteNumber("primary", Primary);
            w.WriteString("checkpoint", Checkpoint);
            w.WriteString("fingerprint", Fingerprint);
            if (Plan is not null)
            {
                w.WritePropertyName("plan");
                using var plan = JsonDocument.Parse(PlanFile.Write(Plan));
                plan.RootElement.WriteTo(w);
            }
            w.WriteString("transport", Transport == TransportDType.Bf16 ? "bf16" : "fp32");
            w.WriteNumber("call_timeout_ms", (long)CallTimeout.TotalMilliseconds);
            w.WriteNumber("connect_timeout_ms", (long)ConnectTimeout.TotalMilliseconds);
            w.WriteString("cluster_id", ClusterId);
            w.WriteEndObject();
        }
        return System.Text.Encoding.UTF8.GetString(stream.ToArray());
    }
}
