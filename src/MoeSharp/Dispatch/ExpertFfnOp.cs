using MoeSharp.Autograd;
using MoeSharp.Experts;
using MoeSharp.Kernels;
using MoeSharp.Tensors;

namespace MoeSharp.Dispatch;

/// <summary>
/// The fused sparse expert FFN: gather each expert's rows, run the grouped GEMMs over the stacked weights, and
/// combine y[t] = Σ_pairs w·expert(x[t]). The bank's options switch on per-expert biases (added after each GEMM, B2
/// before the gate weight as GPT-OSS does) and the clamped SwiGLU (<see cref="SwiGluClamp"/>).
/// </summary>
/// <remarks>
/// Dimensions: T tokens, D model width, H expert width, E experts, P (token, expert) pairs, R placed rows.
/// Forward work items are (expert, block of <see cref="RowBlock"/> sorted rows), so a skewed load still spreads
/// over every thread and an empty expert costs nothing. The combine runs per token, summing its pairs in order,
/// which makes the scatter race-free and the result independent of the thread count. The backward runs the same
/// path in reverse: the combine's adjoint gathers dy, row blocks give dx rows and the activation gradients, and
/// weight gradients are split over (expert, column block) so each dW element has one writer.
/// </remarks>
internal static unsafe class ExpertFfnOp
{
    /// <summary>Sorted rows per forward work item.</summary>
    public const int RowBlock = 512;

    /// <summary>Widest and narrowest columns of H per weight-gradient work item.</summary>
    private const int MaxColumnBlock = 512, MinColumnBlock = 128;

    /// <summary>Weight-gradient work items wanted per thread, so that uneven expert loads still balance.</summary>
    private const int ColumnItemsPerThread = 4;

    /// <summary>A fixed column block for `moe-ab --ab columns`; 0 lets <see cref="ColumnBlockFor"/> choose.</summary>
    internal static int ColumnBlockOverride { get; set; }

    /// <summary>
    /// Columns of H per weight-gradient item: the widest power of two from <see cref="MaxColumnBlock"/> down to
    /// <see cref="MinColumnBlock"/> that still gives every thread <see cref="ColumnItemsPerThread"/> items. Each item
    /// packs its expert's Xs and dYsᵀ again, so fewer, wider items pack less (E=64 fwd+bwd, 1 thread, caller CPU:
    /// 512 columns 526 ms against 128 columns 541 ms). Every dW element is summed whole by one item in the same
    /// order whatever the block, so the choice never changes a bit.
    /// </summary>
    private static int ColumnBlockFor(Assignment a, int h)
    {
        if (ColumnBlockOverride > 0) return ColumnBlockOverride;
        int used = 0;
        for (int e = 0; e < a.Experts; e++) if (a.Load(e) > 0) used++;
        int want = ColumnItemsPerThread * Workers.Threads, block = MaxColumnBlock;
        while (block > MinColumnBlock && (long)used * ((h + block - 1) / block) < want) block /= 2;
        return block;
    }

    /// <summary>y [T,D] = Σ over each token's pairs of weight·expert(x); weights [P] may carry gradients (the router's).</summary>
    public static Tensor ExpertFfn(this Tape tape, Tensor x, Assignment a, Tensor weights, ExpertBank bank)
    {
        int d = bank.Dim, h = bank.Hidden;
        Shapes.LastDim("ExpertFfn", x, d, "input");
        if (x.RowCount != a.Tokens) throw new ArgumentException($"ExpertFfn: input {Shapes.Format(x.Shape)} has {x.RowCount} rows; the assignment has {a.Tokens} tokens.");
        if (weights.Length != a.Pairs) throw new ArgumentException($"ExpertFfn: {weights.Length} gate weights for {a.Pairs} pairs.");
        if (a.Experts != bank.Experts) throw new ArgumentException($"ExpertFfn: the assignment has {a.Experts} experts; the bank has {bank.Experts}.");
        var w1 = bank.W1.Value;
        var w3 = bank.W3?.Value;
        var w2 = bank.W2.Value;
        var b1 = bank.B1?.Value;
        var b3 = bank.B3?.Value;
        var b2 = bank.B2?.Value;
        bool tracked = tape.IsRecording && (x.RequiresGrad || weights.RequiresGrad || w1.RequiresGrad || w2.RequiresGrad || w3 is { RequiresGrad: true }
            || b1 is { RequiresGrad: true } || b3 is { RequiresGrad: true } || b2 is { RequiresGrad: true });
        int rows = Math.Max(1, a.Placed);
        var s = new Saved
        {
            X = x, A = a, Weights = weights, Bank = bank,
            Xs = tape.Allocate(rows, d),                         // [R,D] gathered inputs
            G = tape.Allocate(rows, h),                          // [R,H] w1 pre-activation
            U = w3 is null ? null : tape.Allocate(rows, h),      // [R,H] w3 branch
            Act = tape.Allocate(rows, h),                        // [R,H] activation, input of w2
            Ys = tape.Allocate(rows, d),                         // [R,D] expert outputs, before gating
        };
        var y = tape.Output(tracked, x.RowCount, d);
        fixed (float* px = x.Span, pxs = s.Xs.Span, pg = s.G.Span, pu = s.U is null ? default : s.U.Span, pact = s.Act.Span, pys = s.Ys.Span,
               pw1 = w1.Span, pw3 = w3 is null ? default : w3.Span, pw2 = w2.Span, pwt = weights.Span, py = y.Span,
               pb1 = b1 is null ? default : b1.Span, pb3 = b3 is null ? default : b3.Span, pb2 = b2 is null ? default : b2.Span)
        {
            var biases = new Biases(pb1, pb3, pb2);
            Workers.For(a.RowItemCount, new ForwardItem(a, d, h, bank.Activation, bank.Clamp, px, pxs, pg, pu, pact, pys, pw1, pw3, pw2, biases));
            Workers.For(a.Tokens, new CombineItem(a, d, pys, pwt, py));
        }
        if (tracked) tape.Record(new ExpertFfnNode(y, s));
        return y;
    }

    private sealed class Saved
    {
        public required Tensor X, Weights, Xs, G, Act, Ys;
        public required Tensor? U;
        public required Assignment A;
        public required ExpertBank Bank;
    }

    /// <summary>The bank's biases, B1 and B3 [E,H] and B2 [E,D]; each null when the bank has none.</summary>
    private readonly struct Biases(float* b1, float* b3, float* b2)
    {
        public readonly float* B1 = b1, B3 = b3, B2 = b2;
    }

    /// <summary>Adds the column sums of <paramref name="n"/> rows [n, width] (leading dimension <paramref name="ld"/>) into <paramref name="sum"/>.</summary>
    private static void SumRows(float* rows, int n, int ld, float* sum, int width)
    {
        var acc = new Span<float>(sum, width);
        for (int r = 0; r < n; r++) TensorPrimitives.Add(acc, new ReadOnlySpan<float>(rows + (long)r * ld, width), acc);
    }

    private readonly struct ForwardItem(Assignment a, int d, int h, ExpertActivation act, SwiGluClamp? clamp,
        float* x, float* xs, float* g, float* u, float* hact, float* ys, float* w1, float* w3, float* w2, Biases b) : IWorkItem
    {
        public void Invoke(int index)
        {
            var (e, r0, n) = a.RowItems[index];
            for (int r = r0; r < r0 + n; r++)
                new ReadOnlySpan<float>(x + (long)a.RowToken[r] * d, d).CopyTo(new Span<float>(xs + (long)r * d, d));
            ExpertBlock.Forward(e, n, d, h, act, clamp, xs + (long)r0 * d, g + (long)r0 * h, u + (long)r0 * h, hact + (long)r0 * h,
                ys + (long)r0 * d, w1, w3, w2, b.B1, b.B3, b.B2);
        }
    }

    private readonly struct CombineItem(Assignment a, int d, float* ys, float* weights, float* y) : IWorkItem
    {
        public void Invoke(int t) =>
            a.CombineToken(t, new ReadOnlySpan<float>(ys, Math.Max(1, a.Placed) * d), new ReadOnlySpan<float>(weights, a.Pairs), new Span<float>(y + (long)t * d, d));
    }

    private sealed class ExpertFfnNode(Tensor y, Saved s) : Node(y)
    {
        public override string Op => "ExpertFfn";

        internal override void Backward(Tape tape)
        {
            var a = s.A;
            var bank = s.Bank;
            int d = bank.Dim, h = bank.Hidden, rows = Math.Max(1, a.Placed);
            var w1 = bank.W1.Value;
            var w3 = bank.W3?.Value;
            var w2 = bank.W2.Value;
            var dys = tape.Allocate(rows, d);            // [R,D] gate-weighted upstream rows
            var dact = tape.Allocate(rows, h);           // [R,H] gradient of the activation output
            var dg = tape.AllocateZeroed(rows, h);       // [R,H] gradient of G
            var du = w3 is null ? null : tape.AllocateZeroed(rows, h); // [R,H] gradient of U
            var dxs = tape.Allocate(rows, d);            // [R,D] gradient of gathered inputs
            var dweights = s.Weights.RequiresGrad ? tape.GradOf(s.Weights) : default;
            fixed (float* pdy = Output.Grad!.Span, pys = s.Ys.Span, pwt = s.Weights.Span, pdys = dys.Span, pdact = dact.Span, pdg = dg.Span,
                   pdu = du is null ? default : du.Span, pdxs = dxs.Span, pg = s.G.Span, pu = s.U is null ? default : s.U.Span,
                   pact = s.Act.Span, pxs = s.Xs.Span, pw1 = w1.Span, pw3 = w3 is null ? default : w3.Span, pw2 = w2.Span,
                   pdw = dweights)
            {
                var rowsItem = new BackwardRows(a, d, h, bank.Activation, bank.Clamp, pdy, pys, pwt, pdw, pdys, pdact, pdg, pdu, pdxs, pg, pu, pw1, pw3, pw2);
                Workers.For(a.RowItemCount, rowsItem);
                var b1 = bank.B1?.Value;
                var b3 = bank.B3?.Value;
                var b2 = bank.B2?.Value;
                if (w1.RequiresGrad || w2.RequiresGrad || w3 is { RequiresGrad: true }
                    || b1 is { RequiresGrad: true } || b3 is { RequiresGrad: true } || b2 is { RequiresGrad: true })
                {
                    int columns = a.PlanColumns(h, ColumnBlockFor(a, h));
                    // A lazily zeroed weight gradient is overwritten: the first k block of each product stores, and the
                    // experts that got no rows are cleared here, so no pass over every expert's gradient is needed.
                    var overwrite = new Overwrite(w1.RequiresGrad && bank.W1.TakeStaleGrad(), w3 is { RequiresGrad: true } && bank.W3!.TakeStaleGrad(),
                        w2.RequiresGrad && bank.W2.TakeStaleGrad());
                    fixed (float* gw1 = w1.RequiresGrad ? tape.GradOf(w1) : default, gw2 = w2.RequiresGrad ? tape.GradOf(w2) : default,
                           gw3 = w3 is { RequiresGrad: true } ? tape.GradOf(w3) : default,
                           gb1 = b1 is { RequiresGrad: true } ? tape.GradOf(b1) : default, gb3 = b3 is { RequiresGrad: true } ? tape.GradOf(b3) : default,
                           gb2 = b2 is { RequiresGrad: true } ? tape.GradOf(b2) : default)
                    {
                        long size = (long)h * d; // elements of one expert's W1, W3 or W2
                        for (int e = 0; e < a.Experts; e++)
                        {
                            if (a.Load(e) > 0) continue;
                            if (overwrite.W1) new Span<float>(gw1 + e * size, (int)size).Clear();
                            if (overwrite.W3) new Span<float>(gw3 + e * size, (int)size).Clear();
                            if (overwrite.W2) new Span<float>(gw2 + e * size, (int)size).Clear();
                        }
                        Workers.For(columns, new WeightGradients(a, d, h, pdys, pdg, pdu, pact, pxs, gw1, gw3, gw2, new Biases(gb1, gb3, gb2), overwrite));
                    }
                }
                if (s.X.RequiresGrad)
                    fixed (float* pdx = tape.GradOf(s.X))
                        Workers.For(a.Tokens, new ScatterRows(a, d, pdxs, pdx));
            }
        }
    }

    /// <summary>Per row block: dYs = w·dy[token], dw = dy[token]·Ys, then back through W2, the activation, W1 and W3.</summary>
    private readonly struct BackwardRows(Assignment a, int d, int h, ExpertActivation act, SwiGluClamp? clamp,
        float* dy, float* ys, float* weights, float* dweights, float* dys, float* dact, float* dg, float* du, float* dxs,
        float* g, float* u, float* w1, float* w3, float* w2) : IWorkItem
    {
        public void Invoke(int index)
        {
            var (e, r0, n) = a.RowItems[index];
            for (int r = r0; r < r0 + n; r++)
            {
                int p = a.RowPair[r];
                var dyt = new ReadOnlySpan<float>(dy + (long)a.RowToken[r] * d, d);
                if (dweights != null) dweights[p] += TensorPrimitives.Dot(dyt, new ReadOnlySpan<float>(ys + (long)r * d, d));
                TensorPrimitives.Multiply(dyt, weights[p], new Span<float>(dys + (long)r * d, d));
            }
            long eh = (long)e * h * d;
            float* rdys = dys + (long)r0 * d, rdact = dact + (long)r0 * h, rdg = dg + (long)r0 * h, rdxs = dxs + (long)r0 * d;
            Gemm.MultiplyCore(rdys, d, false, w2 + (long)e * d * h, h, false, rdact, h, n, h, d, false, false); // dAct = dYs·W2
            var dActs = new ReadOnlySpan<float>(rdact, n * h);
            var gs = new ReadOnlySpan<float>(g + (long)r0 * h, n * h);
            var dgs = new Span<float>(rdg, n * h);
            if (act == ExpertActivation.SwiGlu)
            {
                float* rdu = du + (long)r0 * h;
                var us = new ReadOnlySpan<float>(u + (long)r0 * h, n * h);
                if (clamp is { } c) Activations.ClampedSwiGluBackward(dActs, gs, us, dgs, new Span<float>(rdu, n * h), c.Alpha, c.Limit);
                else Activations.SwiGluBackward(dActs, gs, us, dgs, new Span<float>(rdu, n * h));
                Gemm.MultiplyCore(rdg, h, false, w1 + eh, d, false, rdxs, d, n, d, h, false, false); // dXs = dG·W1
                Gemm.MultiplyCore(rdu, h, false, w3 + eh, d, false, rdxs, d, n, d, h, true, false);  //     + dU·W3
            }
            else
            {
                Activations.GeluBackward(dActs, gs, dgs);
                Gemm.MultiplyCore(rdg, h, false, w1 + eh, d, false, rdxs, d, n, d, h, false, false);
            }
        }
    }

    /// <summary>
    /// Per (expert, H block): dW1[e, hb, :] += dGᵀ·Xs (= when overwriting), dW3 likewise, dW2[e, :, hb] += dYsᵀ·Act, dB1[e, hb] and dB3[e, hb]
    /// += column sums of dG and dU, over all of e's rows; dB2[e] += column sums of dYs by the item of e's first block,
    /// so each bias element has one writer too.
    /// </summary>
    private readonly struct WeightGradients(Assignment a, int d, int h,
        float* dys, float* dg, float* du, float* hact, float* xs, float* gw1, float* gw3, float* gw2, Biases gb, Overwrite overwrite) : IWorkItem
    {
        public void Invoke(int index)
        {
            var (e, c0, nc) = a.ColumnItems[index];
            int r0 = a.ExpertOffsets[e], n = a.Load(e);
            long eh = (long)e * h * d;
            if (gw1 != null)
                Gemm.MultiplyCore(dg + (long)r0 * h + c0, h, true, xs + (long)r0 * d, d, false, gw1 + eh + (long)c0 * d, d, nc, d, n, !overwrite.W1, false);
            if (gw3 != null)
                Gemm.MultiplyCore(du + (long)r0 * h + c0, h, true, xs + (long)r0 * d, d, false, gw3 + eh + (long)c0 * d, d, nc, d, n, !overwrite.W3, false);
            if (gw2 != null)
                Gemm.MultiplyCore(dys + (long)r0 * d, d, true, hact + (long)r0 * h + c0, h, false, gw2 + (long)e * d * h + c0, h, d, nc, n, !overwrite.W2, false);
            if (gb.B1 != null) SumRows(dg + (long)r0 * h + c0, n, h, gb.B1 + (long)e * h + c0, nc);
            if (gb.B3 != null) SumRows(du + (long)r0 * h + c0, n, h, gb.B3 + (long)e * h + c0, nc);
            if (gb.B2 != null && c0 == 0) SumRows(dys + (long)r0 * d, n, d, gb.B2 + (long)e * d, d);
        }
    }

    /// <summary>Which weight gradients the backward writes instead of adding into (they were zeroed lazily).</summary>
    private readonly record struct Overwrite(bool W1, bool W3, bool W2);

    /// <summary>The gather's adjoint: dx[t] += Σ over t's placed pairs of dXs[row], in pair order.</summary>
    private readonly struct ScatterRows(Assignment a, int d, float* dxs, float* dx) : IWorkItem
    {
        public void Invoke(int t)
        {
            var dxt = new Span<float>(dx + (long)t * d, d);
            for (int p = a.TokenOffsets[t]; p < a.TokenOffsets[t + 1]; p++)
            {
                int r = a.PairRow[p];
                if (r >= 0) TensorPrimitives.Add(dxt, new ReadOnlySpan<float>(dxs + (long)r * d, d), dxt);
            }
        }
    }
}
