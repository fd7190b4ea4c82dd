using System.Buffers;

namespace MoeSharp.Kernels;

/// <summary>
/// Dimensions of one causal attention call. Query t of a sequence sits at position <see cref="QueryOffset"/> + t
/// and sees keys 0..QueryOffset + t, or with a sliding <see cref="Window"/> W &gt; 0 only the last W of them
/// (position P sees P − W + 1 .. P, as Mistral, GPT-OSS, HF and llama.cpp count it). Training has QueryOffset = 0
/// and KeyLength = QueryLength; a KV-cache decode step has QueryOffset = cached length. Heads share key/value heads
/// in groups of Heads / KvHeads (GQA).
/// </summary>
internal readonly record struct AttentionShape(int Batch, int QueryLength, int KeyLength, int Heads, int KvHeads, int HeadDim, int QueryOffset = 0,
    int Window = 0)
{
    /// <summary>The first key position <paramref name="position"/> sees.</summary>
    public int FirstVisible(int position) => Window > 0 ? Math.Max(0, position - Window + 1) : 0;

    internal void Validate()
    {
        if (Heads <= 0 || KvHeads <= 0 || Heads % KvHeads != 0)
            throw new ArgumentException($"Attention heads ({Heads}) must be a positive multiple of KV heads ({KvHeads}).");
        if (Window < 0) throw new ArgumentException($"Attention window must be non-negative, got {Window}.");
        if (QueryOffset + QueryLength > KeyLength)
            throw new ArgumentException($"Attention queries reach position {QueryOffset + QueryLength - 1} but only {KeyLength} keys exist.");
    }
}

/// <summary>
/// Fused causal multi-head attention. q [B,Tq,H·hd], k and v [B,Tk,KVH·hd], out [B,Tq,H·hd], lse [B,H,Tq].
/// Each (batch, head) runs as blocks of <see cref="QueryBlock"/> query rows: scores for a block are one small GEMM
/// into a [QueryBlock, Tk] scratch, so memory is O(QueryBlock·Tk) per thread and no Tq×Tk matrix exists for long
/// sequences. The forward keeps each row's logsumexp; the backward recomputes the probabilities from it
/// (FlashAttention's trick). Heads are read and written in place through leading dimensions, with no copies.
/// Optional attention sinks (GPT-OSS) are a learned logit per head [H] that joins each row's softmax denominator
/// without a value: the row's weights then sum to less than one. The logsumexp includes the sink, so the backward's
/// recomputed probabilities are right as they are; the sinks' own gradient is <see cref="SinkBackward"/>.
/// </summary>
internal static unsafe class Attention
{
    /// <summary>Query rows per block.</summary>
    public const int QueryBlock = 64;

    /// <summary>output and lse from q, k, v; <paramref name="sinks"/> [H] or empty for none.</summary>
    public static void Forward(ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v, Span<float> output,
        Span<float> lse, AttentionShape s, ReadOnlySpan<float> sinks = default)
    {
        s.Validate();
        if (!sinks.IsEmpty && sinks.Length != s.Heads) throw new ArgumentException($"Attention: {sinks.Length} sinks for {s.Heads} heads.");
        fixed (float* pq = q, pk = k, pv = v, po = output, pl = lse, ps = sinks)
            Workers.For(s.Batch * s.Heads, new ForwardItem(pq, pk, pv, po, pl, ps, s));
    }

    /// <summary>
    /// dsinks[h] += −Σ over rows of head h of p_sink·δ, with p_sink = exp(sink − lse) and δ = dO·O (the sink has no
    /// value, so its score gradient is p_sink·(0 − δ)). Serial, so that each dsinks element has one writer; it costs
    /// O(B·T·H·hd), small beside the attention itself.
    /// </summary>
    public static void SinkBackward(ReadOnlySpan<float> dout, ReadOnlySpan<float> output, ReadOnlySpan<float> lse, ReadOnlySpan<float> sinks,
        Span<float> dsinks, AttentionShape s)
    {
        int hd = s.HeadDim, qStride = s.Heads * hd;
        for (int b = 0; b < s.Batch; b++)
            for (int h = 0; h < s.Heads; h++)
            {
                double acc = 0;
                for (int t = 0; t < s.QueryLength; t++)
                {
                    long row = ((long)b * s.QueryLength + t) * qStride + h * hd;
                    float delta = TensorPrimitives.Dot(dout.Slice((int)row, hd), output.Slice((int)row, hd));
                    acc += Math.Exp(sinks[h] - lse[(b * s.Heads + h) * s.QueryLength + t]) * delta;
                }
                dsinks[h] -= (float)acc;
            }
    }

    /// <summary>Adds into dq, dk, dv. Work is split over (batch, KV head) so each dk/dv row has one writer.</summary>
    public static void Backward(ReadOnlySpan<float> dout, ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v,
        ReadOnlySpan<float> output, ReadOnlySpan<float> lse, Span<float> dq, Span<float> dk, Span<float> dv, AttentionShape s)
    {
        s.Validate();
        fixed (float* pdo = dout, pq = q, pk = k, pv = v, po = output, pl = lse, pdq = dq, pdk = dk, pdv = dv)
            Workers.For(s.Batch * s.KvHeads, new BackwardItem(pdo, pq, pk, pv, po, pl, pdq, pdk, pdv, s));
    }

    /// <summary>
    /// Item i covers head i / B of sequence i mod B: items taken at the same time by two threads then touch
    /// different sequences' rows, so they never share a cache line.
    /// </summary>
    private static (int Batch, int Head) Split(int index, int batch) => (index % batch, index / batch);

    private readonly struct ForwardItem(float* q, float* k, float* v, float* o, float* lse, float* sinks, AttentionShape s) : IWorkItem
    {
        public void Invoke(int index)
        {
            var (b, h) = Split(index, s.Batch);
            int hd = s.HeadDim, kvh = h / (s.Heads / s.KvHeads);
            int qStride = s.Heads * hd, kStride = s.KvHeads * hd;
            float scale = 1f / MathF.Sqrt(hd);
            float* kb = k + (long)b * s.KeyLength * kStride + kvh * hd;
            float* vb = v + (long)b * s.KeyLength * kStride + kvh * hd;
            float[] rented = ArrayPool<float>.Shared.Rent(QueryBlock * s.KeyLength);
            fixed (float* p = rented) // [QueryBlock, Tk] scores, then probabilities
                for (int t0 = 0; t0 < s.QueryLength; t0 += QueryBlock)
                {
                    int rows = Math.Min(QueryBlock, s.QueryLength - t0);
                    int n = s.QueryOffset + t0 + rows; // keys any row of this block can see
                    long first = ((long)b * s.QueryLength + t0) * qStride + h * hd;
                    Gemm.MultiplyCore(q + first, qStride, false, kb, kStride, true, p, n, rows, n, hd, accumulate: false, parallel: false);
                    for (int r = 0; r < rows; r++)
                    {
                        int visible = s.QueryOffset + t0 + r + 1, firstKey = s.FirstVisible(visible - 1);
                        var row = new Span<float>(p + (long)r * n, n);
                        var live = row[firstKey..visible];
                        TensorPrimitives.Multiply(live, scale, live);
                        float max = TensorPrimitives.Max(live);
                        if (sinks != null) max = MathF.Max(max, sinks[h]);
                        TensorPrimitives.Subtract(live, max, live);
                        TensorPrimitives.Exp(live, live);
                        float sum = TensorPrimitives.Sum(live);
                        if (sinks != null) sum += MathF.Exp(sinks[h] - max);
                        TensorPrimitives.Divide(live, sum, live);
                        row[..firstKey].Clear();
                        row[visible..].Clear();
                        lse[((long)b * s.Heads + h) * s.QueryLength + t0 + r] = max + MathF.Log(sum);
                    }
                    Gemm.MultiplyCore(p, n, false, vb, kStride, false, o + first, qStride, rows, hd, n, accumulate: false, parallel: false);
                }
            ArrayPool<float>.Shared.Return(rented);
        }
    }

    private readonly struct BackwardItem(float* dout, float* q, float* k, float* v, float* o, float* lse,
        float* dq, float* dk, float* dv, AttentionShape s) : IWorkItem
    {
        public void Invoke(int index)
        {
            var (b, kvh) = Split(index, s.Batch);
            int hd = s.HeadDim, group = s.Heads / s.KvHeads;
            int qStride = s.Heads * hd, kStride = s.KvHeads * hd;
            float scale = 1f / MathF.Sqrt(hd);
            long kvFirst = (long)b * s.KeyLength * kStride + kvh * hd;
            float[] rented = ArrayPool<float>.Shared.Rent(2 * QueryBlock * s.KeyLength);
            fixed (float* p = rented) // [QueryBlock, Tk] probabilities, then [QueryBlock, Tk] score gradients
                for (int h = kvh * group; h < (kvh + 1) * group; h++)
                    for (int t0 = 0; t0 < s.QueryLength; t0 += QueryBlock)
                    {
                        int rows = Math.Min(QueryBlock, s.QueryLength - t0);
                        int n = s.QueryOffset + t0 + rows;
                        float* ds = p + (long)rows * n;
                        long first = ((long)b * s.QueryLength + t0) * qStride + h * hd;
                        Gemm.MultiplyCore(q + first, qStride, false, k + kvFirst, kStride, true, p, n, rows, n, hd, false, false);
                        Gemm.MultiplyCore(dout + first, qStride, false, v + kvFirst, kStride, true, ds, n, rows, n, hd, false, false);
                        for (int r = 0; r < rows; r++)
                        {
                            int visible = s.QueryOffset + t0 + r + 1, firstKey = s.FirstVisible(visible - 1);
                            var pr = new Span<float>(p + (long)r * n, n);
                            var dr = new Span<float>(ds + (long)r * n, n);
                            float l = lse[((long)b * s.Heads + h) * s.QueryLength + t0 + r];
                            long row = first + (long)r * qStride;
                            // δ = Σ_j p_j (dO·v_j) = dO·O
                            float delta = TensorPrimitives.Dot(new ReadOnlySpan<float>(dout + row, hd), new ReadOnlySpan<float>(o + row, hd));
                            var live = pr[firstKey..visible];
                            TensorPrimitives.Multiply(live, scale, live);
                            TensorPrimitives.Subtract(live, l, live);
                            TensorPrimitives.Exp(live, live); // p = exp(score − lse)
                            pr[..firstKey].Clear();
                            pr[visible..].Clear();
                            // dS = p ⊙ (dP − δ) · scale, the scale folded in for the q·k products below.
                            var dlive = dr[firstKey..visible];
                            TensorPrimitives.Subtract(dlive, delta, dlive);
                            TensorPrimitives.Multiply(dlive, live, dlive);
                            TensorPrimitives.Multiply(dlive, scale, dlive);
                            dr[..firstKey].Clear();
                            dr[visible..].Clear();
                        }
                        Gemm.MultiplyCore(p, n, true, dout + first, qStride, false, dv + kvFirst, kStride, n, hd, rows, true, false); // dV += Pᵀ·dO
                        Gemm.MultiplyCore(ds, n, true, q + first, qStride, false, dk + kvFirst, kStride, n, hd, rows, true, false);    // dK += dSᵀ·Q
                        Gemm.MultiplyCore(ds, n, false, k + kvFirst, kStride, false, dq + first, qStride, rows, hd, n, true, false);   // dQ += dS·K
                    }
            ArrayPool<float>.Shared.Return(rented);
        }
    }

    /// <summary>Scalar twin: materialises every score in double, per (batch, head), the sink as one more score without a value.</summary>
    public static void ForwardReference(ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v, Span<float> output, AttentionShape s,
        ReadOnlySpan<float> sinks = default)
    {
        int hd = s.HeadDim, qStride = s.Heads * hd, kStride = s.KvHeads * hd, group = s.Heads / s.KvHeads;
        double scale = 1 / Math.Sqrt(hd);
        for (int b = 0; b < s.Batch; b++)
            for (int h = 0; h < s.Heads; h++)
                for (int t = 0; t < s.QueryLength; t++)
                {
                    int n = s.QueryOffset + t + 1;
                    var sc = new double[n];
                    for (int j = 0; j < n; j++)
                    {
                        if (s.Window > 0 && n - 1 - j >= s.Window)
                        {
                            sc[j] = double.NegativeInfinity;
                            continue;
                        }
                        for (int i = 0; i < hd; i++)
                            sc[j] += (double)q[(b * s.QueryLength + t) * qStride + h * hd + i] * k[(b * s.KeyLength + j) * kStride + h / group * hd + i] * scale;
                    }
                    double sink = sinks.IsEmpty ? double.NegativeInfinity : sinks[h];
                    double max = Math.Max(sc.Max(), sink), sum = sc.Sum(x => Math.Exp(x - max)) + Math.Exp(sink - max);
                    for (int i = 0; i < hd; i++)
                    {
                        double acc = 0;
                        for (int j = 0; j < n; j++) acc += Math.Exp(sc[j] - max) / sum * v[(b * s.KeyLength + j) * kStride + h / group * hd + i];
                        output[(b * s.QueryLength + t) * qStride + h * hd + i] = (float)acc;
                    }
                }
    }
}
