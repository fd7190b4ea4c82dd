using MoeSharp.Tensors;

namespace MoeSharp.Autograd;

public sealed partial class Tape
{
    /// <summary>Row-wise softmax over the last dimension.</summary>
    public Tensor Softmax(Tensor x)
    {
        int c = x.Dim(-1);
        var y = Output(Tracks(x), x.Shape);
        Kernels.Softmax.Rows(x.Span, y.Span, c);
        if (y.RequiresGrad) Record(new SoftmaxNode(y, x));
        return y;
    }

    /// <summary>Element-wise logistic sigmoid.</summary>
    public Tensor Sigmoid(Tensor x)
    {
        var y = Output(Tracks(x), x.Shape);
        if (x.Length > 0) TensorPrimitives.Sigmoid(x.Span, y.Span);
        if (y.RequiresGrad) Record(new SigmoidNode(y, x));
        return y;
    }

    /// <summary>Element-wise softplus, log(1 + eˣ).</summary>
    public Tensor Softplus(Tensor x)
    {
        var y = Output(Tracks(x), x.Shape);
        var xs = x.Span;
        var ys = y.Span;
        // max(x, 0) + log(1 + e^(−|x|)) stays finite for large |x|.
        for (int i = 0; i < xs.Length; i++) ys[i] = MathF.Max(xs[i], 0) + MathF.Log(1 + MathF.Exp(-MathF.Abs(xs[i])));
        if (y.RequiresGrad) Record(new SoftplusNode(y, x));
        return y;
    }

    /// <summary>Element-wise product of two tensors of the same shape.</summary>
    public Tensor Multiply(Tensor a, Tensor b)
    {
        Shapes.Same("Multiply", a, b);
        var y = Output(Tracks(a, b), a.Shape);
        if (a.Length > 0) TensorPrimitives.Multiply(a.Span, b.Span, y.Span);
        if (y.RequiresGrad) Record(new MultiplyNode(y, a, b));
        return y;
    }

    /// <summary>y[r,:] = x[r,:]·g[r]: scales each row of x [N,D] by g [N].</summary>
    public Tensor MultiplyRows(Tensor x, Tensor g)
    {
        if (g.Length != x.RowCount) throw new ArgumentException($"MultiplyRows: {Shapes.Format(g.Shape)} scales do not match the {x.RowCount} rows of {Shapes.Format(x.Shape)}.");
        int d = x.Dim(-1);
        var y = Output(Tracks(x, g), x.Shape);
        for (int r = 0; r < g.Length; r++) TensorPrimitives.Multiply(x.Span.Slice(r * d, d), g[r], y.Span.Slice(r * d, d));
        if (y.RequiresGrad) Record(new MultiplyRowsNode(y, x, g));
        return y;
    }

    /// <summary>Σ x ⊙ c for a constant c of the same length: a scalar. Balance losses are this with c from counts.</summary>
    public Tensor WeightedSum(Tensor x, float[] c)
    {
        if (c.Length != x.Length) throw new ArgumentException($"WeightedSum: {c.Length} weights for {Shapes.Format(x.Shape)}.");
        var y = Output(Tracks(x), 1);
        double s = 0;
        var xs = x.Span;
        for (int i = 0; i < xs.Length; i++) s += (double)xs[i] * c[i];
        y[0] = (float)s;
        if (y.RequiresGrad) Record(new WeightedSumNode(y, x, c));
        return y;
    }

    private sealed class SoftmaxNode(Tensor y, Tensor x) : Node(y)
    {
        public override string Op => "Softmax";

        internal override void Backward(Tape tape)
        {
            int c = x.Dim(-1);
            var dx = tape.GradOf(x);
            var p = Output.Span;
            var dy = Output.Grad!.Span;
            for (int r = 0; c > 0 && r < p.Length / c; r++)
            {
                var pr = p.Slice(r * c, c);
                var dr = dy.Slice(r * c, c);
                float dot = TensorPrimitives.Dot(pr, dr);
                for (int j = 0; j < c; j++) dx[r * c + j] += pr[j] * (dr[j] - dot);
            }
        }
    }

    private sealed class SigmoidNode(Tensor y, Tensor x) : Node(y)
    {
        public override string Op => "Sigmoid";

        internal override void Backward(Tape tape)
        {
            var dx = tape.GradOf(x);
            var s = Output.Span;
            var dy = Output.Grad!.Span;
            for (int i = 0; i < s.Length; i++) dx[i] += dy[i] * s[i] * (1 - s[i]);
        }
    }

    private sealed class SoftplusNode(Tensor y, Tensor x) : Node(y)
    {
        public override string Op => "Softplus";

        internal override void Backward(Tape tape)
        {
            var dx = tape.GradOf(x);
            var xs = x.Span;
            var dy = Output.Grad!.Span;
            for (int i = 0; i < xs.Length; i++) dx[i] += dy[i] / (1 + MathF.Exp(-xs[i]));
        }
    }

    private sealed class MultiplyNode(Tensor y, Tensor a, Tensor b) : Node(y)
    {
        public override string Op => "Multiply";

        internal override void Backward(Tape tape)
        {
            var dy = Output.Grad!.Span;
            if (a.RequiresGrad) TensorPrimitives.MultiplyAdd(dy, b.Span, tape.GradOf(a), tape.GradOf(a));
            if (b.RequiresGrad) TensorPrimitives.MultiplyAdd(dy, a.Span, tape.GradOf(b), tape.GradOf(b));
        }
    }

    private sealed class MultiplyRowsNode(Tensor y, Tensor x, Tensor g) : Node(y)
    {
        public override string Op => "MultiplyRows";

        internal override void Backward(Tape tape)
        {
            int d = x.Dim(-1);
            var dy = Output.Grad!.Span;
            for (int r = 0; r < g.Length; r++)
            {
                var dyr = dy.Slice(r * d, d);
                if (x.RequiresGrad) TensorPrimitives.MultiplyAdd(dyr, g[r], tape.GradOf(x).Slice(r * d, d), tape.GradOf(x).Slice(r * d, d));
                if (g.RequiresGrad) tape.GradOf(g)[r] += TensorPrimitives.Dot(dyr, x.Span.Slice(r * d, d));
            }
        }
    }

    private sealed class WeightedSumNode(Tensor y, Tensor x, float[] c) : Node(y)
    {
        public override string Op => "WeightedSum";

        internal override void Backward(Tape tape) =>
            TensorPrimitives.MultiplyAdd(c, Output.Grad!.Span[0], tape.GradOf(x), tape.GradOf(x));
    }
}
