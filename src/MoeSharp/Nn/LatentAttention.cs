using MoeSharp.Autograd;
using MoeSharp.Kernels;
using MoeSharp.Tensors;

namespace MoeSharp.Nn;

/// <summary>
/// Sizes of multi-head latent attention (DeepSeek-V2/V3), as config.json names them. Keys and values come from one
/// latent of <see cref="KvLoraRank"/> per token; each head's query and key are a content part of
/// <see cref="QkNopeHeadDim"/> and a rotary part of <see cref="QkRopeHeadDim"/>, the rotary key shared by all heads.
/// </summary>
public sealed record MlaOptions
{
    /// <summary>Width of the query's low-rank bottleneck (q_a_proj → q_a_layernorm → q_b_proj); 0 for a plain q_proj.</summary>
    public int QLoraRank { get; init; }

    /// <summary>Width r of the key/value latent, the part of each position the cache keeps besides the rotary key.</summary>
    public int KvLoraRank { get; init; }

    /// <summary>Per-head width of the query/key part without RoPE.</summary>
    public int QkNopeHeadDim { get; init; }

    /// <summary>Per-head width of the rotary query/key part (dr); the rotary key is one [dr] per token for all heads.</summary>
    public int QkRopeHeadDim { get; init; }

    /// <summary>Per-head width of the values, which may differ from the query/key width.</summary>
    public int VHeadDim { get; init; }

    /// <summary>
    /// Factor on the softmax scale 1/√(qk_nope + qk_rope): 1 without RoPE scaling, YaRN's mscale² with it
    /// (DeepSeek multiplies its softmax_scale by mscale·mscale).
    /// </summary>
    public float SoftmaxMultiplier { get; init; } = 1f;

    /// <summary>Query/key width of one head: <see cref="QkNopeHeadDim"/> + <see cref="QkRopeHeadDim"/>.</summary>
    public int QkHeadDim => QkNopeHeadDim + QkRopeHeadDim;

    /// <summary>
    /// Throws <see cref="ArgumentException"/> naming the first invalid field (snake_case, as in config.json); the
    /// message is one line of its own, without a parameter suffix, so a config loader can prefix its file name.
    /// </summary>
    public void Validate()
    {
        static void Require(bool ok, string field, string message)
        {
            if (!ok) throw new ArgumentException($"mla.{field}: {message}");
        }
        Require(QLoraRank >= 0, "q_lora_rank", $"must be 0 (no query compression) or positive, got {QLoraRank}.");
        Require(KvLoraRank > 0, "kv_lora_rank", $"must be positive, got {KvLoraRank}.");
        Require(QkNopeHeadDim > 0, "qk_nope_head_dim", $"must be positive, got {QkNopeHeadDim}.");
        Require(QkRopeHeadDim > 0 && QkRopeHeadDim % 2 == 0, "qk_rope_head_dim", $"must be even and positive for RoPE, got {QkRopeHeadDim}.");
        Require(VHeadDim > 0, "v_head_dim", $"must be positive, got {VHeadDim}.");
        Require(SoftmaxMultiplier > 0 && float.IsFinite(SoftmaxMultiplier), "softmax_multiplier", $"must be positive, got {SoftmaxMultiplier}.");
    }
}

/// <summary>
/// Multi-head latent attention (DeepSeek-V2/V3). Dimensions: N tokens, D width, H heads, r = kv_lora_rank,
/// dn = qk_nope_head_dim, dr = qk_rope_head_dim, dv = v_head_dim.
/// <code>
/// q      = q_b_proj(rms(q_a_proj x))  or q_proj x            [N, H·(dn+dr)], per head [q_nope | RoPE(q_rope)]
/// kv_a   = kv_a_proj_with_mqa x                                [N, r+dr] = [latent | k_rope]
/// latent = kv_a_layernorm(latent); k_rope = RoPE(k_rope)      one rotary key per token, shared by the heads
/// kv_b_proj latent                                             [N, H·(dn+dv)], per head [k_nope | v]
/// </code>
/// Training expands keys and values per head and runs the fused attention kernel. Generation caches only
/// [latent | k_rope] per position and absorbs kv_b_proj into the query and output instead (DeepSeek-V2 §2.1.2,
/// llama.cpp's MLA path): q_nope·k_nope = (q_nope·W_kᵀ)·latent, so attention runs as one shared key head of width
/// r+dr over the cache, and the values' W_v is applied to the attended latent afterwards.
/// </summary>
public sealed class LatentAttention : Module, ISelfAttention
{
    private readonly int _heads;
    private readonly MlaOptions _o;

    /// <summary>
    /// Declares the projections under <paramref name="name"/> with Hugging Face DeepSeek names; o_proj drawn from
    /// N(0, <paramref name="outStd"/>²), the others from N(0, <paramref name="initStd"/>²); the two latent RMSNorms use
    /// <paramref name="normEps"/>. <paramref name="rope"/> rotates dr elements.
    /// </summary>
    public LatentAttention(ParameterArena arena, string name, int dim, int heads, MlaOptions options, RopeTable rope,
        float initStd, float outStd, float normEps) : base(arena, name)
    {
        options.Validate();
        if (rope.HeadDim != options.QkRopeHeadDim)
            throw new ArgumentException($"LatentAttention: the RoPE table rotates {rope.HeadDim} elements; qk_rope_head_dim is {options.QkRopeHeadDim}.", nameof(rope));
        _heads = heads;
        _o = options;
        Rope = rope;
        int qk = heads * options.QkHeadDim;
        if (options.QLoraRank > 0)
        {
            QA = new Linear(arena, name + ".q_a_proj", dim, options.QLoraRank, initStd: initStd);
            QANorm = new RmsNorm(arena, name + ".q_a_layernorm", options.QLoraRank, normEps);
            QB = new Linear(arena, name + ".q_b_proj", options.QLoraRank, qk, initStd: initStd);
        }
        else
        {
            Q = new Linear(arena, name + ".q_proj", dim, qk, initStd: initStd);
        }
        KvA = new Linear(arena, name + ".kv_a_proj_with_mqa", dim, options.KvLoraRank + options.QkRopeHeadDim, initStd: initStd);
        KvANorm = new RmsNorm(arena, name + ".kv_a_layernorm", options.KvLoraRank, normEps);
        KvB = new Linear(arena, name + ".kv_b_proj", options.KvLoraRank, heads * (options.QkNopeHeadDim + options.VHeadDim), initStd: initStd);
        O = new Linear(arena, name + ".o_proj", heads * options.VHeadDim, dim, initStd: outStd);
    }

    /// <summary>The sizes this layer was built with.</summary>
    public MlaOptions Options => _o;
    /// <summary>The rotary table for the dr-wide rotary parts.</summary>
    public RopeTable Rope { get; }
    /// <summary>Query down-projection [q_lora_rank, D]; null without query compression.</summary>
    public Linear? QA { get; }
    /// <summary>RMSNorm on the compressed query; null without query compression.</summary>
    public RmsNorm? QANorm { get; }
    /// <summary>Query up-projection [H·(dn+dr), q_lora_rank]; null without query compression.</summary>
    public Linear? QB { get; }
    /// <summary>Plain query projection [H·(dn+dr), D]; null with query compression.</summary>
    public Linear? Q { get; }
    /// <summary>Latent and rotary key projection [r+dr, D] (kv_a_proj_with_mqa).</summary>
    public Linear KvA { get; }
    /// <summary>RMSNorm on the latent (kv_a_layernorm).</summary>
    public RmsNorm KvANorm { get; }
    /// <summary>Latent to per-head keys and values [H·(dn+dv), r] (kv_b_proj).</summary>
    public Linear KvB { get; }
    /// <summary>Output projection [D, H·dv].</summary>
    public Linear O { get; }

    /// <summary>Floats one position takes in this layer's cache: the latent and the shared rotary key.</summary>
    public int CacheWidth => _o.KvLoraRank + _o.QkRopeHeadDim;

    /// <inheritdoc />
    public Tensor Forward(Tape tape, Tensor x, int batch, int seq)
    {
        int n = x.RowCount, h = _heads, dn = _o.QkNopeHeadDim, dr = _o.QkRopeHeadDim, dv = _o.VHeadDim, qk = _o.QkHeadDim;
        var (qNope, qRope) = Queries(tape, x, seq); // [N·H, dn], [N·H, dr]
        var (latent, kRope) = Latent(tape, x, seq); // [N, r], [N, dr]
        var kv = tape.Reshape(KvB.Forward(tape, latent), n * h, dn + dv); // [N·H, dn+dv]
        var repeat = tape.RentInts(n * h); // [N·H] token of each (token, head) row
        for (int i = 0; i < repeat.Length; i++) repeat[i] = i / h;
        // Every head sees the same rotary key: gathering its row once per head has the summing backward it needs.
        var keys = tape.Concat([tape.Columns(kv, 0, dn), tape.Embedding(kRope, repeat)]); // [N·H, qk]
        var values = tape.Columns(kv, dn, dv); // [N·H, dv]
        // The fused kernel takes one head width for q, k and v; zero columns widen the narrower side without
        // changing scores or outputs, and q is rescaled so the kernel's 1/√hd becomes DeepSeek's multiplier/√qk.
        int hd = Math.Max(qk, dv);
        var q = Widen(tape, tape.Concat([qNope, qRope]), hd); // [N·H, hd]
        float scale = _o.SoftmaxMultiplier * MathF.Sqrt((float)hd / qk);
        if (scale != 1f) q = tape.Scale(q, scale);
        var y = tape.CausalAttention(tape.Reshape(q, n, h * hd), tape.Reshape(Widen(tape, keys, hd), n, h * hd),
            tape.Reshape(Widen(tape, values, hd), n, h * hd), batch, h, h, hd); // [N, H·hd]
        var heads = tape.Columns(tape.Reshape(y, n * h, hd), 0, dv); // [N·H, dv]
        return O.Forward(tape, tape.Reshape(heads, n, h * dv));
    }

    /// <inheritdoc />
    public Tensor Forward(Tape tape, Tensor x, KvCache.Layer cache) => Forward(tape, x, [cache], [0, x.RowCount]);

    /// <inheritdoc />
    public Tensor Forward(Tape tape, Tensor x, IReadOnlyList<KvCache.Layer> caches, int[] offsets)
    {
        KvCache.CheckBatch(tape, x, caches, offsets);
        int n = x.RowCount, h = _heads;
        int r = _o.KvLoraRank, dn = _o.QkNopeHeadDim, dr = _o.QkRopeHeadDim, dv = _o.VHeadDim, w = CacheWidth;
        foreach (var cache in caches)
            if (cache.KeyWidth != w)
                throw new InvalidOperationException($"The KV cache keeps {cache.KeyWidth} floats per position; latent attention needs {w} (kv_lora_rank + qk_rope_head_dim).");
        var (qNope, qRope) = Queries(tape, x, n, rotate: false); // [N·H, dn], [N·H, dr]
        var (latent, kRope) = Latent(tape, x, n, rotate: false); // [N, r], [N, dr]
        for (int s = 0; s < caches.Count; s++)
        {
            // Both rotary parts are this pass's own buffers, so each sequence's rows are rotated in place at its own positions.
            int r0 = offsets[s], rows = offsets[s + 1] - r0, start = caches[s].Length;
            Kernels.Rope.Apply(qRope.Span.Slice(r0 * h * dr, rows * h * dr), h, Rope, rows, start);
            Kernels.Rope.Apply(kRope.Span.Slice(r0 * dr, rows * dr), 1, Rope, rows, start);
        }
        var wkv = KvB.Weight.Value.Span; // [H·(dn+dv), r]: head j's rows are W_k [dn, r] then W_v [dv, r]
        var q = tape.Allocate(n, h * w); // [N, H·(r+dr)] per head [q_nope·W_k | q_rope]
        for (int j = 0; j < h; j++)
        {
            Gemm.Multiply(qNope.Span[(j * dn)..], wkv[(j * (dn + dv) * r)..], q.Span[(j * w)..], n, r, dn,
                lda: h * dn, ldb: r, ldc: h * w);
            for (int t = 0; t < n; t++) qRope.Span.Slice((t * h + j) * dr, dr).CopyTo(q.Span.Slice(t * h * w + j * w + r, dr));
        }
        TensorPrimitives.Multiply(q.Span, _o.SoftmaxMultiplier * MathF.Sqrt((float)w / _o.QkHeadDim), q.Span);
        // The cached rows serve as keys and as values: the attended latent is the first r columns of the output.
        var attended = tape.Allocate(n, h * w); // [N, H·(r+dr)]
        var lse = tape.Allocate(h * n); // [H·N] per sequence [H, n_s]
        for (int s = 0; s < caches.Count; s++)
        {
            var cache = caches[s];
            int r0 = offsets[s], rows = offsets[s + 1] - r0, start = cache.Length;
            var keys = cache.Keys.AsSpan();
            for (int t = 0; t < rows; t++)
            {
                latent.Span.Slice((r0 + t) * r, r).CopyTo(keys.Slice((start + t) * w, r));
                kRope.Span.Slice((r0 + t) * dr, dr).CopyTo(keys.Slice((start + t) * w + r, dr));
            }
            cache.Length = start + rows;
            var cached = keys[..(cache.Length * w)];
            Attention.Forward(q.Span.Slice(r0 * h * w, rows * h * w), cached, cached, attended.Span.Slice(r0 * h * w, rows * h * w),
                lse.Span.Slice(r0 * h, rows * h), new AttentionShape(1, rows, cache.Length, h, 1, w, QueryOffset: start));
        }
        var y = tape.Allocate(n, h * dv); // [N, H·dv]
        for (int j = 0; j < h; j++)
            Gemm.Multiply(attended.Span[(j * w)..], wkv[((j * (dn + dv) + dn) * r)..], y.Span[(j * dv)..], n, dv, r,
                transB: true, lda: h * w, ldb: r, ldc: h * dv);
        return O.Forward(tape, y);
    }

    /// <summary>
    /// x [N, D] → per (token, head) rows: the content part [N·H, dn] and the rotary part [N·H, dr], rotated at
    /// positions 0..seq−1 of each sequence when <paramref name="rotate"/> (the cached path rotates it itself).
    /// </summary>
    private (Tensor Nope, Tensor Rope) Queries(Tape tape, Tensor x, int seq, bool rotate = true)
    {
        int n = x.RowCount, h = _heads, dn = _o.QkNopeHeadDim, dr = _o.QkRopeHeadDim;
        var q = QA is null ? Q!.Forward(tape, x) : QB!.Forward(tape, QANorm!.Forward(tape, QA.Forward(tape, x))); // [N, H·(dn+dr)]
        var rows = tape.Reshape(q, n * h, dn + dr); // [N·H, dn+dr]
        var rope = tape.Reshape(tape.Columns(rows, dn, dr), n, h * dr); // [N, H·dr]
        if (rotate) rope = tape.Rope(rope, h, Rope, seq);
        return (tape.Columns(rows, 0, dn), tape.Reshape(rope, n * h, dr));
    }

    /// <summary>x [N, D] → the normalised latent [N, r] and the shared key [N, dr], rotated when <paramref name="rotate"/>.</summary>
    private (Tensor Latent, Tensor Rope) Latent(Tape tape, Tensor x, int seq, bool rotate = true)
    {
        int r = _o.KvLoraRank, dr = _o.QkRopeHeadDim;
        var kv = KvA.Forward(tape, x); // [N, r+dr]
        var key = tape.Columns(kv, r, dr); // [N, dr]
        return (KvANorm.Forward(tape, tape.Columns(kv, 0, r)), rotate ? tape.Rope(key, 1, Rope, seq) : key);
    }

    /// <summary>x [M, c] → [M, width] with zero columns appended (x itself when already that wide).</summary>
    private static Tensor Widen(Tape tape, Tensor x, int width)
    {
        int c = x.Dim(1);
        return c == width ? x : tape.Concat([x, tape.AllocateZeroed(x.RowCount, width - c)]);
    }
}
