using MoeSharp.Autograd;
using MoeSharp.Kernels;
using MoeSharp.Tensors;

namespace MoeSharp.Nn;

/// <summary>
/// Causal multi-head self-attention with RoPE and grouped-query heads (q_proj, k_proj, v_proj, o_proj, no biases).
/// Training runs the fused kernel over whole sequences; generation appends to a <see cref="KvCache"/> and attends
/// over it.
/// </summary>
public sealed class CausalSelfAttention : Module
{
    public CausalSelfAttention(ParameterArena arena, string name, int dim, int heads, int kvHeads, int headDim, RopeTable rope,
        float initStd, float outStd) : base(arena, name)
    {
        Heads = heads;
        KvHeads = kvHeads;
        HeadDim = headDim;
        Rope = rope;
        Q = new Linear(arena, name + ".q_proj", dim, heads * headDim, initStd: initStd);
        K = new Linear(arena, name + ".k_proj", dim, kvHeads * headDim, initStd: initStd);
        V = new Linear(arena, name + ".v_proj", dim, kvHeads * headDim, initStd: initStd);
        O = new Linear(arena, name + ".o_proj", heads * headDim, dim, initStd: outStd);
    }

    public int Heads { get; }
    public int KvHeads { get; }
    public int HeadDim { get; }
    public RopeTable Rope { get; }
    public Linear Q { get; }
    public Linear K { get; }
    public Linear V { get; }
    public Linear O { get; }

    /// <summary>x [B·T, D] → [B·T, D], positions 0..T−1 in each sequence.</summary>
    public Tensor Forward(Tape tape, Tensor x, int batch, int seq)
    {
        var q = tape.Rope(Q.Forward(tape, x), Heads, Rope, seq); // [B·T, H·hd]
        var k = tape.Rope(K.Forward(tape, x), KvHeads, Rope, seq); // [B·T, KVH·hd]
        var v = V.Forward(tape, x); // [B·T, KVH·hd]
        return O.Forward(tape, tape.CausalAttention(q, k, v, batch, Heads, KvHeads, HeadDim));
    }

    /// <summary>
    /// Inference on n new positions of one sequence: x [n, D] at positions cache.Length.., appended to the cache.
    /// </summary>
    public Tensor Forward(Tape tape, Tensor x, KvCache.Layer cache)
    {
        if (tape.IsRecording) throw new InvalidOperationException("KV-cache attention is for inference; run it inside tape.NoGrad().");
        int n = x.RowCount, start = cache.Length;
        if (start + n > cache.Capacity)
            throw new InvalidOperationException($"The KV cache holds {cache.Capacity} positions; {start + n} are needed.");
        var q = tape.Rope(Q.Forward(tape, x), Heads, Rope, n, start); // [n, H·hd]
        var k = tape.Rope(K.Forward(tape, x), KvHeads, Rope, n, start); // [n, KVH·hd]
        var v = V.Forward(tape, x); // [n, KVH·hd]
        int width = KvHeads * HeadDim;
        k.Span.CopyTo(cache.Keys.AsSpan(start * width));
        v.Span.CopyTo(cache.Values.AsSpan(start * width));
        cache.Length = start + n;
        var y = tape.Allocate(n, Heads * HeadDim); // [n, H·hd]
        var lse = tape.Allocate(Heads, n); // [H, n]
        var shape = new AttentionShape(1, n, cache.Length, Heads, KvHeads, HeadDim, QueryOffset: start);
        Attention.Forward(q.Span, cache.Keys.AsSpan(0, cache.Length * width), cache.Values.AsSpan(0, cache.Length * width), y.Span, lse.Span, shape);
        return O.Forward(tape, y);
    }
}

/// <summary>Keys and values [capacity, KVH·hd] per layer for one sequence being generated.</summary>
public sealed class KvCache
{
    public KvCache(int layers, int capacity, int kvWidth)
    {
        Layers = new Layer[layers];
        for (int i = 0; i < layers; i++) Layers[i] = new Layer(capacity, kvWidth);
    }

    public Layer[] Layers { get; }

    /// <summary>Positions cached so far (the same in every layer).</summary>
    public int Length => Layers.Length == 0 ? 0 : Layers[0].Length;

    /// <summary>Positions the cache can hold.</summary>
    public int Capacity => Layers.Length == 0 ? 0 : Layers[0].Capacity;

    public void Clear()
    {
        foreach (var l in Layers) l.Length = 0;
    }

    public sealed class Layer(int capacity, int width)
    {
        public int Capacity { get; } = capacity;
        public float[] Keys { get; } = new float[capacity * width]; // [capacity, KVH·hd]
        public float[] Values { get; } = new float[capacity * width]; // [capacity, KVH·hd]
        public int Length { get; set; }
    }
}
