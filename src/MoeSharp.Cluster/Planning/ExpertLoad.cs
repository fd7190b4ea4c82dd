using MoeSharp.Routing;

namespace MoeSharp.Cluster.Planning;

/// <summary>
/// Tokens routed to each expert of each MoE layer, summed over a window of forward passes: what the planner
/// balances. Fed from <see cref="RoutingStats.TokensPerExpert"/> (one entry per MoE layer, in the model's
/// <c>MoeLayers</c> order) or from counts a runner keeps. Not thread-safe: one writer.
/// </summary>
public sealed class ExpertLoad
{
    private readonly long[][] _tokens; // [L][E_l]

    /// <summary>An empty window for a model with <paramref name="expertsPerLayer"/>[l] experts in MoE layer l.</summary>
    public ExpertLoad(IReadOnlyList<int> expertsPerLayer)
    {
        ArgumentNullException.ThrowIfNull(expertsPerLayer);
        _tokens = new long[expertsPerLayer.Count][];
        for (int l = 0; l < _tokens.Length; l++)
        {
            if (expertsPerLayer[l] < 1) throw new ArgumentException($"MoE layer {l} has {expertsPerLayer[l]} experts; expected at least 1.", nameof(expertsPerLayer));
            _tokens[l] = new long[expertsPerLayer[l]];
        }
    }

    /// <summary>MoE layers.</summary>
    public int Layers => _tokens.Length;

    /// <summary>Experts of MoE layer <paramref name="layer"/>.</summary>
    public int Experts(int layer) => _tokens[layer].Length;

    /// <summary>[E] tokens routed to each expert of <paramref name="layer"/> so far.</summary>
    public ReadOnlySpan<long> Of(int layer) => _tokens[layer];

    /// <summary>Adds one pass's counts for <paramref name="layer"/>.</summary>
    public void Add(int layer, ReadOnlySpan<int> tokensPerExpert)
    {
        if ((uint)layer >= (uint)_tokens.Length) throw new ArgumentOutOfRangeException(nameof(layer), $"MoE layer {layer} is out of range 0..{_tokens.Length - 1}.");
        var row = _tokens[layer];
        if (tokensPerExpert.Length != row.Length)
            throw new ArgumentException($"MoE layer {layer} has {row.Length} experts, the counts {tokensPerExpert.Length}.", nameof(tokensPerExpert));
        for (int e = 0; e < row.Length; e++) row[e] += tokensPerExpert[e];
    }

    /// <summary>Adds one forward pass's statistics, entry l for MoE layer l (as a model's <c>LmOutput.Moe</c> lists them).</summary>
    public void Add(IReadOnlyList<RoutingStats> perLayer)
    {
        ArgumentNullException.ThrowIfNull(perLayer);
        if (perLayer.Count != _tokens.Length) throw new ArgumentException($"Expected statistics for {_tokens.Length} MoE layers, got {perLayer.Count}.", nameof(perLayer));
        for (int l = 0; l < perLayer.Count; l++) Add(l, perLayer[l].TokensPerExpert);
    }

    /// <summary>Starts a new window.</summary>
    public void Clear()
    {
        foreach (var row in _tokens) Array.Clear(row);
    }
}
