using MoeSharp.Tensors;

namespace MoeSharp.Autograd;

public sealed partial class Tape
{
    /// <summary>a + b, same shape (residual connections, summed losses).</summary>
    public Tensor Add(Tensor a, Tensor b)
    {
        Shapes.Same("Add", a, b);
        var y = Output(Tracks(a, b), a.Shape.ToArray());
        TensorPrimitives.Add(a.Span, b.Span, y.Span);
        if (y.RequiresGrad) Record(new AddNode(y, a, b));
        return y;
    }

    /// <summary>c · a, for a constant c (loss coefficients).</summary>
    public Tensor Scale(Tensor a, float c)
    {
        var y = Output(Tracks(a), a.Shape.ToArray());
        TensorPrimitives.Multiply(a.Span, c, y.Span);
        if (y.RequiresGrad) Record(new ScaleNode(y, a, c));
        return y;
    }

    private sealed class AddNode(Tensor y, Tensor a, Tensor b) : Node(y)
    {
        public override string Op => "Add";

        internal override void Backward(Tape tape)
        {
            var dy = Output.Grad!.Span;
            if (a.RequiresGrad) TensorPrimitives.Add(tape.GradOf(a), dy, tape.GradOf(a));
            if (b.RequiresGrad) TensorPrimitives.Add(tape.GradOf(b), dy, tape.GradOf(b));
        }
    }

    private sealed class ScaleNode(Tensor y, Tensor a, float c) : Node(y)
    {
        public override string Op => "Scale";

        internal override void Backward(Tape tape) =>
            TensorPrimitives.MultiplyAdd(Output.Grad!.Span, c, tape.GradOf(a), tape.GradOf(a));
    }
}
