using System.Buffers;
using MoeSharp.Formats;
using MoeSharp.Kernels;

namespace MoeSharp.Experts;

/// <summary>
/// Runs a bank's routed experts on rows already sorted by expert, wherever the experts live: in this process
/// (<see cref="LocalExpertRunner"/>) or on other machines (the cluster's runner). Set on
/// <see cref="ExpertBank.Runner"/>, it replaces the fused expert FFN in the MoE layer's forward; the layer still routes,
/// sorts and combines. Inference only: nothing is recorded for a backward.
/// </summary>
/// <remarks>Dimensions: R rows, D model width, E experts.</remarks>
public interface IExpertRunner
{
    /// <summary>
    /// Fills <paramref name="ys"/> [R,D] with each expert's FFN output (before gating) for the rows <paramref name="xs"/>
    /// [R,D], where expert e owns rows [<paramref name="expertOffsets"/>[e], <paramref name="expertOffsets"/>[e+1]) of the
    /// [E+1] offsets, and sets <paramref name="answered"/>[e] [E] (cleared by the caller) for each expert whose rows it
    /// filled. The rows of an expert left unanswered (its machine is down, late or wrong) are ignored by the combine.
    /// </summary>
    void Run(ExpertBank bank, ReadOnlySpan<float> xs, ReadOnlySpan<int> expertOffsets, Span<float> ys, Span<bool> answered);
}

/// <summary>
/// Runs the experts in this process with the kernels of the layer's own path: the blocked GEMMs of the fp32 expert FFN
/// over the arena, or the stored matrices' MatVec/MatMul per expert (paged ones pinned while they compute). Each row's
/// result is the fused path's bit for bit: a GEMM row does not depend on how many rows share the call, and the rows
/// are cut into the same blocks. A cluster silo runs its shard with it.
/// </summary>
/// <remarks>Dimensions: R rows, D model width, H expert width, E experts. Stateless, so one instance may serve every bank and thread.</remarks>
public sealed unsafe class LocalExpertRunner : IExpertRunner
{
    /// <summary>Rows per work item of the fp32 path: the fused op's RowBlock, so each item multiplies the same rows.</summary>
    private const int RowBlock = 512;

    /// <summary>The one instance; the runner keeps no state.</summary>
    public static LocalExpertRunner Instance { get; } = new();

    private LocalExpertRunner() { }

    /// <inheritdoc/>
    public void Run(ExpertBank bank, ReadOnlySpan<float> xs, ReadOnlySpan<int> expertOffsets, Span<float> ys, Span<bool> answered)
    {
        int d = bank.Dim, e = bank.Experts;
        if (expertOffsets.Length != e + 1 || expertOffsets[0] != 0)
            throw new ArgumentException($"ExpertBank {bank.Name}: {expertOffsets.Length} expert offsets starting at {(expertOffsets.IsEmpty ? 0 : expertOffsets[0])}; expected {e + 1} starting at 0.", nameof(expertOffsets));
        int rows = expertOffsets[e];
        if (xs.Length != rows * d || ys.Length != rows * d || answered.Length != e)
            throw new ArgumentException($"ExpertBank {bank.Name}: {rows} rows of width {d} need xs and ys of {rows * d} floats and {e} answer flags; got {xs.Length}, {ys.Length} and {answered.Length}.");
        for (int j = 0; j < e; j++)
            if (expertOffsets[j + 1] < expertOffsets[j])
                throw new ArgumentException($"ExpertBank {bank.Name}: expert offsets decrease at expert {j} ({expertOffsets[j]} then {expertOffsets[j + 1]}).", nameof(expertOffsets));
        if (rows > 0)
        {
            if (bank.IsStored) RunStored(bank, xs, expertOffsets, ys);
            else RunArena(bank, xs, expertOffsets, ys);
        }
        for (int j = 0; j < e; j++) answered[j] = true;
    }

    private static void RunArena(ExpertBank bank, ReadOnlySpan<float> xs, ReadOnlySpan<int> offsets, Span<float> ys)
    {
        int d = bank.Dim, h = bank.Hidden, e = bank.Experts, rows = offsets[e];
        int capacity = rows / RowBlock + e;
        var items = ArrayPool<(int Expert, int Row, int Count)>.Shared.Rent(capacity); // [≤ R/RowBlock + E]
        var g = ArrayPool<float>.Shared.Rent(rows * h);                                  // [R,H] w1 pre-activation
        var u = ArrayPool<float>.Shared.Rent(bank.W3 is null ? 0 : rows * h);           // [R,H] w3 branch
        var act = ArrayPool<float>.Shared.Rent(rows * h);                                // [R,H] activation, input of w2
        try
        {
            int n = 0;
            for (int j = 0; j < e; j++)
            {
                // The fused op's cut: ⌈load / RowBlock⌉ equal blocks, so each GEMM sees the rows it sees there.
                int start = offsets[j], load = offsets[j + 1] - start;
                int blocks = (load + RowBlock - 1) / RowBlock;
                for (int b = 0; b < blocks; b++)
                {
                    int r0 = start + (int)((long)load * b / blocks), r1 = start + (int)((long)load * (b + 1) / blocks);
                    items[n++] = (j, r0, r1 - r0);
                }
            }
            var b1 = bank.B1?.Value;
            var b3 = bank.B3?.Value;
            var b2 = bank.B2?.Value;
            fixed (float* pxs = xs, pys = ys, pg = g, pu = u, pact = act, pw1 = bank.W1.Value.Span, pw2 = bank.W2.Value.Span,
                   pw3 = bank.W3 is null ? default : bank.W3.Value.Span,
                   pb1 = b1 is null ? default : b1.Span, pb3 = b3 is null ? default : b3.Span, pb2 = b2 is null ? default : b2.Span)
                Workers.For(n, new ArenaItem(items, d, h, bank.Activation, bank.Clamp, pxs, pg, pu, pact, pys, pw1, pw3, pw2, pb1, pb3, pb2));
        }
        finally
        {
            ArrayPool<(int, int, int)>.Shared.Return(items);
            ArrayPool<float>.Shared.Return(g);
            ArrayPool<float>.Shared.Return(u);
            ArrayPool<float>.Shared.Return(act);
        }
    }

    /// <summary>One block of one expert's rows through W1 (and W3), the activation and W2, with the bank's biases.</summary>
    private readonly struct ArenaItem((int Expert, int Row, int Count)[] items, int d, int h, ExpertActivation activation, SwiGluClamp? clamp,
        float* xs, float* g, float* u, float* hact, float* ys, float* w1, float* w3, float* w2, float* b1, float* b3, float* b2) : IWorkItem
    {
        public void Invoke(int index)
        {
            var (e, r0, n) = items[index];
            ExpertBlock.Forward(e, n, d, h, activation, clamp, xs + (long)r0 * d, g + (long)r0 * h, u + (long)r0 * h, hact + (long)r0 * h,
                ys + (long)r0 * d, w1, w3, w2, b1, b3, b2);
        }
    }

    private static void RunStored(ExpertBank bank, ReadOnlySpan<float> xs, ReadOnlySpan<int> offsets, Span<float> ys)
    {
        int d = bank.Dim, h = bank.Hidden, e = bank.Experts;
        var w1 = bank.W1.Stored;
        var w3 = bank.W3?.Stored;
        var w2 = bank.W2.Stored;
        if (w1 is null || w2 is null || (bank.W3 is not null && w3 is null))
            throw new InvalidOperationException($"ExpertBank {bank.Name}: either every expert weight is stored or none is.");
        int most = 0;
        for (int j = 0; j < e; j++) most = Math.Max(most, offsets[j + 1] - offsets[j]);
        var b1 = bank.B1 is null ? default : bank.B1.Value.Span; // [E,H], empty without biases
        var b3 = bank.B3 is null ? default : bank.B3.Value.Span; // [E,H]
        var b2 = bank.B2 is null ? default : bank.B2.Value.Span; // [E,D]
        var gBuffer = ArrayPool<float>.Shared.Rent(most * h);   // [n,H] one expert's w1 pre-activation
        var uBuffer = ArrayPool<float>.Shared.Rent(most * h);   // [n,H] its w3 branch
        var aBuffer = ArrayPool<float>.Shared.Rent(most * h);   // [n,H] its activation
        try
        {
            for (int j = 0; j < e; j++)
            {
                int r0 = offsets[j], n = offsets[j + 1] - r0;
                if (n == 0) continue;
                var rx = xs.Slice(r0 * d, n * d);
                var rys = ys.Slice(r0 * d, n * d);
                var rg = gBuffer.AsSpan(0, n * h);
                var ract = aBuffer.AsSpan(0, n * h);
                // As the fused stored op: a paged expert stays pinned while it computes, one matrix product per expert.
                using var lease = bank.Paged is { } paged ? paged.Acquire(j) : default(ExpertLease?);
                var e1 = lease?.W1 ?? w1[j];
                var e3 = lease is { } l ? l.W3 : w3?[j];
                var e2 = lease?.W2 ?? w2[j];
                Multiply(e1, rx, rg, n);
                AddRows(rg, n, b1.IsEmpty ? default : b1.Slice(j * h, h));
                if (bank.Activation == ExpertActivation.SwiGlu)
                {
                    var ru = uBuffer.AsSpan(0, n * h);
                    Multiply(e3!, rx, ru, n);
                    AddRows(ru, n, b3.IsEmpty ? default : b3.Slice(j * h, h));
                    if (bank.Clamp is { } c) Activations.ClampedSwiGluForward(rg, ru, ract, c.Alpha, c.Limit);
                    else Activations.SwiGluForward(rg, ru, ract);
                }
                else
                {
                    Activations.GeluForward(rg, ract);
                }
                Multiply(e2, ract, rys, n);
                AddRows(rys, n, b2.IsEmpty ? default : b2.Slice(j * d, d));
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(gBuffer);
            ArrayPool<float>.Shared.Return(uBuffer);
            ArrayPool<float>.Shared.Return(aBuffer);
        }
    }

    /// <summary>y [n, rows] = x [n, cols] · Wᵀ: decode (n = 1) by MatVec, more rows by MatMul, as the fused stored op.</summary>
    private static void Multiply(QuantizedMatrix w, ReadOnlySpan<float> x, Span<float> y, int n)
    {
        if (n == 1) w.MatVec(x, y);
        else w.MatMul(x, y, n);
    }

    private static void AddRows(Span<float> rows, int n, ReadOnlySpan<float> bias)
    {
        if (bias.IsEmpty) return;
        int width = bias.Length;
        for (int r = 0; r < n; r++) TensorPrimitives.Add(rows.Slice(r * width, width), bias, rows.Slice(r * width, width));
    }
}
