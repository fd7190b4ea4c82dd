using MoeSharp.Kernels;

namespace MoeSharp.Tests.Kernels;

[Trait("Category", "Kernel")]
public class AttentionTests
{
    [Theory]
    [InlineData(2, 9, 4, 4, 8)]   // multi-head
    [InlineData(1, 17, 4, 2, 16)] // grouped-query: two query heads per KV head
    [InlineData(3, 1, 2, 1, 4)]   // a single position
    [InlineData(1, 70, 1, 1, 32)]
    public void ForwardMatchesMaterialisedTwin(int batch, int t, int heads, int kvHeads, int hd)
    {
        var s = new AttentionShape(batch, t, t, heads, kvHeads, hd);
        var q = Numerics.Random(batch * t * heads * hd, 1, 2f);
        var k = Numerics.Random(batch * t * kvHeads * hd, 2, 2f);
        var v = Numerics.Random(batch * t * kvHeads * hd, 3);
        var fast = new float[q.Length];
        var twin = new float[q.Length];
        Attention.Forward(q, k, v, fast, new float[batch * heads * t], s);
        Attention.ForwardReference(q, k, v, twin, s);
        Numerics.Close(twin, fast, 1e-5f, 2e-6f, "attention");
    }

    /// <summary>Windows shorter and longer than the sequence, with sinks of either sign; tolerance as the plain twin's.</summary>
    [Theory]
    [InlineData(2, 9, 4, 4, 8, 3)]
    [InlineData(1, 70, 2, 1, 16, 5)]  // more than one query block
    [InlineData(1, 17, 4, 2, 16, 40)] // window beyond the sequence: plain causal with sinks
    [InlineData(1, 12, 2, 2, 4, 1)]   // each position sees only itself
    public void WindowAndSinksMatchMaterialisedTwin(int batch, int t, int heads, int kvHeads, int hd, int window)
    {
        var s = new AttentionShape(batch, t, t, heads, kvHeads, hd, Window: window);
        var q = Numerics.Random(batch * t * heads * hd, 1, 2f);
        var k = Numerics.Random(batch * t * kvHeads * hd, 2, 2f);
        var v = Numerics.Random(batch * t * kvHeads * hd, 3);
        var sinks = Numerics.Random(heads, 4, 3f);
        var fast = new float[q.Length];
        var twin = new float[q.Length];
        Attention.Forward(q, k, v, fast, new float[batch * heads * t], s, sinks);
        Attention.ForwardReference(q, k, v, twin, s, sinks);
        Numerics.Close(twin, fast, 1e-5f, 2e-6f, "attention with window and sinks");
        var plain = new float[q.Length];
        Attention.ForwardReference(q, k, v, plain, s with { Window = 0 });
        Assert.NotEqual(plain, twin); // the window and the sinks change the result
    }

    [Fact]
    public void SinkOnlyScalesTheFirstPosition()
    {
        // One key: weights p = 1/(1 + e^(sink − s)); with s = 0 and sink = ln 3 the output is v/4.
        float[] q = [0, 0], k = [1, 2], v = [8, -4];
        var o = new float[2];
        Attention.Forward(q, k, v, o, new float[1], new AttentionShape(1, 1, 1, 1, 1, 2), [MathF.Log(3)]);
        Assert.Equal(2f, o[0], 5);
        Assert.Equal(-1f, o[1], 5);
    }

    [Fact]
    public void QueryOffsetEqualsTheTailOfAFullPass()
    {
        // Queries for positions 5..8 against 9 cached keys equal rows 5..8 of a full causal pass.
        int t = 9, h = 2, hd = 4, off = 5;
        var q = Numerics.Random(t * h * hd, 1);
        var k = Numerics.Random(t * h * hd, 2);
        var v = Numerics.Random(t * h * hd, 3);
        var full = new float[q.Length];
        Attention.Forward(q, k, v, full, new float[h * t], new AttentionShape(1, t, t, h, h, hd));
        var tail = new float[(t - off) * h * hd];
        Attention.Forward(q.AsSpan(off * h * hd), k, v, tail, new float[h * (t - off)], new AttentionShape(1, t - off, t, h, h, hd, off));
        Numerics.BitwiseEqual(full.AsSpan(off * h * hd), tail, "offset queries");
    }

    [Fact]
    public void FirstPositionAttendsOnlyToItself()
    {
        float[] q = [1, 0], k = [5, 5, -5, 1], v = [7, -3, 100, 100];
        var o = new float[4];
        Attention.Forward(q.Concat(q).ToArray(), k, v, o, new float[2], new AttentionShape(1, 2, 2, 1, 1, 2));
        Assert.Equal(7f, o[0]);
        Assert.Equal(-3f, o[1]);
    }

    /// <summary>
    /// The direct small-head kernels against the blocked path (forward, lse, and dq, dk, dv added onto random
    /// starting values) and the forward against the materialised twin: relative 1e-5 + absolute 2e-6 as the blocked
    /// path's own twin test, 2e-5 relative for the gradients (sums of up to T products in another order). Shapes: one
    /// vector-wide head, grouped queries, lengths off the vector and block sizes, the longest taken. One and two threads
    /// agree bitwise.
    /// </summary>
    [Theory]
    [InlineData(2, 9, 4, 4, 16)]
    [InlineData(3, 64, 4, 4, 32)]   // the char-LM's heads
    [InlineData(1, 37, 4, 2, 64)]   // grouped-query
    [InlineData(1, 256, 2, 1, 128)] // the longest sequence and widest head taken
    [InlineData(2, 1, 2, 2, 32)]    // a single position
    public void DirectKernelsMatchTheBlockedPath(int batch, int t, int heads, int kvHeads, int hd)
    {
        var s = new AttentionShape(batch, t, t, heads, kvHeads, hd);
        if (!Attention.DirectApplies(s, sinks: false)) Assert.Skip("no AVX-512 here: the direct kernels are not used");
        var q = Numerics.Random(batch * t * heads * hd, 1, 2f);
        var k = Numerics.Random(batch * t * kvHeads * hd, 2, 2f);
        var v = Numerics.Random(batch * t * kvHeads * hd, 3);
        var dout = Numerics.Random(q.Length, 4);
        (float[] O, float[] Lse, float[] Dq, float[] Dk, float[] Dv) Run(bool direct, int threads)
        {
            using var limit = Parallelism.Limit(threads);
            var o = new float[q.Length];
            var lse = new float[batch * heads * t];
            var (dq, dk, dv) = (Numerics.Random(q.Length, 5), Numerics.Random(k.Length, 6), Numerics.Random(v.Length, 7));
            if (direct)
            {
                Attention.ForwardDirect(q, k, v, o, lse, s);
                Attention.BackwardDirect(dout, q, k, v, o, lse, dq, dk, dv, s);
            }
            else
            {
                Attention.Forward(q, k, v, o, lse, s);
                Attention.Backward(dout, q, k, v, o, lse, dq, dk, dv, s);
            }
            return (o, lse, dq, dk, dv);
        }
        var fast = Run(true, 1);
        var blocked = Run(false, 1);
        var twin = new float[q.Length];
        Attention.ForwardReference(q, k, v, twin, s);
        Numerics.Close(twin, fast.O, 1e-5f, 2e-6f, "direct forward vs twin");
        Numerics.Close(blocked.O, fast.O, 1e-5f, 2e-6f, "direct forward");
        Numerics.Close(blocked.Lse, fast.Lse, 1e-5f, 2e-6f, "lse");
        Numerics.Close(blocked.Dq, fast.Dq, 2e-5f, 2e-6f, "dq");
        Numerics.Close(blocked.Dk, fast.Dk, 2e-5f, 2e-6f, "dk");
        Numerics.Close(blocked.Dv, fast.Dv, 2e-5f, 2e-6f, "dv");
        var two = Run(true, 2);
        Numerics.BitwiseEqual(fast.O, two.O, "1 vs 2 threads: output");
        Numerics.BitwiseEqual(fast.Dq, two.Dq, "1 vs 2 threads: dq");
        Numerics.BitwiseEqual(fast.Dk, two.Dk, "1 vs 2 threads: dk");
        Numerics.BitwiseEqual(fast.Dv, two.Dv, "1 vs 2 threads: dv");
    }

    [Fact]
    public void DirectKernelsRefuseOtherShapes()
    {
        Assert.False(Attention.DirectApplies(new AttentionShape(1, 8, 8, 2, 2, 8), sinks: false));               // head not a vector multiple
        Assert.False(Attention.DirectApplies(new AttentionShape(1, 8, 8, 2, 2, 32), sinks: true));               // sinks
        Assert.False(Attention.DirectApplies(new AttentionShape(1, 8, 8, 2, 2, 32, Window: 4), sinks: false));   // window
        Assert.False(Attention.DirectApplies(new AttentionShape(1, 4, 8, 2, 2, 32, QueryOffset: 4), sinks: false)); // cache offset
        Assert.False(Attention.DirectApplies(new AttentionShape(1, 257, 257, 2, 2, 32), sinks: false));          // too long
    }
}
