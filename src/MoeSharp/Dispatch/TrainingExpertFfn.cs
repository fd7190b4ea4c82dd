using MoeSharp.Autograd;
using MoeSharp.Experts;
using MoeSharp.Tensors;

namespace MoeSharp.Dispatch;

/// <summary>
/// An <see cref="IExpertRunner"/> that can also train the experts where they live (another machine): its forward keeps
/// what the experts' backward needs under a handle, and its backward turns the gate-weighted output gradients of those
/// rows into input gradients while the experts' weight gradients stay with the experts. Set on
/// <see cref="ExpertBank.Runner"/>, a recording tape then trains through it; a no-grad tape still calls
/// <see cref="IExpertRunner.Run"/>.
/// </summary>
/// <remarks>Dimensions: R rows sorted by expert, D model width, E experts.</remarks>
public interface IExpertTrainer : IExpertRunner
{
    /// <summary>
    /// Fills <paramref name="ys"/> [R,D] with every expert's output (before gating) for <paramref name="xs"/> [R,D], whose
    /// expert e owns rows [<paramref name="expertOffsets"/>[e], [e+1]) of the [E+1] offsets, and returns the handle under
    /// which the activations are kept for <see cref="Backward"/>. Throws when an expert does not answer: a lost expert's
    /// gradient cannot be renormalised away.
    /// </summary>
    long Forward(ExpertBank bank, ReadOnlySpan<float> xs, ReadOnlySpan<int> expertOffsets, Span<float> ys);

    /// <summary>
    /// The backward of the forward <paramref name="handle"/>: <paramref name="dxs"/> [R,D] = d(Σ dys·ys)/dxs for the
    /// gate-weighted upstream rows <paramref name="dys"/> [R,D], while each expert adds its weight gradients where it
    /// lives. Called at most once per handle; the activations are released by it.
    /// </summary>
    void Backward(ExpertBank bank, long handle, ReadOnlySpan<float> dys, Span<float> dxs);
}

/// <summary>
/// The sparse expert FFN with the experts trained by an <see cref="IExpertTrainer"/>: gather rows sorted by expert, let
/// the trainer run them, combine y[t] = Σ over t's placed pairs of w·ys[row] in pair order (the fused op's order, so
/// the output is the fused op's wherever ys is). Its backward forms dys = w·dy[token] and dw = dy[token]·ys[row] here,
/// sends dys to the trainer, and scatters the dxs it returns into dx.
/// </summary>
/// <remarks>Dimensions: T tokens, D model width, E experts, P pairs, R placed rows.</remarks>
internal static class TrainingExpertFfn
{
    /// <summary>y [T,D] = Σ over each token's placed pairs of weight·expert(x), the experts run by <paramref name="trainer"/>.</summary>
    public static Tensor TrainingExpertFfnForward(this Tape tape, Tensor x, Assignment a, Tensor weights, ExpertBank bank, IExpertTrainer trainer)
    {
        int d = bank.Dim;
        Shapes.LastDim("TrainingExpertFfn", x, d, "input");
        if (x.RowCount != a.Tokens) throw new ArgumentException($"TrainingExpertFfn: input {Shapes.Format(x.Shape)} has {x.RowCount} rows; the assignment has {a.Tokens} tokens.");
        if (weights.Length != a.Pairs) throw new ArgumentException($"TrainingExpertFfn: {weights.Length} gate weights for {a.Pairs} pairs.");
        if (a.Experts != bank.Experts) throw new ArgumentException($"TrainingExpertFfn: the assignment has {a.Experts} experts; the bank has {bank.Experts}.");
        int rows = a.Placed;
        var xs = tape.Allocate(Math.Max(1, rows), d); // [R,D] gathered inputs, sorted by expert
        var ys = tape.Allocate(Math.Max(1, rows), d); // [R,D] expert outputs, before gating
        var xv = x.Span;
        var xsv = xs.Span;
        for (int r = 0; r < rows; r++) xv.Slice(a.RowToken[r] * d, d).CopyTo(xsv.Slice(r * d, d));
        bool tracked = tape.IsRecording && (x.RequiresGrad || weights.RequiresGrad);
        long handle = -1;
        if (tracked) handle = trainer.Forward(bank, xsv[..(rows * d)], a.ExpertOffsets, ys.Span[..(rows * d)]);
        else
        {
            // Nothing will call the backward, so the experts keep nothing; a lost expert still fails the step.
            Span<bool> answered = bank.Experts <= 1024 ? stackalloc bool[bank.Experts] : new bool[bank.Experts]; // [E]
            answered.Clear();
            trainer.Run(bank, xsv[..(rows * d)], a.ExpertOffsets, ys.Span[..(rows * d)], answered);
            for (int e = 0; e < bank.Experts; e++)
                if (!answered[e] && a.Load(e) > 0) throw new InvalidOperationException($"ExpertBank {bank.Name}: expert {e} did not answer while training.");
        }
        var y = tape.Output(tracked, x.RowCount, d);
        a.Combine(ys.Span, weights.Span, y.Span, d);
        if (tracked) tape.Record(new TrainingNode(y, x, a, weights, ys, bank, trainer, handle));
        return y;
    }

    private sealed class TrainingNode(Tensor y, Tensor x, Assignment a, Tensor weights, Tensor ys, ExpertBank bank, IExpertTrainer trainer, long handle)
        : Node(y)
    {
        public override string Op => "TrainingExpertFfn";

        internal override void Backward(Tape tape)
        {
            int d = bank.Dim, rows = a.Placed;
            var dys = tape.Allocate(Math.Max(1, rows), d); // [R,D] gate-weighted upstream rows
            var dxs = tape.Allocate(Math.Max(1, rows), d); // [R,D] gradient of the gathered inputs
            var dy = Output.Grad!.Span;
            var ysv = ys.Span;
            var wv = weights.Span;
            var dysv = dys.Span;
            var dweights = weights.RequiresGrad ? tape.GradOf(weights) : default;
            for (int r = 0; r < rows; r++)
            {
                int p = a.RowPair[r];
                var dyt = dy.Slice(a.RowToken[r] * d, d);
                if (!dweights.IsEmpty) dweights[p] += TensorPrimitives.Dot(dyt, ysv.Slice(r * d, d));
                TensorPrimitives.Multiply(dyt, wv[p], dysv.Slice(r * d, d));
            }
            trainer.Backward(bank, handle, dysv[..(rows * d)], dxs.Span[..(rows * d)]);
            if (!x.RequiresGrad) return;
            var dx = tape.GradOf(x);
            var dxsv = dxs.Span;
            // The gather's adjoint in pair order, as the fused op sums it.
            for (int t = 0; t < a.Tokens; t++)
            {
                var dxt = dx.Slice(t * d, d);
                for (int p = a.TokenOffsets[t]; p < a.TokenOffsets[t + 1]; p++)
                {
                    int r = a.PairRow[p];
                    if (r >= 0) TensorPrimitives.Add(dxt, dxsv.Slice(r * d, d), dxt);
                }
            }
        }
    }
}

/// <summary>
/// The expert side of <see cref="IExpertTrainer"/>: rows already sorted by expert through a bank's experts with the
/// fused expert FFN (the kernels and row blocks of the single-process path), recorded on a tape so that
/// <c>tape.Backward(ys, dys)</c> leaves dxs in xs's gradient and adds the experts' weight gradients into the bank's arena.
/// </summary>
/// <remarks>Dimensions: R rows, D model width, E experts of the bank.</remarks>
public static class ExpertRows
{
    /// <summary>
    /// ys [R,D] = expert(xs) for <paramref name="xs"/> [R,D] (set RequiresGrad on it for dxs), where expert e owns rows
    /// [<paramref name="expertOffsets"/>[e], [e+1]) of the [E+1] offsets. Each row is a token with one pair of weight 1,
    /// so the combine and its adjoint pass values through unchanged: ys and dxs are the fused op's rows bit for bit.
    /// </summary>
    public static Tensor Forward(Tape tape, Tensor xs, ReadOnlySpan<int> expertOffsets, ExpertBank bank)
    {
        int e = bank.Experts;
        if (expertOffsets.Length != e + 1 || expertOffsets[0] != 0)
            throw new ArgumentException($"ExpertBank {bank.Name}: {expertOffsets.Length} expert offsets starting at {(expertOffsets.IsEmpty ? 0 : expertOffsets[0])}; expected {e + 1} starting at 0.", nameof(expertOffsets));
        int rows = expertOffsets[e];
        if (rows == 0) throw new ArgumentException($"ExpertBank {bank.Name}: no rows to run; a caller sends rows only to experts that have some.", nameof(expertOffsets));
        Shapes.LastDim("ExpertRows", xs, bank.Dim, "rows");
        if (xs.RowCount != rows) throw new ArgumentException($"ExpertBank {bank.Name}: {xs.RowCount} rows for offsets that place {rows}.", nameof(xs));
        var pairExpert = new int[rows];   // [R] each row's expert
        var tokenOffsets = new int[rows + 1]; // [R+1] one pair per row
        for (int j = 0; j < e; j++)
        {
            if (expertOffsets[j + 1] < expertOffsets[j])
                throw new ArgumentException($"ExpertBank {bank.Name}: expert offsets decrease at expert {j} ({expertOffsets[j]} then {expertOffsets[j + 1]}).", nameof(expertOffsets));
            for (int r = expertOffsets[j]; r < expertOffsets[j + 1]; r++) pairExpert[r] = j;
        }
        for (int r = 0; r <= rows; r++) tokenOffsets[r] = r;
        var ones = tape.Allocate(rows); // [R] unit gate weights, no gradient
        ones.Span.Fill(1f);
        ones.RequiresGrad = false;
        return tape.ExpertFfn(xs, new Assignment(e, tokenOffsets, pairExpert), ones, bank);
    }
}
