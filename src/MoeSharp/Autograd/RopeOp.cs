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
        Kernels.Rope.Apply(x.Span, y.Span, heads, table, sequenceLength, positionOffset);
        if (y.RequiresGrad) Record(new RopeNode(y, x, heads, table, sequenceLength, positionOffset));
        return y;
    }

    private sealed class RopeNode(Tensor y, Tensor x, int heads, RopeTable table, int sequenceLength, int positionOffset) : Node(y)
    {
        public override string Op => "Rope";

        internal override void Backward(Tape tape)
        {
            // A rotation's adjoint is the opposite rotation, written (or added) straight into dx.
            var dx = tape.GradForWrite(x, out bool overwrite);
            Kernels.Rope.Apply(Output.Grad!.Span, dx, heads, table, sequenceLength, positionOffset, inverse: true, accumulate: !overwrite);
        }
    }
}
