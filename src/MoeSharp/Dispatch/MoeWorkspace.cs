using MoeSharp.Autograd;

namespace MoeSharp.Dispatch;

/// <summary>
/// The index buffers of one sparse MoE forward, sized once for T tokens, E experts and P pairs: the counting sort
/// (expert offsets, row→pair, pair→row, row→token and the work items, in <see cref="Assignment"/>) and the
/// capacity scratch. The backward reads the assignment, so a workspace used by a recorded forward stays leased until
/// that tape's <see cref="Tape.Reset"/>; <see cref="Rent"/> hands out a free one or makes a new one.
/// </summary>
internal sealed class MoeWorkspace
{
    /// <summary>Leased workspaces a pool keeps: forwards recorded on one tape, or on tapes in flight, before a Reset.</summary>
    private const int MaxLeased = 4;

    private Tape? _tape;
    private long _generation;

    private MoeWorkspace(int tokens, int experts, int pairs)
    {
        Tokens = tokens;
        Experts = experts;
        Pairs = pairs;
        Assignment = new Assignment(experts, pairs);
        Kept = new int[pairs];
        Order = new int[pairs];
        Used = new int[experts];
    }

    /// <summary>Tokens T the buffers are sized for.</summary>
    public int Tokens { get; }

    /// <summary>Experts E the buffers are sized for.</summary>
    public int Experts { get; }

    /// <summary>Pairs P the buffers are sized for.</summary>
    public int Pairs { get; }

    /// <summary>The pairs sorted by expert, planned again on every use.</summary>
    public Assignment Assignment { get; }

    /// <summary>[P] each pair's expert after capacity, −1 when dropped.</summary>
    public int[] Kept { get; }

    /// <summary>[P] capacity scratch: pairs in the order they claim a slot.</summary>
    public int[] Order { get; }

    /// <summary>[E] capacity scratch: slots taken per expert.</summary>
    public int[] Used { get; }

    /// <summary>True while a recorded op of <see cref="_tape"/>'s current generation may still read the buffers.</summary>
    private bool Leased => _tape is not null && _tape.Generation == _generation;

    /// <summary>
    /// A workspace from <paramref name="pool"/> [≥ 0] that fits (T, E, P) and is not leased, else a new one added to the
    /// pool. When <paramref name="tape"/> records, the workspace is leased until its next Reset, since the backward
    /// reads it; otherwise it is free again as soon as the forward returns.
    /// </summary>
    public static MoeWorkspace Rent(ref MoeWorkspace[] pool, Tape tape, int tokens, int experts, int pairs)
    {
        MoeWorkspace? ws = null;
        foreach (var candidate in pool)
            if (!candidate.Leased && candidate.Tokens == tokens && candidate.Experts == experts && candidate.Pairs == pairs)
            {
                ws = candidate;
                break;
            }
        if (ws is null)
        {
            ws = new MoeWorkspace(tokens, experts, pairs);
            // Free workspaces of another shape go (a new batch size). Leased ones stay for reuse once their tape resets,
            // the newest few only: a tape dropped without Reset keeps its lease forever, and must not grow the pool.
            int leased = 0;
            foreach (var old in pool) if (old.Leased) leased++;
            int skip = Math.Max(0, leased - MaxLeased);
            var grown = new MoeWorkspace[leased - skip + 1];
            int i = 0;
            foreach (var old in pool)
                if (old.Leased && skip-- <= 0) grown[i++] = old;
            grown[i] = ws;
            pool = grown;
        }
        ws._tape = tape.IsRecording ? tape : null;
        ws._generation = tape.Generation;
        return ws;
    }
}
