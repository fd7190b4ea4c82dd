using MoeSharp.Models;

namespace MoeSharp.Server.Generation;

/// <summary>
/// How many generated tokens each routed expert of each MoE block took, counted over everything a model served.
/// The counts are of routed slots: a block with top-k routing adds k per token. Safe to update from many requests.
/// </summary>
public sealed class ExpertLoad
{
    private readonly long[] _counts; // [M, E], M the MoE blocks in order
    private long _tokens;

    /// <summary>Counters for the MoE blocks of a model with <paramref name="config"/>.</summary>
    public ExpertLoad(ModelConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        var blocks = new List<int>();
        for (int b = 0; b < config.Layers; b++)
            if (config.IsMoeLayer(b)) blocks.Add(b);
        Blocks = blocks;
        Experts = config.ResolvedMoe?.Experts ?? 0;
        _counts = new long[blocks.Count * Experts];
    }

    /// <summary>The block index of each MoE block, in order.</summary>
    public IReadOnlyList<int> Blocks { get; }

    /// <summary>Routed experts per MoE block.</summary>
    public int Experts { get; }

    /// <summary>Tokens counted.</summary>
    public long Tokens => Interlocked.Read(ref _tokens);

    /// <summary>The routed slots expert <paramref name="expert"/> of the <paramref name="moeBlock"/>-th MoE block took.</summary>
    public long Count(int moeBlock, int expert) => Interlocked.Read(ref _counts[moeBlock * Experts + expert]);

    /// <summary>Counts one token's routing: its experts in each MoE block, as <see cref="GeneratedToken.Experts"/> gives them.</summary>
    public void Add(IReadOnlyList<int[]> experts)
    {
        ArgumentNullException.ThrowIfNull(experts);
        int blocks = Math.Min(experts.Count, Blocks.Count);
        for (int m = 0; m < blocks; m++)
            foreach (int e in experts[m])
                if ((uint)e < (uint)Experts) Interlocked.Increment(ref _counts[m * Experts + e]);
        Interlocked.Increment(ref _tokens);
    }
}
