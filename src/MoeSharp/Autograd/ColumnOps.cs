using MoeSharp.Tensors;

namespace MoeSharp.Autograd;

public sealed partial class Tape
{
    /// <summary>
    /// Columns [<paramref name="start"/>, <paramref name="start"/> + <paramref name="width"/>) of x [N, C] → [N, width]:
    /// the split half of <see cref="Concat"/>, as multi-head latent attention splits a projection into its parts.
    /// </summary>
    public Tensor Columns(Tensor x, int start, int width)
    {
        if (x.Rank != 2) throw new ArgumentException($"Columns: input has shape {Shapes.Format(x.Shape)}; expected [rows, columns].");
        int n = x.Dim(0), c = x.Dim(1);
        if (start < 0 || width < 0 || start + width > c)
            throw new ArgumentException($"Columns: [{start}, {start + width}) is outside the input's {c} columns.");
        var y = Output(Tracks(x), n, width); // [N, width]
        var src = x.Span;
        var dst = y.Span;
        for (int r = 0; r < n; r++) src.Slice(r * c + start, width).CopyTo(dst.Slice(r * width, width));
        if (y.RequiresGrad) Record(new ColumnsNode(y, x, start));
        return y;
    }

    private sealed class ColumnsNode(Tensor y, Tensor x, int start) : Node(y)
    {
        public override string Op => "Columns";

        internal override void Backward(Tape tape)
        {
            // The adjoint of a column gather adds each row back into its columns; the others get nothing.
            int n = x.Dim(0), c = x.Dim(1), width = Output.Dim(1);
            var dx = tape.GradOf(x);
            var dy = Output.Grad!.Span;
            for (int r = 0; r < n; r++)
            {
                var into = dx.Slice(r * c + start, width);
                TensorPrimitives.Add(into, dy.Slice(r * width, width), into);
            }
        }
    }
}
