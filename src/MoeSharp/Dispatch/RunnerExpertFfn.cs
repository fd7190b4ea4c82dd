using MoeSharp.Autograd;
using MoeSharp.Experts;
using MoeSharp.Tensors;

namespace MoeSharp.Dispatch;

/// <summary>
/// The sparse expert FFN with the experts run by an <see cref="IExpertRunner"/> (in this process or on other
/// machines): gather the rows sorted by expert, let the runner fill each expert's outputs, and combine per token with
/// the gate weights of the experts that answered, renormalised to the token's original sum. Inference only.
/// </summary>
/// <remarks>Dimensions: T tokens, D model width, E experts, P pairs, R placed rows.</remarks>
internal static class RunnerExpertFfn
{
    /// <summary>
    /// y [T,D] = Σ over each token's placed pairs whose expert answered of w'·expert(x), where w' = w·(Σ placed w / Σ
    /// answered w); a token whose experts all answered keeps its weights as they are (bit for bit), one none of whose
    /// experts answered gets 0. <paramref name="degraded"/> counts the tokens that lost at least one placed pair.
    /// </summary>
    public static Tensor RunnerExpertFfnForward(this Tape tape, Tensor x, Assignment a, Tensor weights, ExpertBank bank, IExpertRunner runner,
        out int degraded)
    {
        int d = bank.Dim, e = bank.Experts;
        Shapes.LastDim("RunnerExpertFfn", x, d, "input");
        if (x.RowCount != a.Tokens) throw new ArgumentException($"RunnerExpertFfn: input {Shapes.Format(x.Shape)} has {x.RowCount} rows; the assignment has {a.Tokens} tokens.");
        if (weights.Length != a.Pairs) throw new ArgumentException($"RunnerExpertFfn: {weights.Length} gate weights for {a.Pairs} pairs.");
        if (a.Experts != e) throw new ArgumentException($"RunnerExpertFfn: the assignment has {a.Experts} experts; the bank has {e}.");
        if (tape.IsRecording && (x.RequiresGrad || weights.RequiresGrad))
            throw new InvalidOperationException($"ExpertBank {bank.Name} runs its experts through {runner.GetType().Name}, which is for inference only, but the tape records gradients; run under Tape.NoGrad(), or clear ExpertBank.Runner to train.");
        int rows = a.Placed;
        var xs = tape.Allocate(Math.Max(1, rows), d); // [R,D] gathered inputs, sorted by expert
        var ys = tape.Allocate(Math.Max(1, rows), d); // [R,D] expert outputs, before gating
        var xv = x.Span;
        var xsv = xs.Span;
        for (int r = 0; r < rows; r++) xv.Slice(a.RowToken[r] * d, d).CopyTo(xsv.Slice(r * d, d));
        Span<bool> answered = e <= 1024 ? stackalloc bool[e] : new bool[e]; // [E]
        answered.Clear();
        runner.Run(bank, xsv[..(rows * d)], a.ExpertOffsets, ys.Span[..(rows * d)], answered);
        var y = tape.Output(false, x.RowCount, d);
        var yv = y.Span;
        var ysv = ys.Span;
        var wv = weights.Span;
        degraded = 0;
        for (int t = 0; t < a.Tokens; t++)
        {
            var yt = yv.Slice(t * d, d);
            yt.Clear();
            float placed = 0, kept = 0;
            bool whole = true;
            for (int p = a.TokenOffsets[t]; p < a.TokenOffsets[t + 1]; p++)
            {
                if (a.PairRow[p] < 0) continue;
                placed += wv[p];
                if (answered[a.PairExpert[p]]) kept += wv[p];
                else whole = false;
            }
            if (!whole) degraded++;
            if (kept == 0) continue;
            float scale = placed / kept;
            // Per token, its pairs in order: the fused ops' sum order, so a whole answer is their result bit for bit.
            for (int p = a.TokenOffsets[t]; p < a.TokenOffsets[t + 1]; p++)
            {
                int r = a.PairRow[p];
                if (r < 0 || !answered[a.PairExpert[p]]) continue;
                TensorPrimitives.MultiplyAdd(ysv.Slice(r * d, d), whole ? wv[p] : wv[p] * scale, yt, yt);
            }
        }
        return y;
    }
}
