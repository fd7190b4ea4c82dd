using MoeSharp.Models;
using MoeSharp.Text;

namespace MoeSharp.Cli.Commands;

/// <summary>
/// Prints routing as <c>moe inspect</c> and <c>--show-routing</c> show it: one line per token with the routed experts
/// of each MoE block (<c>L{block}:[e,e]</c>), and the shared experts, which every token uses, once on a line of
/// their own.
/// </summary>
internal static class RoutingTable
{
    /// <summary>The architecture in one line: blocks, which are MoE, experts, top-k and shared experts.</summary>
    public static string Summary(ModelConfig c)
    {
        var moe = c.ResolvedMoe;
        if (moe is null) return $"{c.Preset}: {c.Layers} blocks, no MoE";
        var blocks = Enumerable.Range(0, c.Layers).Where(c.IsMoeLayer).ToArray();
        string shared = moe.SharedExperts == 0 ? "no shared experts"
            : $"{moe.SharedExperts} shared expert{(moe.SharedExperts == 1 ? "" : "s")} of width {moe.SharedHidden}{(moe.SharedGate ? " (sigmoid-gated)" : "")}";
        return $"{c.Preset}: {c.Layers} blocks, MoE in {string.Join(",", blocks)}; {moe.Experts} routed experts, top-{moe.TopK}; {shared}";
    }

    /// <summary>The shared experts line: "shared (every token): L0:[s0] L1:[s0]", or null when there are none.</summary>
    public static string? Shared(ModelConfig c)
    {
        var moe = c.ResolvedMoe;
        if (moe is null || moe.SharedExperts == 0) return null;
        string experts = string.Join(",", Enumerable.Range(0, moe.SharedExperts).Select(s => $"s{s}"));
        return "shared (every token): " + string.Join(" ", Enumerable.Range(0, c.Layers).Where(c.IsMoeLayer).Select(b => $"L{b}:[{experts}]"));
    }

    /// <summary>One token's line: its text (or id) and the routed experts of each MoE block in block order.</summary>
    public static string Line(string token, ModelConfig c, IReadOnlyList<int[]> experts)
    {
        var parts = new List<string>(experts.Count);
        int layer = 0;
        for (int block = 0; block < c.Layers && layer < experts.Count; block++)
            if (c.IsMoeLayer(block)) parts.Add($"L{block}:[{string.Join(",", experts[layer++])}]");
        return $"{token,-8} {string.Join("  ", parts)}";
    }

    /// <summary>Prints the prompt's routing: the shared line, then one line per prompt token.</summary>
    public static void PrintPrompt(MoeTransformer model, int[] ids, Func<int, string> show, int threads)
    {
        var trace = RoutingTrace.Of(model, ids, threads);
        if (Shared(model.Config) is { } shared) Console.WriteLine(shared);
        for (int t = 0; t < ids.Length; t++)
        {
            var experts = new int[trace.Count][];
            for (int l = 0; l < trace.Count; l++) experts[l] = trace[l].Experts[t];
            Console.WriteLine(Line(show(ids[t]), model.Config, experts));
        }
    }

    /// <summary>How a token appears in a table: its text with newlines escaped, or its id without a tokenizer.</summary>
    public static Func<int, string> Shower(HfTokenizer? tokenizer) =>
        tokenizer is null ? id => id.ToString(System.Globalization.CultureInfo.InvariantCulture)
            : id => "'" + tokenizer.Decode([id]).Replace("\n", "\\n", StringComparison.Ordinal) + "'";
}
