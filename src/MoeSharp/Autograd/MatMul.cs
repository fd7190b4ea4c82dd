using MoeSharp.Kernels;
using MoeSharp.Tensors;

namespace MoeSharp.Autograd;

public sealed partial class Tape
{
    /// <summary>op(a)·op(b) for 2-D a and b, op = optional transpose.</summary>
    public Tensor MatMul(Tensor a, Tensor b, bool transA = false, bool transB = false)
    {
        if (a.Rank != 2 || b.Rank != 2) throw new ArgumentException($"MatMul: needs 2-D operands, got {Shapes.Format(a.Shape)} and {Shapes.Format(b.Shape)}.");
        int m = transA ? a.Dim(1) : a.Dim(0), k = transA ? a.Dim(0) : a.Dim(1);
        int kb = transB ? b.Dim(1) : b.Dim(0), n = transB ? b.Dim(0) : b.Dim(1);
        if (k != kb) throw new ArgumentException($"MatMul: inner dimensions differ for {Shapes.Format(a.Shape)}{(transA ? "ᵀ" : "")} · {Shapes.Format(b.Shape)}{(transB ? "ᵀ" : "")}.");
        var y = Output(Tracks(a, b), m, n);
        Gemm.Multiply(a.Span, b.Span, y.Span, m, n, k, transA, transB);
        if (y.RequiresGrad) Record(new MatMulNode(y, a, b, transA, transB, m, n, k));
        return y;
    }

    /// <summary>The transpose of a 2-D tensor, copied.</summary>
    public Tensor Transpose(Tensor x)
    {
        if (x.Rank != 2) throw new ArgumentException($"Transpose: needs a 2-D tensor, got {Shapes.Format(x.Shape)}.");
        int r = x.Dim(0), c = x.Dim(1);
        var y = Output(Tracks(x), c, r);
        for (int i = 0; i < r; i++)
            for (int j = 0; j < c; j++) y.Storage[y.Offset + j * r + i] = x.Storage[x.Offset + i * c + j];
        if (y.RequiresGrad) Record(new TransposeNode(y, x));
        return y;
    }

    private sealed class MatMulNode(Tensor y, Tensor a, Tensor b, bool ta, bool tb, int m, int n, int k) : Node(y)
    {
        public override string Op => "MatMul";

        internal override void Backward(Tape tape)
        {
            var dy = Output.Grad!.Span; // [m,n]
            // C = op(A)·op(B): d op(A) = dC·op(B)ᵀ, d op(B) = op(A)ᵀ·dC, each written back in the operand's own layout.
            if (a.RequiresGrad)
            {
                if (!ta) Gemm.Multiply(dy, b.Span, tape.GradOf(a), m, k, n, transB: !tb, accumulate: true);
                else Gemm.Multiply(b.Span, dy, tape.GradOf(a), k, m, n, transA: tb, transB: true, accumulate: true);
            }
            if (b.RequiresGrad)
            {
                if (!tb) Gemm.Multiply(a.Span, dy, tape.GradOf(b), k, n, m, transA: !ta, accumulate: true);
                else Gemm.Multiply(dy, a.Span, tape.GradOf(b), n, k, m, transA: true, transB: ta, accumulate: true);
            }
        }
    }

    private sealed class TransposeNode(Tensor y, Tensor x) : Node(y)
    {
        public override string Op => "Transpose";

        internal override void Backward(Tape tape)
        {
            int r = x.Dim(0), c = x.Dim(1);
            var dx = tape.GradOf(x);
            var dy = Output.Grad!;
            for (int i = 0; i < r; i++)
                for (int j = 0; j < c; j++) dx[i * c + j] += dy.Storage[dy.Offset + j * r + i];
        }
    }
}
