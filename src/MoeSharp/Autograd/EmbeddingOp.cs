using MoeSharp.Kernels;
using MoeSharp.Tensors;

namespace MoeSharp.Autograd;

public sealed partial class Tape
{
    /// <summary>Rows of <paramref name="table"/> [V,D] picked by <paramref name="ids"/> [N] → [N,D]. The ids must stay unchanged until backward.</summary>
    public Tensor Embedding(Tensor table, int[] ids)
    {
        if (table.Rank != 2) throw new ArgumentException($"Embedding: table has shape {Shapes.Format(table.Shape)}; expected [vocab,dim].");
        int d = table.Dim(1);
        var y = Output(Tracks(table), ids.Length, d);
        Kernels.Embedding.Gather(table.Span, ids, y.Span, d);
        if (y.RequiresGrad) Record(new EmbeddingNode(y, table, ids));
        return y;
    }

    private sealed class EmbeddingNode(Tensor y, Tensor table, int[] ids) : Node(y)
    {
        public override string Op => "Embedding";

        internal override void Backward(Tape tape) =>
            Kernels.Embedding.ScatterAdd(Output.Grad!.Span, ids, tape.GradOf(table), table.Dim(1));
    }
}
