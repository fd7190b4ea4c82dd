using MoeSharp.Kernels;
using MoeSharp.Tensors;

namespace MoeSharp.Autograd;

public sealed partial class Tape
{
    /// <summary>silu(a) ⊙ b, the SwiGLU gate.</summary>
    public Tensor SwiGlu(Tensor a, Tensor b)
    {
        Shapes.Same("SwiGlu", a, b);
        var y = Output(Tracks(a, b), a.Shape);
        Activations.SwiGluForward(a.Span, b.Span, y.Span);
        if (y.RequiresGrad) Record(new SwiGluNode(y, a, b));
        return y;
    }

    /// <summary>GELU, tanh approximation.</summary>
    public Tensor Gelu(Tensor a)
    {
        var y = Output(Tracks(a), a.Shape);
        Activations.GeluForward(a.Span, y.Span);
        if (y.RequiresGrad) Record(new GeluNode(y, a));
        return y;
    }

    private sealed class SwiGluNode(Tensor y, Tensor a, Tensor b) : Node(y)
    {
        public override string Op => "SwiGlu";

        internal override void Backward(Tape tape)
        {
            var da = a.RequiresGrad ? tape.GradOf(a) : tape.Allocate(a.Length).Span;
            var db = b.RequiresGrad ? tape.GradOf(b) : tape.Allocate(b.Length).Span;
            Activations.SwiGluBackward(Output.Grad!.Span, a.Span, b.Span, da, db);
        }
    }

    private sealed class GeluNode(Tensor y, Tensor a) : Node(y)
    {
        public override string Op => "Gelu";

        internal override void Backward(Tape tape) => Activations.GeluBackward(Output.Grad!.Span, a.Span, tape.GradOf(a));
    }
}
