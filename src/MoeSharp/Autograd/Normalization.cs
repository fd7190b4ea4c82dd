using MoeSharp.Kernels;
using MoeSharp.Tensors;

namespace MoeSharp.Autograd;

public sealed partial class Tape
{
    /// <summary>RMSNorm over the last dimension: x / sqrt(mean(x²) + eps) · w.</summary>
    public Tensor RmsNorm(Tensor x, Tensor w, float eps)
    {
        int d = w.Length;
        Shapes.LastDim("RmsNorm", x, d, $"input (weight {Shapes.Format(w.Shape)})");
        var y = Output(Tracks(x, w), x.Shape);
        var rstd = Allocate(x.RowCount); // [N]
        Norms.RmsForward(x.Span, w.Span, y.Span, rstd.Span, d, eps);
        if (y.RequiresGrad) Record(new RmsNormNode(y, x, w, rstd));
        return y;
    }

    /// <summary>LayerNorm over the last dimension: (x − mean) / sqrt(var + eps) · w + b.</summary>
    public Tensor LayerNorm(Tensor x, Tensor w, Tensor b, float eps)
    {
        int d = w.Length;
        Shapes.LastDim("LayerNorm", x, d, $"input (weight {Shapes.Format(w.Shape)})");
        Shapes.Same("LayerNorm weight and bias", w, b);
        var y = Output(Tracks(x, w, b), x.Shape);
        var mean = Allocate(x.RowCount); // [N]
        var rstd = Allocate(x.RowCount); // [N]
        Norms.LayerForward(x.Span, w.Span, b.Span, y.Span, mean.Span, rstd.Span, d, eps);
        if (y.RequiresGrad) Record(new LayerNormNode(y, x, w, b, mean, rstd));
        return y;
    }

    private sealed class RmsNormNode(Tensor y, Tensor x, Tensor w, Tensor rstd) : Node(y)
    {
        public override string Op => "RmsNorm";

        internal override void Backward(Tape tape)
        {
            int d = w.Length;
            var scratch = tape.Allocate(2 * d); // [2D]
            // Gradients the caller does not need land in scratch buffers; the kernel always writes both.
            bool overwrite = true;
            var dx = x.RequiresGrad ? tape.GradForWrite(x, out overwrite) : tape.Allocate(x.Length).Span;
            var dw = w.RequiresGrad ? tape.GradOf(w) : tape.AllocateZeroed(d).Span;
            Norms.RmsBackward(Output.Grad!.Span, x.Span, w.Span, rstd.Span, dx, dw, scratch.Span, d, accumulate: !overwrite);
        }
    }

    private sealed class LayerNormNode(Tensor y, Tensor x, Tensor w, Tensor b, Tensor mean, Tensor rstd) : Node(y)
    {
        public override string Op => "LayerNorm";

        internal override void Backward(Tape tape)
        {
            int d = w.Length;
            var scratch = tape.Allocate(2 * d); // [2D]
            var dx = x.RequiresGrad ? tape.GradOf(x) : tape.Allocate(x.Length).Span;
            var dw = w.RequiresGrad ? tape.GradOf(w) : tape.AllocateZeroed(d).Span;
            var db = b.RequiresGrad ? tape.GradOf(b) : tape.AllocateZeroed(d).Span;
            Norms.LayerBackward(Output.Grad!.Span, x.Span, w.Span, mean.Span, rstd.Span, dx, dw, db, scratch.Span, d);
        }
    }
}
