using MoeSharp.Tensors;

namespace MoeSharp.Autograd;

public sealed partial class Tape
{
    /// <summary>Mean cross-entropy of logits [N,V] against targets [N]; rows with target <paramref name="ignoreIndex"/> are skipped.</summary>
    public Tensor CrossEntropy(Tensor logits, int[] targets, int ignoreIndex = -100)
    {
        int v = logits.Dim(-1);
        if (logits.RowCount != targets.Length)
            throw new ArgumentException($"CrossEntropy: logits {Shapes.Format(logits.Shape)} have {logits.RowCount} rows but there are {targets.Length} targets.");
        var loss = Output(Tracks(logits), 1);
        var lse = Allocate(targets.Length); // [N]
        loss[0] = Kernels.CrossEntropy.Forward(logits.Span, targets, v, lse.Span, ignoreIndex);
        if (loss.RequiresGrad) Record(new CrossEntropyNode(loss, logits, targets, lse, ignoreIndex));
        return loss;
    }

    private sealed class CrossEntropyNode(Tensor loss, Tensor logits, int[] targets, Tensor lse, int ignoreIndex) : Node(loss)
    {
        public override string Op => "CrossEntropy";

        internal override void Backward(Tape tape) =>
            Kernels.CrossEntropy.Backward(logits.Span, targets, logits.Dim(-1), lse.Span, Output.Grad!.Span[0], tape.GradOf(logits), ignoreIndex);
    }
}
