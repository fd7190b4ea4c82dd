using MoeSharp.Kernels;
using MoeSharp.Tensors;

namespace MoeSharp.Autograd;

public sealed partial class Tape
{
    /// <summary>RoPE on x [B·T, heads·hd]; row r is at position <paramref name="positionOffset"/> + r mod T.</summary>
    public Tensor Rope(Tensor x, int heads, RopeTable table, int sequenceLength, int positionOffset = 0)
    {
        Shapes.LastDim("Rope", x, heads * table.HeadDim, $"input ({heads} heads of {table.HeadDim})");
        var y = Output(Tracks(x), x.Shape);
        x.Span.CopyTo(y.Span);
        Kernels.Rope.Apply(y.Span, heads, table, sequenceLength, positionOffset);
        if (y.RequiresGrad) Record(new RopeNode(y, x, heads, table, sequenceLength, positionOffset));
        return y;
    }

    private sealed class RopeNode(Tensor y, Tensor x, int heads, RopeTable table, int sequenceLength, int positionOffset) : Node(y)
    {
        public override string Op => "Rope";

        internal override void Backward(Tape tape)
        {
            // A rotation's adjoint is the opposite rotation.
            var g = tape.Allocate(x.Length);
            Output.Grad!.Span.CopyTo(g.Span);
            Kernels.Rope.Apply(g.Span, heads, table, sequenceLength, positionOffset, inverse: true);
            TensorPrimitives.Add(tape.GradOf(x), g.Span, tape.GradOf(x));
        }
    }
}
