using System.Globalization;
using System.Text.Json;
using MoeSharp.Cluster.Placement;

namespace MoeSharp.Cluster.Planning;

/// <summary>
/// A <see cref="PlacementPlan"/> as a cluster configuration holds it: silos by their index in the configuration's
/// silo list (in memory, silo i is named <see cref="SiloName"/>(i), the name <c>moe silo --index i</c> runs under),
/// checked against the model and the silo count with one line per problem.
/// JSON: <c>{"shards":[{"layer":0,"shard":0,"experts":[0,1],"silos":[0]}, {"layer":0,"shard":1,"experts":[2],"silos":[0,1]}, …]}</c>;
/// replica r of a shard lives on <c>silos[r]</c>, and an expert lives in one shard of its layer (replicate the shard
/// to replicate the expert).
/// </summary>
public static class PlanFile
{
    private const string Prefix = "silo";

    /// <summary>The Orleans silo name of the configuration's silo <paramref name="index"/>.</summary>
    public static string SiloName(int index) => Prefix + index.ToString(CultureInfo.InvariantCulture);

    /// <summary>The index of a silo named by <see cref="SiloName"/>, or −1 for any other name.</summary>
    public static int SiloIndex(string name) =>
        name.StartsWith(Prefix, StringComparison.Ordinal) && int.TryParse(name.AsSpan(Prefix.Length), NumberStyles.None, CultureInfo.InvariantCulture, out int i)
        && SiloName(i) == name ? i : -1;

    /// <summary>
    /// One shard per (layer, silo): expert e of every layer on silo e mod <paramref name="silos"/>, no replicas. The
    /// plan a cluster runs when its configuration names none.
    /// </summary>
    public static PlacementPlan RoundRobin(IReadOnlyList<int> expertsPerLayer, int silos)
    {
        ArgumentNullException.ThrowIfNull(expertsPerLayer);
        if (silos < 1) throw new ArgumentException($"A plan needs at least one silo, got {silos}.", nameof(silos));
        var shards = new List<ShardPlan>();
        for (int l = 0; l < expertsPerLayer.Count; l++)
            for (int s = 0; s < silos; s++)
            {
                var experts = new List<int>();
                for (int e = s; e < expertsPerLayer[l]; e += silos) experts.Add(e);
                if (experts.Count > 0) shards.Add(new ShardPlan(l, s, [.. experts], [SiloName(s)]));
            }
        return new PlacementPlan(shards);
    }

    /// <summary>
    /// Checks <paramref name="plan"/> against a model with <paramref name="expertsPerLayer"/>[l] routed experts in
    /// MoE layer l and a configuration of <paramref name="silos"/> silos; the first problem is an
    /// <see cref="InvalidDataException"/> of one line, prefixed by <paramref name="source"/>, naming the shard.
    /// </summary>
    public static void Validate(PlacementPlan plan, IReadOnlyList<int> expertsPerLayer, int silos, string source = "placement plan")
    {
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentNullException.ThrowIfNull(expertsPerLayer);
        var owner = new int[expertsPerLayer.Count][]; // [L][E_l] shard holding each expert, −1 none
        for (int l = 0; l < owner.Length; l++) owner[l] = Enumerable.Repeat(-1, expertsPerLayer[l]).ToArray();
        var shardIds = new HashSet<(int, int)>();
        for (int i = 0; i < plan.Shards.Length; i++)
        {
            var s = plan.Shards[i];
            string at = $"{source}: shards[{i}] (layer {s.Layer}, shard {s.Shard})";
            if (s.Layer < 0 || s.Layer >= expertsPerLayer.Count)
                throw new InvalidDataException($"{at}: layer {s.Layer} is out of range; the model has {expertsPerLayer.Count} MoE layers (0..{expertsPerLayer.Count - 1}).");
            if (!shardIds.Add((s.Layer, s.Shard)))
                throw new InvalidDataException($"{at}: shard {s.Shard} of layer {s.Layer} is defined twice; shard numbers must be unique per layer.");
            if (s.Experts is not { Length: > 0 })
                throw new InvalidDataException($"{at}: the shard holds no expert.");
            if (s.Silos is not { Length: > 0 })
                throw new InvalidDataException($"{at}: the shard is on no silo; give at least one silo index.");
            var inShard = new HashSet<int>();
            foreach (int e in s.Experts)
            {
                if (e < 0 || e >= expertsPerLayer[s.Layer])
                    throw new InvalidDataException($"{at}: expert {e} is out of range; layer {s.Layer} has {expertsPerLayer[s.Layer]} experts (0..{expertsPerLayer[s.Layer] - 1}).");
                if (!inShard.Add(e))
                    throw new InvalidDataException($"{at}: expert {e} appears twice in the shard.");
                ref int o = ref owner[s.Layer][e];
                if (o >= 0)
                    throw new InvalidDataException($"{at}: expert {e} is already in shard {o} of layer {s.Layer}; an expert lives in one shard, so replicate the shard (several silos) instead.");
                o = s.Shard;
            }
            var onSilo = new HashSet<string>(StringComparer.Ordinal);
            foreach (string name in s.Silos)
            {
                int silo = SiloIndex(name);
                if (silo < 0 || silo >= silos)
                    throw new InvalidDataException($"{at}: silo {(silo < 0 ? $"'{name}'" : silo.ToString(CultureInfo.InvariantCulture))} is out of range; the cluster has {silos} silos (0..{silos - 1}).");
                if (!onSilo.Add(name))
                    throw new InvalidDataException($"{at}: silo {silo} is named twice; replicas of a shard go to different silos.");
            }
        }
        for (int l = 0; l < owner.Length; l++)
        {
            int missing = Array.IndexOf(owner[l], -1);
            if (missing >= 0)
                throw new InvalidDataException($"{source}: expert {missing} of MoE layer {l} is in no shard; every routed expert needs one.");
        }
    }

    /// <summary>The plan as indented JSON, silos by index; a silo name not made by <see cref="SiloName"/> is an <see cref="ArgumentException"/>.</summary>
    public static string Write(PlacementPlan plan)
    {
        ArgumentNullException.ThrowIfNull(plan);
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteStartArray("shards");
            foreach (var s in plan.Shards)
            {
                w.WriteStartObject();
                w.WriteNumber("layer", s.Layer);
                w.WriteNumber("shard", s.Shard);
                w.WriteStartArray("experts");
                foreach (int e in s.Experts) w.WriteNumberValue(e);
                w.WriteEndArray();
                w.WriteStartArray("silos");
                foreach (string name in s.Silos)
                {
                    int i = SiloIndex(name);
                    if (i < 0) throw new ArgumentException($"Layer {s.Layer} shard {s.Shard}: silo '{name}' is not a configuration's silo name (silo0, silo1, …).", nameof(plan));
                    w.WriteNumberValue(i);
                }
                w.WriteEndArray();
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        return System.Text.Encoding.UTF8.GetString(stream.ToArray());
    }

    /// <summary>Reads <see cref="Write"/>'s form; a malformed one is one line naming <paramref name="source"/> and the field.</summary>
    public static PlacementPlan Read(string json, string source = "placement plan")
    {
        using var doc = JsonFields.Parse(json, source);
        return Read(doc.RootElement, source);
    }

    /// <summary>Reads a plan object found at <paramref name="path"/> (a file name or a field path) inside a larger document.</summary>
    public static PlacementPlan Read(JsonElement element, string path)
    {
        var shards = new List<ShardPlan>();
        int i = 0;
        foreach (var s in JsonFields.Array(element, "shards", path))
        {
            string at = $"{path}.shards[{i++}]";
            shards.Add(new ShardPlan(JsonFields.Int(s, "layer", at), JsonFields.Int(s, "shard", at),
                JsonFields.Ints(s, "experts", at), [.. JsonFields.Ints(s, "silos", at).Select(SiloName)]));
        }
        return new PlacementPlan(shards);
    }
}
