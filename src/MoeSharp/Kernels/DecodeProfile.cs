using System.Diagnostics;

namespace MoeSharp.Kernels;

/// <summary>
/// Wall time of inference passes per op class, for the bench's <c>infer --profile</c>. The caller's thread charges
/// the time since its last mark to a section as the model walks through it; the stored matrix products and the
/// activation quantization inside a section are timed by themselves and charged to their own class, so a section's
/// own class gets only the rest (glue, norms, attention arithmetic, routing). Off by default, when every call is one
/// static read. Not thread-safe: profile one generation at a time.
/// </summary>
internal static class DecodeProfile
{
    /// <summary>The op classes, in the order they are printed.</summary>
    public enum Op
    {
        Embedding,
        Norms,
        AttentionProjections,
        AttentionCore,
        RouterDispatchCombine,
        ExpertMatVecs,
        Residual,
        LmHead,
        ActivationQuantize,
        Sampling,
        TapeReset,
        Count,
    }

    private static readonly long[] s_ticks = new long[(int)Op.Count]; // [ops]
    private static long s_last, s_nestedMatVec, s_nestedQuantize, s_waitTicks, s_loops;

    /// <summary>Whether the hooks record; set by the bench around the passes it profiles.</summary>
    public static bool Enabled { get; set; }

    /// <summary>Forgets everything recorded.</summary>
    public static void Reset()
    {
        Array.Clear(s_ticks);
        s_nestedMatVec = s_nestedQuantize = s_waitTicks = s_loops = 0;
        s_last = Stopwatch.GetTimestamp();
    }

    /// <summary>Starts the next section now, so what came before is charged nowhere.</summary>
    public static void Mark()
    {
        if (!Enabled) return;
        s_last = Stopwatch.GetTimestamp();
        s_nestedMatVec = s_nestedQuantize = 0;
    }

    /// <summary>
    /// Ends a section: the stored products timed inside it go to <paramref name="matVecs"/>, their activation
    /// quantization to <see cref="Op.ActivationQuantize"/>, the rest to <paramref name="own"/>.
    /// </summary>
    public static void Charge(Op own, Op matVecs)
    {
        if (!Enabled) return;
        long now = Stopwatch.GetTimestamp();
        s_ticks[(int)own] += now - s_last - s_nestedMatVec - s_nestedQuantize;
        s_ticks[(int)matVecs] += s_nestedMatVec;
        s_ticks[(int)Op.ActivationQuantize] += s_nestedQuantize;
        s_last = now;
        s_nestedMatVec = s_nestedQuantize = 0;
    }

    /// <summary>Ends a section that has no stored products of its own class.</summary>
    public static void Charge(Op own) => Charge(own, own);

    /// <summary>A stored product that ran from <paramref name="start"/>, its activation quantized by <paramref name="quantized"/>, until now.</summary>
    public static void Product(long start, long quantized)
    {
        if (!Enabled) return;
        long now = Stopwatch.GetTimestamp();
        s_nestedQuantize += quantized - start;
        s_nestedMatVec += now - quantized;
    }

    /// <summary>A parallel loop whose caller, done with its own items, waited <paramref name="ticks"/> for the helpers'.</summary>
    public static void Loop(long ticks)
    {
        if (!Enabled) return;
        s_waitTicks += ticks;
        s_loops++;
    }

    /// <summary>Seconds charged to <paramref name="op"/>.</summary>
    public static double Seconds(Op op) => s_ticks[(int)op] / (double)Stopwatch.Frequency;

    /// <summary>Seconds parallel loops' callers spent waiting for the helpers (inside the product classes).</summary>
    public static double WaitSeconds => s_waitTicks / (double)Stopwatch.Frequency;

    /// <summary>Parallel loops that ran on more than one thread.</summary>
    public static long Loops => s_loops;
}
