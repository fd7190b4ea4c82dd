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
}
