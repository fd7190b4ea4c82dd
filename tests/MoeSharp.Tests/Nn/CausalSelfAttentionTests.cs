using MoeSharp.Autograd;
using MoeSharp.Kernels;
using MoeSharp.Nn;
using MoeSharp.Tensors;

namespace MoeSharp.Tests.Nn;

/// <summary>The training forward's fused q/k/v projection against the three separate projections it replaces.</summary>
public class CausalSelfAttentionTests
{
    /// <summary>
    /// Grouped-query heads (4 query, 2 KV heads of 8) over 2 sequences of 5: the fused module and the unfused
    /// composition (q_proj, k_proj, v_proj, RoPE, attention, o_proj as separate tape ops) give bitwise the same
    /// output (every q/k/v element sums the same products in the same order) and gradients within 1e-5 relative +
    /// 1e-7 absolute for x and every weight (dx sums the three projections' terms in one product, not three), under a
    /// random upstream gradient. The fused tape has two Linear ops, the unfused four, so the fusion is really taken.
    /// </summary>
    [Fact]
    public void FusedProjectionEqualsTheThreeProjections()
    {
        const int dim = 16, heads = 4, kvHeads = 2, hd = 8, batch = 2, seq = 5;
        var arena = new ParameterArena();
        var rope = new RopeTable(hd, seq, 1e4f, RopeStyle.HalfRotate);
        var attn = new CausalSelfAttention(arena, "attn", dim, heads, kvHeads, hd, rope, initStd: 0.3f, outStd: 0.3f);
        arena.Build(7);
        var upstream = Numerics.Random(batch * seq * dim, 9);
        (float[] Y, float[] Dx, float[] Grads, int Linears) Run(bool fused)
        {
            arena.ZeroGrad();
            var tape = new Tape();
            var x = Numerics.RandomTensor(8, 1f, batch * seq, dim);
            x.RequiresGrad = true;
            Tensor y;
            if (fused) y = attn.Forward(tape, x, batch, seq);
            else
            {
                var q = tape.Rope(tape.Linear(x, attn.Q.Weight.Value), heads, rope, seq);
                var k = tape.Rope(tape.Linear(x, attn.K.Weight.Value), kvHeads, rope, seq);
                var v = tape.Linear(x, attn.V.Weight.Value);
                y = tape.Linear(tape.CausalAttention(q, k, v, batch, heads, kvHeads, hd), attn.O.Weight.Value);
            }
            int linears = tape.Nodes.Count(n => n.Op == "Linear");
            tape.Backward(y, upstream);
            var result = (y.ToArray(), x.Grad!.ToArray(), (float[])arena.Grads.Clone(), linears);
            tape.Reset();
            return result;
        }
        var fusedRun = Run(true);
        var plain = Run(false);
        Assert.Equal(2, fusedRun.Linears);
        Assert.Equal(4, plain.Linears);
        Numerics.BitwiseEqual(plain.Y, fusedRun.Y, "output");
        Numerics.Close(plain.Dx, fusedRun.Dx, 1e-5f, 1e-7f, "dx");
        Numerics.Close(plain.Grads, fusedRun.Grads, 1e-5f, 1e-7f, "weight gradients");
        Assert.Contains(fusedRun.Grads, g => g != 0);
    }
}
