using System.Text.Json;
using MoeSharp.Cluster.Config;

namespace MoeSharp.Cluster.Planning;

/// <summary>
/// One expert shard: the routed experts of one MoE layer that travel together, and the silos holding a copy of
/// them. Replica r of the shard lives on <c>Silos[r]</c>. <see cref="Layer"/> counts MoE layers only (the model's
/// <c>MoeLayers</c> index), not Transformer blocks.
/// </summary>
/// <param name="Layer">The MoE layer, 0-based among the model's MoE layers.</param>
/// <param name="Shard">The shard's number inside its layer, unique per layer; with the layer, the grain's key.</param>
/// <param name="Experts">The experts the shard runs, ascending by convention (the plan keeps the given order).</param>
/// <param name="Silos">One silo index (into the cluster's silo list) per replica; at least one.</param>
public sealed record ShardPlacement(int Layer, int Shard, int[] Experts, int[] Silos);

/// <summary>
/// Where every routed expert of a model runs: a list of <see cref="ShardPlacement"/>s. An expert is replicated by
/// naming it in two shards of a layer (the planner's way: one shard per silo and layer, so each silo takes one call
/// per layer), or by giving its shard two silos. Immutable: a new placement is a new plan, swapped in whole.
/// JSON: <c>{"shards":[{"layer":0,"shard":0,"experts":[0,1],"silos":[0]}, …]}</c>.
/// </summary>
public sealed class PlacementPlan
{
    /// <summary>A plan of <paramref name="shards"/> (copied).</summary>
    public PlacementPlan(IEnumerable<ShardPlacement> shards)
    {
        ArgumentNullException.ThrowIfNull(shards);
        var list = new List<ShardPlacement>();
        foreach (var s in shards)
        {
            ArgumentNullException.ThrowIfNull(s);
            list.Add(s with { Experts = s.Experts.ToArray(), Silos = s.Silos.ToArray() });
        }
        Shards = list;
    }

    /// <summary>Every shard, in the order given.</summary>
    public IReadOnlyList<ShardPlacement> Shards { get; }

    /// <summary>One more than the largest layer any shard names; 0 for an empty plan.</summary>
    public int Layers
    {
        get
        {
            int n = 0;
            foreach (var s in Shards) n = Math.Max(n, s.Layer + 1);
            return n;
        }
    }

    /// <summary>The shards of <paramref name="layer"/>, in plan order.</summary>
    public IReadOnlyList<ShardPlacement> ShardsOf(int layer)
    {
        var list = new List<ShardPlacement>();
        foreach (var s in Shards)
            if (s.Layer == layer) list.Add(s);
        return list;
    }

    /// <summary>
    /// Every place expert <paramref name="expert"/> of <paramref name="layer"/> runs, as (shard, replica) pairs in
    /// plan order: what a runner picks from, round-robin, to spread a replicated expert's rows.
    /// </summary>
    public IReadOnlyList<(ShardPlacement Shard, int Replica)> Holders(int layer, int expert)
    {
        var list = new List<(ShardPlacement, int)>();
        foreach (var s in Shards)
            if (s.Layer == layer && Array.IndexOf(s.Experts, expert) >= 0)
                for (int r = 0; r < s.Silos.Length; r++) list.Add((s, r));
        return list;
    }

    /// <summary>
    /// One place per expert and silo: one shard per (layer, silo) holding the layer's experts in turn, expert e of
    /// every layer on silo e mod <paramref name="silos"/>; no replicas. The plan a cluster starts from before any
    /// routing statistics exist.
    /// </summary>
    public static PlacementPlan RoundRobin(IReadOnlyList<int> expertsPerLayer, int silos)
    {
        ArgumentNullException.ThrowIfNull(expertsPerLayer);
        if (silos < 1) throw new ArgumentException($"A plan needs at least one silo, got {silos}.", nameof(silos));
        var shards = new List<ShardPlacement>();
        for (int l = 0; l < expertsPerLayer.Count; l++)
        {
            for (int s = 0; s < silos; s++)
            {
                var experts = new List<int>();
                for (int e = s; e < expertsPerLayer[l]; e += silos) experts.Add(e);
                if (experts.Count > 0) shards.Add(new ShardPlacement(l, s, experts.ToArray(), [s]));
            }
        }
        return new PlacementPlan(shards);
    }

    /// <summary>
    /// Checks the plan against a model with <paramref name="expertsPerLayer"/>[l] routed experts in MoE layer l and a
    /// cluster of <paramref name="silos"/> silos; the first problem is an <see cref="InvalidDataException"/> of one
    /// line naming the shard and what was expected. <paramref name="source"/> (a file name) prefixes it.
    /// </summary>
    public void Validate(IReadOnlyList<int> expertsPerLayer, int silos, string source = "placement plan")
    {
        ArgumentNullException.ThrowIfNull(expertsPerLayer);
        var covered = new bool[expertsPerLayer.Count][];
        for (int l = 0; l < covered.Length; l++) covered[l] = new bool[expertsPerLayer[l]];
        var shardIds = new HashSet<(int, int)>();
        for (int i = 0; i < Shards.Count; i++)
        {
            var s = Shards[i];
            string at = $"{source}: shards[{i}] (layer {s.Layer}, shard {s.Shard})";
            if (s.Layer < 0 || s.Layer >= expertsPerLayer.Count)
                throw new InvalidDataException($"{at}: layer {s.Layer} is out of range; the model has {expertsPerLayer.Count} MoE layers (0..{expertsPerLayer.Count - 1}).");
            if (!shardIds.Add((s.Layer, s.Shard)))
                throw new InvalidDataException($"{at}: shard {s.Shard} of layer {s.Layer} is defined twice; shard numbers must be unique per layer.");
            if (s.Experts.Length == 0)
                throw new InvalidDataException($"{at}: the shard holds no expert.");
            if (s.Silos.Length == 0)
                throw new InvalidDataException($"{at}: the shard is on no silo; give at least one silo index.");
            var inShard = new HashSet<int>();
            foreach (int e in s.Experts)
            {
                if (e < 0 || e >= expertsPerLayer[s.Layer])
                    throw new InvalidDataException($"{at}: expert {e} is out of range; layer {s.Layer} has {expertsPerLayer[s.Layer]} experts (0..{expertsPerLayer[s.Layer] - 1}).");
                if (!inShard.Add(e))
                    throw new InvalidDataException($"{at}: expert {e} appears twice in the shard.");
                covered[s.Layer][e] = true;
            }
            var onSilo = new HashSet<int>();
            foreach (int silo in s.Silos)
            {
                if (silo < 0 || silo >= silos)
                    throw new InvalidDataException($"{at}: silo {silo} is out of range; the cluster has {silos} silos (0..{silos - 1}).");
                if (!onSilo.Add(silo))
                    throw new InvalidDataException($"{at}: silo {silo} is named twice; replicas of a shard go to different silos.");
            }
        }
        for (int l = 0; l < covered.Length; l++)
        {
            int missing = Array.IndexOf(covered[l], false);
            if (missing >= 0)
                throw new InvalidDataException($"{source}: expert {missing} of MoE layer {l} is in no shard; every routed expert needs at least one.");
        }
    }

    /// <summary>The plan as indented snake_case JSON (see the class summary).</summary>
    public string ToJson()
    {
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteStartArray("shards");
            foreach (var s in Shards)
            {
                w.WriteStartObject();
                w.WriteNumber("layer", s.Layer);
                w.WriteNumber("shard", s.Shard);
                w.WriteStartArray("experts");
                foreach (int e in s.Experts) w.WriteNumberValue(e);
                w.WriteEndArray();
                w.WriteStartArray("silos");
                foreach (int silo in s.Silos) w.WriteNumberValue(silo);
                w.WriteEndArray();
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        return System.Text.Encoding.UTF8.GetString(stream.ToArray());
    }

    /// <summary>Reads <see cref="ToJson"/>'s form; a malformed one is one line naming <paramref name="source"/> and the field.</summary>
    public static PlacementPlan FromJson(string json, string source = "placement plan")
    {
        using var doc = JsonFields.Parse(json, source);
        return Read(doc.RootElement, source);
    }

    /// <summary>Reads a plan object found at <paramref name="path"/> (a file name or a field path) inside a larger document.</summary>
    public static PlacementPlan Read(JsonElement element, string path)
    {
        var shards = new List<ShardPlacement>();
        int i = 0;
        foreach (var s in JsonFields.Array(element, "shards", path))
        {
            string at = $"{path}.shards[{i++}]";
            shards.Add(new ShardPlacement(
                JsonFields.Int(s, "layer", at), JsonFields.Int(s, "shard", at),
                JsonFields.Ints(s, "experts", at), JsonFields.Ints(s, "silos", at)));
        }
        return new PlacementPlan(shards);
    }
}
