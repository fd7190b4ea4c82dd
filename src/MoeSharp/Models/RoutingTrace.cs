using MoeSharp.Autograd;

namespace MoeSharp.Models;

/// <summary>
/// Which experts one MoE block used: per token the routed experts (best first) with their gate weights, and apart
/// from them the shared experts, which every token goes through.
/// </summary>
/// <param name="Block">The decoder block's index (dense blocks have no entry).</param>
/// <param name="Experts">Per token, the routed experts, in the router's order.</param>
/// <param name="Weights">Per token, the gate weight of each routed expert.</param>
/// <param name="SharedExperts">Always-on experts of the block; 0 when it has none.</param>
/// <param name="SharedGated">Whether the shared experts' output is scaled by a learned sigmoid gate (Qwen2-MoE).</param>
public sealed record BlockRouting(int Block, int[][] Experts, float[][] Weights, int SharedExperts, bool SharedGated);

/// <summary>The routing of a whole prompt in one forward pass, for <c>moe inspect</c> and <c>--show-routing</c>.</summary>
public static class RoutingTrace
{
    /// <summary>Runs <paramref name="ids"/> through <paramref name="model"/> (no gradients) and returns each MoE block's routing.</summary>
    public static IReadOnlyList<BlockRouting> Of(MoeTransformer model, int[] ids, int? threads = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(ids);
        if (ids.Length == 0) throw new ArgumentException("the prompt is empty; routing needs at least one token.", nameof(ids));
        if (ids.Length > model.Config.Context) throw new ArgumentException($"the prompt has {ids.Length} tokens; the model's context is {model.Config.Context}.", nameof(ids));
        foreach (int id in ids)
            if ((uint)id >= (uint)model.Config.Vocab) throw new ArgumentException($"token id {id} is outside the vocabulary [0, {model.Config.Vocab}).", nameof(ids));
        var tape = new Tape();
        LmOutput output;
        using (Kernels.Workers.Limit(threads ?? Environment.ProcessorCount))
        using (tape.NoGrad())
            output = model.Forward(tape, ids, model.NewCache(ids.Length));
        var moe = model.Config.ResolvedMoe;
        var blocks = new List<BlockRouting>(output.Moe.Count);
        int next = 0;
        for (int block = 0; block < model.Config.Layers; block++)
        {
            if (!model.Config.IsMoeLayer(block)) continue;
            var r = output.Moe[next++].Routing;
            var experts = new int[ids.Length][];
            var weights = new float[ids.Length][];
            for (int t = 0; t < ids.Length; t++)
            {
                int from = r?.TokenOffsets[t] ?? 0, to = r?.TokenOffsets[t + 1] ?? 0;
                experts[t] = r is null ? [] : r.PairExpert[from..to];
                weights[t] = r is null ? [] : r.Weights.Span[from..to].ToArray();
            }
            blocks.Add(new BlockRouting(block, experts, weights, moe!.SharedExperts, moe.SharedGate));
        }
        return blocks;
    }
}
