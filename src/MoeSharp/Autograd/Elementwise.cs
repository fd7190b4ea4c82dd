using MoeSharp.Tensors;

namespace MoeSharp.Autograd;

public sealed partial class Tape
{
    /// <summary>a + b, same shape (residual connections, summed losses).</summary>
    public Tensor Add(Tensor a, Tensor b)
    {
        Shapes.Same("Add", a, b);
        var y = Output(Tracks(a, b), a.Shape);
        TensorPrimitives.Add(a.Span, b.Span, y.Span);
        if (y.RequiresGrad) Record(new AddNode(y, a, b));
        return y;
    }

    /// <summary>c · a, for a constant c (loss coefficients).</summary>
    public Tensor Scale(Tensor a, float c)
    {
        var y = Output(Tracks(a), a.Shape);
        TensorPrimitives.Multiply(a.Span, c, y.Span);
        if (y.RequiresGrad) Record(new ScaleNode(y, a, c));
        return y;
    }

    /// <summary>
    /// a with another shape and the same element count. The data are copied, so every op output keeps storage of its
    /// own; a view would tie the two tensors' lifetimes in the pool.
    /// </summary>
    public Tensor Reshape(Tensor a, params int[] shape)
    {
        if (Shapes.Count(shape) != a.Length)
            throw new ArgumentException($"Reshape: {Shapes.Format(a.Shape)} ({a.Length} elements) cannot become {Shapes.Format(shape)}.");
        var y = Output(Tracks(a), shape);
        a.Span.CopyTo(y.Span);
        if (y.RequiresGrad) Record(new ReshapeNode(y, a));
        return y;
    }

    private sealed class ReshapeNode(Tensor y, Tensor a) : Node(y)
    {
        public override string Op => "Reshape";

        internal override void Backward(Tape tape) => TensorPrimitives.Add(tape.GradOf(a), Output.Grad!.Span, tape.GradOf(a));
    }

    private sealed class AddNode(Tensor y, Tensor a, Tensor b) : Node(y)
    {
        public override string Op => "Add";

        internal override void Backward(Tape tape)
        {
            var dy = Output.Grad!.Span;
            // a and b may be one tensor: then the first call makes its gradient and the second adds to it.
            if (a.RequiresGrad) CopyOrAdd(tape, a, dy);
            if (b.RequiresGrad) CopyOrAdd(tape, b, dy);
        }

        private static void CopyOrAdd(Tape tape, Tensor t, ReadOnlySpan<float> dy)
        {
            var g = tape.GradForWrite(t, out bool overwrite);
            if (overwrite) dy.CopyTo(g);
            else TensorPrimitives.Add(g, dy, g);
        }
    }

    private sealed class ScaleNode(Tensor y, Tensor a, float c) : Node(y)
    {
        public override string Op => "Scale";

        internal override void Backward(Tape tape) =>
            TensorPrimitives.MultiplyAdd(Output.Grad!.Span, c, tape.GradOf(a), tape.GradOf(a));
    }
}
