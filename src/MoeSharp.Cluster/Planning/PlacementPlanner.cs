using MoeSharp.Cluster.Placement;

namespace MoeSharp.Cluster.Planning;

/// <summary>What the planner may use: the silos and how many experts of one layer each may hold.</summary>
public sealed record PlannerOptions
{
    /// <summary>Silos to place experts on.</summary>
    public required int Silos { get; init; }

    /// <summary>
    /// Experts of one layer a silo may hold (its memory for that layer), replicas included; 0 means
    /// ceil(E / Silos) + 1, which leaves at least one spare slot per silo for replicas.
    /// </summary>
    public int SlotsPerSilo { get; init; }

    /// <summary>Checks the fields; a bad one is an <see cref="ArgumentException"/> naming it.</summary>
    public void Validate()
    {
        if (Silos < 1) throw new ArgumentException($"PlannerOptions.Silos: expected at least 1, got {Silos}.");
        if (SlotsPerSilo < 0) throw new ArgumentException($"PlannerOptions.SlotsPerSilo: expected 0 (automatic) or a positive count, got {SlotsPerSilo}.");
    }
}

/// <summary>
/// A load-aware placement in the spirit of DeepSeek's expert-parallel load balancer (EPLB), layer by layer, since
/// every MoE layer waits for its slowest silo:
/// <list type="number">
/// <item>Replicate: while spare slots remain, give one more replica to the expert whose load per replica is the
/// highest, as long as that is above the mean load of an expert (a replica of an average expert balances
/// nothing) and the expert has fewer replicas than there are silos. A replicated expert's rows are split evenly
/// between its replicas.</item>
/// <item>Pack: take the replicas heaviest first and put each on the least-loaded silo that has a free slot and no
/// copy of that expert yet (greedy longest-processing-time), so cold experts fill in around the hot ones.</item>
/// </list>
/// Ties go to the lower expert, then the lower silo, so the same loads always give the same plan. Each layer's shards
/// are, in this order: for each silo, the experts it alone holds; then for each replicated expert, a shard of that
/// expert with one replica per silo holding it (the runner takes replicas in turn, so over many steps each replica
/// takes an even share). The runner groups a layer's shards by silo, so each silo still takes one call per layer.
/// </summary>
public static class PlacementPlanner
{
    /// <summary>The plan for the loads in <paramref name="load"/>; a layer that saw no token is packed by expert count alone.</summary>
    public static PlacementPlan Plan(ExpertLoad load, PlannerOptions options)
    {
        ArgumentNullException.ThrowIfNull(load);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var shards = new List<ShardPlan>();
        for (int l = 0; l < load.Layers; l++)
        {
            var held = PlanLayer(load.Of(l), options, l); // [S] experts on each silo
            var replicas = new int[load.Experts(l)];      // [E]
            foreach (var experts in held)
                foreach (int e in experts) replicas[e]++;
            int shard = 0;
            for (int s = 0; s < held.Length; s++)
            {
                var alone = new List<int>();
                foreach (int e in held[s])
                    if (replicas[e] == 1) alone.Add(e);
                alone.Sort();
                if (alone.Count > 0) shards.Add(new ShardPlan(l, shard++, [.. alone], [PlanFile.SiloName(s)]));
            }
            for (int e = 0; e < replicas.Length; e++)
            {
                if (replicas[e] < 2) continue;
                var silos = new List<string>();
                for (int s = 0; s < held.Length; s++)
                    if (held[s].Contains(e)) silos.Add(PlanFile.SiloName(s));
                shards.Add(new ShardPlan(l, shard++, [e], [.. silos]));
            }
        }
        return new PlacementPlan(shards);
    }

    /// <summary>
    /// [L, S] the load each silo is expected to take under <paramref name="plan"/> (silos named by
    /// <see cref="PlanFile.SiloName"/>, validated): an expert's tokens split evenly over its shard's replicas (the
    /// runner's round robin, over many steps).
    /// </summary>
    public static double[][] SiloLoads(PlacementPlan plan, ExpertLoad load, int silos)
    {
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentNullException.ThrowIfNull(load);
        var result = new double[load.Layers][];
        for (int l = 0; l < load.Layers; l++)
        {
            result[l] = new double[silos];
            var tokens = load.Of(l);
            var replicas = new int[tokens.Length]; // [E]
            foreach (var s in plan.ShardsOf(l))
                foreach (int e in s.Experts) replicas[e] += s.Silos.Length;
            foreach (var s in plan.ShardsOf(l))
                foreach (int e in s.Experts)
                    foreach (string silo in s.Silos) result[l][PlanFile.SiloIndex(silo)] += (double)tokens[e] / replicas[e];
        }
        return result;
    }

    /// <summary>The largest silo load over the mean silo load of one layer: 1 is perfect balance.</summary>
    public static double Imbalance(ReadOnlySpan<double> siloLoads)
    {
        double max = 0, sum = 0;
        foreach (double v in siloLoads)
        {
            max = Math.Max(max, v);
            sum += v;
        }
        return sum == 0 ? 1 : max / (sum / siloLoads.Length);
    }

    private static List<int>[] PlanLayer(ReadOnlySpan<long> tokens, PlannerOptions options, int layer)
    {
        int experts = tokens.Length, silos = options.Silos;
        int slots = options.SlotsPerSilo > 0 ? options.SlotsPerSilo : (experts + silos - 1) / silos + 1;
        if ((long)slots * silos < experts)
            throw new ArgumentException($"MoE layer {layer}: {experts} experts do not fit in {silos} silos × {slots} slots; raise PlannerOptions.SlotsPerSilo to at least {(experts + silos - 1) / silos}.");

        var load = new double[experts]; // [E]
        bool idle = true;
        for (int e = 0; e < experts; e++) idle &= tokens[e] == 0;
        double total = 0;
        for (int e = 0; e < experts; e++) total += load[e] = idle ? 1 : tokens[e];

        var replicas = new int[experts]; // [E]
        Array.Fill(replicas, 1);
        double expertMean = total / experts;
        for (int spare = slots * silos - experts; spare > 0; spare--)
        {
            int best = -1;
            for (int e = 0; e < experts; e++)
                if (replicas[e] < silos && (best < 0 || load[e] / replicas[e] > load[best] / replicas[best])) best = e;
            if (best < 0 || load[best] / replicas[best] <= expertMean) break;
            replicas[best]++;
        }

        // Replicas heaviest first; the sort key ties break by expert so the order never depends on the sort.
        var items = new List<(double Load, int Expert)>();
        for (int e = 0; e < experts; e++)
            for (int r = 0; r < replicas[e]; r++) items.Add((load[e] / replicas[e], e));
        items.Sort((a, b) => a.Load != b.Load ? b.Load.CompareTo(a.Load) : a.Expert.CompareTo(b.Expert));

        var held = new List<int>[silos]; // [S] experts on each silo
        var siloLoad = new double[silos]; // [S]
        for (int s = 0; s < silos; s++) held[s] = [];
        foreach (var (itemLoad, e) in items)
        {
            int target = -1;
            for (int s = 0; s < silos; s++)
                if (held[s].Count < slots && !held[s].Contains(e) && (target < 0 || siloLoad[s] < siloLoad[target])) target = s;
            // Every silo with a free slot already holds this expert: the replica is dropped and its load stays with
            // the copies already placed, which then take more than this plan's estimate. Heavy replicas go first,
            // so this happens only to the last, light ones.
            if (target < 0) continue;
            held[target].Add(e);
            siloLoad[target] += itemLoad;
        }
        return held;
    }
}
