using MoeSharp.Kernels;
using MoeSharp.Tensors;

namespace MoeSharp.Autograd;

public sealed partial class Tape
{
    /// <summary>
    /// Fused causal attention: q [B·T, H·hd], k and v [B·T, KVH·hd] → [B·T, H·hd]; each position sees the last
    /// <paramref name="window"/> keys (0: all), and <paramref name="sinks"/> [H], when given, joins every softmax
    /// denominator as a learned logit without a value (GPT-OSS).
    /// </summary>
    public Tensor CausalAttention(Tensor q, Tensor k, Tensor v, int batch, int heads, int kvHeads, int headDim, int window = 0, Tensor? sinks = null)
    {
        int t = q.RowCount / Math.Max(1, batch);
        var shape = new AttentionShape(batch, t, t, heads, kvHeads, headDim, Window: window);
        if (sinks is not null && sinks.Length != heads) throw new ArgumentException($"CausalAttention: {sinks.Length} sinks for {heads} heads.");
        Shapes.LastDim("CausalAttention", q, heads * headDim, "queries");
        Shapes.LastDim("CausalAttention", k, kvHeads * headDim, "keys");
        Shapes.Same("CausalAttention keys and values", k, v);
        if (q.RowCount != batch * t || k.RowCount != batch * t)
            throw new ArgumentException($"CausalAttention: queries {Shapes.Format(q.Shape)} and keys {Shapes.Format(k.Shape)} must both have {batch}·T rows.");
        var y = Output(IsRecording && (q.RequiresGrad || k.RequiresGrad || v.RequiresGrad || sinks is { RequiresGrad: true }), q.Shape);
        var lse = Allocate(batch, heads, t); // [B,H,T]
        Attention.Forward(q.Span, k.Span, v.Span, y.Span, lse.Span, shape, sinks is null ? default : sinks.Span);
        if (y.RequiresGrad) Record(new AttentionNode(y, q, k, v, sinks, lse, shape));
        return y;
    }

    private sealed class AttentionNode(Tensor y, Tensor q, Tensor k, Tensor v, Tensor? sinks, Tensor lse, AttentionShape shape) : Node(y)
    {
        public override string Op => "CausalAttention";

        internal override void Backward(Tape tape)
        {
            var dq = q.RequiresGrad ? tape.GradOf(q) : tape.AllocateZeroed(q.Length).Span;
            var dk = k.RequiresGrad ? tape.GradOf(k) : tape.AllocateZeroed(k.Length).Span;
            var dv = v.RequiresGrad ? tape.GradOf(v) : tape.AllocateZeroed(v.Length).Span;
            Attention.Backward(Output.Grad!.Span, q.Span, k.Span, v.Span, Output.Span, lse.Span, dq, dk, dv, shape);
            if (sinks is { RequiresGrad: true })
                Attention.SinkBackward(Output.Grad!.Span, Output.Span, lse.Span, sinks.Span, tape.GradOf(sinks), shape);
        }
    }
}
