using MoeSharp.Kernels;
using MoeSharp.Tensors;

namespace MoeSharp.Autograd;

public sealed partial class Tape
{
    /// <summary>y [N,out] = x [N,in] · Wᵀ + b, with W [out,in] (the PyTorch layout) and optional b [out].</summary>
    public Tensor Linear(Tensor x, Tensor w, Tensor? b = null)
    {
        if (w.Rank != 2) throw new ArgumentException($"Linear: weight has shape {Shapes.Format(w.Shape)}; expected [out,in].");
        int outF = w.Dim(0), inF = w.Dim(1);
        Shapes.LastDim("Linear", x, inF, $"input (weight {Shapes.Format(w.Shape)})");
        if (b is not null && (b.Rank != 1 || b.Dim(0) != outF))
            throw new ArgumentException($"Linear: bias has shape {Shapes.Format(b.Shape)}; expected [{outF}].");
        int n = x.RowCount;
        Span<int> shape = stackalloc int[x.Rank]; // x's shape with the last dimension replaced
        x.Shape.CopyTo(shape);
        shape[^1] = outF;
        var y = Output(Tracks(x, w, b), shape);
        Gemm.Multiply(x.Span, w.Span, y.Span, n, outF, inF, transB: true);
        if (b is not null)
            for (int r = 0; r < n; r++)
                TensorPrimitives.Add(y.Span.Slice(r * outF, outF), b.Span, y.Span.Slice(r * outF, outF));
        if (y.RequiresGrad) Record(new LinearNode(y, x, w, b));
        return y;
    }

    private sealed class LinearNode(Tensor y, Tensor x, Tensor w, Tensor? b) : Node(y)
    {
        public override string Op => "Linear";

        internal override void Backward(Tape tape)
        {
            int outF = w.Dim(0), inF = w.Dim(1), n = x.RowCount;
            var dy = Output.Grad!.Span; // [N,out]
            if (x.RequiresGrad)
            {
                var dx = tape.GradForWrite(x, out bool overwrite);
                Gemm.Multiply(dy, w.Span, dx, n, inF, outF, accumulate: !overwrite); // dx (+)= dy·W
            }
            if (w.RequiresGrad) Gemm.Multiply(dy, x.Span, tape.GradOf(w), outF, inF, n, transA: true, accumulate: true); // dW += dyᵀ·x
            if (b is { RequiresGrad: true })
            {
                var db = tape.GradOf(b);
                for (int r = 0; r < n; r++) TensorPrimitives.Add(db, dy.Slice(r * outF, outF), db);
            }
        }
    }
}
