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
    /// <summary>Registers <c>{name}.q_proj</c>, k_proj, v_proj (from <paramref name="dim"/> to heads × <paramref name="headDim"/>) and o_proj (back to dim); o_proj draws from N(0, <paramref name="outStd"/>²), the others from N(0, <paramref name="initStd"/>²).</summary>
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

    /// <summary>Query heads H.</summary>
    public int Heads { get; }
    /// <summary>Key/value heads; each serves H / KvHeads query heads (grouped-query attention).</summary>
    public int KvHeads { get; }
    /// <summary>Elements per head (hd).</summary>
    public int HeadDim { get; }
    /// <summary>The rotary table applied to queries and keys, shared by every layer of a model.</summary>
    public RopeTable Rope { get; }
    /// <summary>Query projection [H·hd, D].</summary>
    public Linear Q { get; }
    /// <summary>Key projection [KVH·hd, D].</summary>
    public Linear K { get; }
    /// <summary>Value projection [KVH·hd, D].</summary>
    public Linear V { get; }
    /// <summary>Output projection [D, H·hd].</summary>
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
    /// <summary>An empty cache of <paramref name="layers"/> layers, each holding <paramref name="capacity"/> positions of <paramref name="kvWidth"/> (KVH·hd) keys and as many values.</summary>
    public KvCache(int layers, int capacity, int kvWidth)
    {
        Layers = new Layer[layers];
        for (int i = 0; i < layers; i++) Layers[i] = new Layer(capacity, kvWidth);
    }

    /// <summary>One cache per attention layer, in model order.</summary>
    public Layer[] Layers { get; }

    /// <summary>Positions cached so far (the same in every layer).</summary>
    public int Length => Layers.Length == 0 ? 0 : Layers[0].Length;

    /// <summary>Positions the cache can hold.</summary>
    public int Capacity => Layers.Length == 0 ? 0 : Layers[0].Capacity;

    /// <summary>Forgets every position (keeps the buffers) so the cache can serve a new sequence.</summary>
    public void Clear()
    {
        foreach (var l in Layers) l.Length = 0;
    }

    /// <summary>One layer's keys and values: <paramref name="capacity"/> positions of <paramref name="width"/> (KVH·hd) floats each.</summary>
    public sealed class Layer(int capacity, int width)
    {
        /// <summary>Positions this layer can hold.</summary>
        public int Capacity { get; } = capacity;
        /// <summary>Keys after RoPE, [capacity, KVH·hd]; rows [0, <see cref="Length"/>) are valid.</summary>
        public float[] Keys { get; } = new float[capacity * width]; // [capacity, KVH·hd]
        /// <summary>Values, [capacity, KVH·hd]; rows [0, <see cref="Length"/>) are valid.</summary>
        public float[] Values { get; } = new float[capacity * width]; // [capacity, KVH·hd]
        /// <summary>Positions written so far.</summary>
        public int Length { get; set; }
    }
}
