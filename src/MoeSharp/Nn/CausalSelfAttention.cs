using MoeSharp.Autograd;
using MoeSharp.Formats;
using MoeSharp.Kernels;
using MoeSharp.Tensors;

namespace MoeSharp.Nn;

/// <summary>Where RMSNorm is applied to the query and key projections, before RoPE.</summary>
public enum QkNorm
{
    /// <summary>No q/k normalisation (Llama, Mixtral, Qwen2-MoE).</summary>
    None,

    /// <summary>Each head's hd values normalised with one weight [hd] shared by the heads (Qwen3, Qwen3-MoE).</summary>
    PerHead,

    /// <summary>The whole projection (all heads together) normalised with a weight [H·hd] or [KVH·hd] (OLMoE).</summary>
    Whole,
}

/// <summary>
/// A block's attention sublayer: whole sequences for training, or new positions appended to a
/// <see cref="KvCache.Layer"/> for generation. Grouped-query attention (<see cref="CausalSelfAttention"/>) and
/// multi-head latent attention (<see cref="LatentAttention"/>) differ only in what they project and cache.
/// </summary>
public interface ISelfAttention
{
    /// <summary>x [B·T, D] → [B·T, D], positions 0..T−1 in each sequence.</summary>
    Tensor Forward(Tape tape, Tensor x, int batch, int seq);

    /// <summary>Inference on n new positions of one sequence: x [n, D] at positions cache.Length.., appended to the cache.</summary>
    Tensor Forward(Tape tape, Tensor x, KvCache.Layer cache);

    /// <summary>
    /// Inference on several sequences at once: x [N, D] holds sequence s's new positions in rows
    /// offsets[s]..offsets[s+1] (at least one each), at positions caches[s].Length.., appended to caches[s].
    /// Projections run on all N rows together; attention runs per sequence against its own cache.
    /// </summary>
    Tensor Forward(Tape tape, Tensor x, IReadOnlyList<KvCache.Layer> caches, int[] offsets);
}

/// <summary>
/// Causal multi-head self-attention with RoPE and grouped-query heads (q_proj, k_proj, v_proj, o_proj), optionally
/// with q/k/v biases (Qwen2), an o_proj bias, an RMSNorm on q and k before RoPE (q_norm, k_norm; see
/// <see cref="QkNorm"/>), a sliding window and per-head attention sinks (GPT-OSS).
/// Training runs the fused kernel over whole sequences; generation appends to a <see cref="KvCache"/> and attends
/// over it.
/// </summary>
public sealed class CausalSelfAttention : Module, ISelfAttention
{
    /// <summary>
    /// Declares the projections in <paramref name="arena"/> under <paramref name="name"/>: q/k/v (from
    /// <paramref name="dim"/> to heads × <paramref name="headDim"/>) with biases when <paramref name="qkvBias"/>, o_proj
    /// (back to dim) drawn from N(0, <paramref name="outStd"/>²) and the others from N(0, <paramref name="initStd"/>²),
    /// and q_norm/k_norm (epsilon <paramref name="normEps"/>) per <paramref name="qkNorm"/>; o_proj's bias when
    /// <paramref name="outBias"/>, sinks [H] when <paramref name="sinks"/>, and a window of <paramref name="window"/>
    /// keys (0: all).
    /// </summary>
    public CausalSelfAttention(ParameterArena arena, string name, int dim, int heads, int kvHeads, int headDim, RopeTable rope,
        float initStd, float outStd, bool qkvBias = false, QkNorm qkNorm = QkNorm.None, float normEps = 1e-6f,
        bool outBias = false, bool sinks = false, int window = 0) : base(arena, name)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(window);
        Window = window;
        if (!Enum.IsDefined(qkNorm)) throw new ArgumentOutOfRangeException(nameof(qkNorm), $"Unknown q/k norm {(int)qkNorm}.");
        Heads = heads;
        KvHeads = kvHeads;
        HeadDim = headDim;
        Rope = rope;
        QkNorm = qkNorm;
        Q = new Linear(arena, name + ".q_proj", dim, heads * headDim, qkvBias, initStd);
        K = new Linear(arena, name + ".k_proj", dim, kvHeads * headDim, qkvBias, initStd);
        V = new Linear(arena, name + ".v_proj", dim, kvHeads * headDim, qkvBias, initStd);
        O = new Linear(arena, name + ".o_proj", heads * headDim, dim, outBias, initStd: outStd);
        if (sinks) Sinks = Param("sinks", [heads], Init.Zeros);
        if (qkNorm == QkNorm.None) return;
        QNorm = new RmsNorm(arena, name + ".q_norm", qkNorm == QkNorm.PerHead ? headDim : heads * headDim, normEps);
        KNorm = new RmsNorm(arena, name + ".k_norm", qkNorm == QkNorm.PerHead ? headDim : kvHeads * headDim, normEps);
    }

    /// <summary>Keys each position sees (itself and the W − 1 before it); 0 for all.</summary>
    public int Window { get; }

    /// <summary>The sink logit of each head [H]; null without sinks.</summary>
    public Parameter? Sinks { get; }

    /// <summary>Where q and k are normalised before RoPE.</summary>
    public QkNorm QkNorm { get; }

    /// <summary>The query norm (q_norm), null without one.</summary>
    public RmsNorm? QNorm { get; }

    /// <summary>The key norm (k_norm), null without one.</summary>
    public RmsNorm? KNorm { get; }

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
        var q = tape.Rope(Project(tape, Q, QNorm, x, Heads), Heads, Rope, seq); // [B·T, H·hd]
        var k = tape.Rope(Project(tape, K, KNorm, x, KvHeads), KvHeads, Rope, seq); // [B·T, KVH·hd]
        var v = V.Forward(tape, x); // [B·T, KVH·hd]
        return O.Forward(tape, tape.CausalAttention(q, k, v, batch, Heads, KvHeads, HeadDim, Window, Sinks?.Value));
    }

    /// <summary>
    /// Inference on n new positions of one sequence: x [n, D] at positions cache.Length.., appended to the cache.
    /// </summary>
    public Tensor Forward(Tape tape, Tensor x, KvCache.Layer cache) => Forward(tape, x, [cache], [0, x.RowCount]);

    /// <inheritdoc />
    public Tensor Forward(Tape tape, Tensor x, IReadOnlyList<KvCache.Layer> caches, int[] offsets)
    {
        KvCache.CheckBatch(tape, x, caches, offsets);
        int n = x.RowCount, width = KvHeads * HeadDim, qWidth = Heads * HeadDim;
        Tensor q, k, v;
        if (!TryProjectDecode(tape, x, out q, out k, out v))
        {
            q = Project(tape, Q, QNorm, x, Heads); // [N, H·hd]
            k = Project(tape, K, KNorm, x, KvHeads); // [N, KVH·hd]
            v = V.Forward(tape, x); // [N, KVH·hd]
        }
        var y = tape.Allocate(n, qWidth); // [N, H·hd]
        var lse = tape.Allocate(Heads * n); // [H·N] per sequence [H, n_s]
        for (int s = 0; s < caches.Count; s++)
        {
            var cache = caches[s];
            int r0 = offsets[s], rows = offsets[s + 1] - r0, start = cache.Length;
            // q and k are this pass's own buffers, so each sequence's rows are rotated in place at its own positions.
            var qs = q.Span.Slice(r0 * qWidth, rows * qWidth); // [n_s, H·hd]
            var ks = k.Span.Slice(r0 * width, rows * width); // [n_s, KVH·hd]
            Kernels.Rope.Apply(qs, Heads, Rope, rows, start);
            Kernels.Rope.Apply(ks, KvHeads, Rope, rows, start);
            ks.CopyTo(cache.Keys.AsSpan(start * width));
            v.Span.Slice(r0 * width, rows * width).CopyTo(cache.Values.AsSpan(start * width));
            cache.Length = start + rows;
            var shape = new AttentionShape(1, rows, cache.Length, Heads, KvHeads, HeadDim, QueryOffset: start, Window: Window);
            Attention.Forward(qs, cache.Keys.AsSpan(0, cache.Length * width), cache.Values.AsSpan(0, cache.Length * width),
                y.Span.Slice(r0 * qWidth, rows * qWidth), lse.Span.Slice(r0 * Heads, rows * Heads), shape, Sinks is null ? default : Sinks.Value.Span);
        }
        return O.Forward(tape, y);
    }

    /// <summary>x [N, D] → [N, heads·hd], normalised per head or as a whole when the layer has q/k norms.</summary>
    private Tensor Project(Tape tape, Linear projection, RmsNorm? norm, Tensor x, int heads) =>
        Normalize(tape, norm, projection.Forward(tape, x), heads);

    /// <summary>
    /// Decode (one row) with stored q/k/v weights: the three projections in one parallel loop
    /// (<see cref="MatVecGroup"/>) instead of one each, then the biases and norms as <see cref="Project"/> applies
    /// them, so bitwise its q, k and v. False, computing nothing, where the general path applies.
    /// </summary>
    private bool TryProjectDecode(Tape tape, Tensor x, out Tensor q, out Tensor k, out Tensor v)
    {
        q = k = v = null!;
        if (x.Rank != 2 || x.RowCount != 1 || !MatVecGroup.Enabled || tape.Tracks(x)
            || Q.Weight.Stored is not { } wq || K.Weight.Stored is not { } wk || V.Weight.Stored is not { } wv
            || wq[0].Cols != x.Dim(x.Rank - 1) || wk[0].Cols != wq[0].Cols || wv[0].Cols != wq[0].Cols)
            return false;
        int qWidth = wq[0].Rows, kWidth = wk[0].Rows, vWidth = wv[0].Rows;
        var qkv = tape.Allocate(qWidth + kWidth + vWidth).Span; // [H·hd + 2·KVH·hd]
        MatVecGroup.MatVec([wq[0], wk[0], wv[0]], x.Span, 1, qkv);
        q = Normalize(tape, QNorm, Take(tape, qkv[..qWidth], Q.Bias), Heads); // [1, H·hd]
        k = Normalize(tape, KNorm, Take(tape, qkv.Slice(qWidth, kWidth), K.Bias), KvHeads); // [1, KVH·hd]
        v = Take(tape, qkv.Slice(qWidth + kWidth, vWidth), V.Bias); // [1, KVH·hd]
        return true;
    }

    /// <summary>A [1, width] output holding <paramref name="row"/> plus the bias, added as StoredLinear adds it.</summary>
    private static Tensor Take(Tape tape, ReadOnlySpan<float> row, Parameter? bias)
    {
        var t = tape.Output(false, 1, row.Length);
        if (bias is null) row.CopyTo(t.Span);
        else TensorPrimitives.Add(row, bias.Value.Span, t.Span);
        return t;
    }

    private Tensor Normalize(Tape tape, RmsNorm? norm, Tensor h, int heads)
    {
        if (norm is null) return h;
        if (QkNorm == QkNorm.Whole) return norm.Forward(tape, h);
        int n = h.RowCount;
        // Rows of hd: each head of each token is its own RMSNorm row, so one call normalises them all.
        var perHead = norm.Forward(tape, tape.Reshape(h, n * heads, HeadDim)); // [N·heads, hd]
        return tape.Reshape(perHead, n, heads * HeadDim);
    }
}

/// <summary>
/// Keys and values per layer for one sequence being generated: [capacity, KVH·hd] each for grouped-query attention,
/// or one [capacity, kv_lora_rank + qk_rope_head_dim] row of latent and shared rotary key (and no values) for
/// multi-head latent attention.
/// </summary>
public sealed class KvCache
{
    /// <summary>An empty cache of <paramref name="layers"/> layers, each holding <paramref name="capacity"/> positions of <paramref name="kvWidth"/> (KVH·hd) keys and as many values.</summary>
    public KvCache(int layers, int capacity, int kvWidth) : this(layers, capacity, kvWidth, kvWidth)
    {
    }

    /// <summary>An empty cache of <paramref name="layers"/> layers, each holding <paramref name="capacity"/> positions of <paramref name="keyWidth"/> key floats and <paramref name="valueWidth"/> value floats.</summary>
    public KvCache(int layers, int capacity, int keyWidth, int valueWidth)
    {
        Layers = new Layer[layers];
        for (int i = 0; i < layers; i++) Layers[i] = new Layer(capacity, keyWidth, valueWidth);
    }

    /// <summary>One cache per attention layer, in model order.</summary>
    public Layer[] Layers { get; }

    /// <summary>Positions cached so far (the same in every layer).</summary>
    public int Length => Layers.Length == 0 ? 0 : Layers[0].Length;

    /// <summary>Positions the cache can hold.</summary>
    public int Capacity => Layers.Length == 0 ? 0 : Layers[0].Capacity;

    /// <summary>Bytes one position takes over all layers: what a longer context costs in memory.</summary>
    public long BytesPerPosition
    {
        get
        {
            long bytes = 0;
            foreach (var l in Layers) bytes += (long)(l.KeyWidth + l.ValueWidth) * sizeof(float);
            return bytes;
        }
    }

    /// <summary>
    /// Checks a batched cached forward's layout: inference only, offsets [S+1] rising from 0 to x's row count with
    /// at least one row per sequence, and room in each sequence's cache for its rows.
    /// </summary>
    internal static void CheckBatch(Tape tape, Tensor x, IReadOnlyList<Layer> caches, int[] offsets)
    {
        if (tape.IsRecording) throw new InvalidOperationException("KV-cache attention is for inference; run it inside tape.NoGrad().");
        if (caches.Count == 0 || offsets.Length != caches.Count + 1 || offsets[0] != 0 || offsets[^1] != x.RowCount)
            throw new ArgumentException($"A batched forward needs offsets [S+1] from 0 to the {x.RowCount} rows for its {caches.Count} caches; got {offsets.Length} offsets.");
        for (int s = 0; s < caches.Count; s++)
        {
            int rows = offsets[s + 1] - offsets[s];
            if (rows <= 0) throw new ArgumentException($"Sequence {s} of the batch brings {rows} rows; each brings at least one.");
            if (caches[s].Length + rows > caches[s].Capacity)
                throw new InvalidOperationException($"The KV cache holds {caches[s].Capacity} positions; {caches[s].Length + rows} are needed.");
        }
    }

    /// <summary>Forgets every position (keeps the buffers) so the cache can serve a new sequence.</summary>
    public void Clear()
    {
        foreach (var l in Layers) l.Length = 0;
    }

    /// <summary>One layer's keys and values: <paramref name="capacity"/> positions of <paramref name="keyWidth"/> key and <paramref name="valueWidth"/> value floats each.</summary>
    public sealed class Layer(int capacity, int keyWidth, int valueWidth)
    {
        /// <summary>Positions this layer can hold.</summary>
        public int Capacity { get; } = capacity;
        /// <summary>Floats per position in <see cref="Keys"/>.</summary>
        public int KeyWidth { get; } = keyWidth;
        /// <summary>Floats per position in <see cref="Values"/>; 0 when the keys carry everything (latent attention).</summary>
        public int ValueWidth { get; } = valueWidth;
        /// <summary>Keys after RoPE, [capacity, KeyWidth]; rows [0, <see cref="Length"/>) are valid.</summary>
        public float[] Keys { get; } = new float[capacity * keyWidth]; // [capacity, KeyWidth]
        /// <summary>Values, [capacity, ValueWidth]; rows [0, <see cref="Length"/>) are valid.</summary>
        public float[] Values { get; } = new float[capacity * valueWidth]; // [capacity, ValueWidth]
        /// <summary>Positions written so far.</summary>
        public int Length { get; set; }
    }
}
