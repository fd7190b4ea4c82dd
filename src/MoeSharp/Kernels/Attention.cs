using System.Buffers;
using System.Runtime.Intrinsics;

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

    /// <summary>Longest sequence the direct path takes: its per-thread P and dS buffers are [T, T] each.</summary>
    private const int DirectMaxLength = 256;

    /// <summary>
    /// Whether <see cref="ForwardDirect"/> and <see cref="BackwardDirect"/> take this shape: training's whole causal
    /// sequences (no cache offset, no window, no sinks) of at most <see cref="DirectMaxLength"/> positions, heads a
    /// multiple of 16 floats wide (at most 128), on AVX-512.
    /// </summary>
    public static bool DirectApplies(AttentionShape s, bool sinks) =>
        Vector512.IsHardwareAccelerated && s.HeadDim % 16 == 0 && s.HeadDim <= 128 && s.QueryOffset == 0 && s.KeyLength == s.QueryLength
        && s.QueryLength <= DirectMaxLength && s.Window == 0 && !sinks;

    /// <summary>
    /// <see cref="Forward"/> for the small heads of training (see <see cref="DirectApplies"/>) without GEMM calls:
    /// per (batch, head) the keys are transposed once to [hd, T], each query row's scores are vector FMAs over the
    /// visible keys only (causal: a row costs its length, not T), and the output row is the probability-weighted sum
    /// of value rows, all in registers. At T = 64 and hd = 32 the blocked path spent more on packing 64×32 panels
    /// and per-row calls than on arithmetic. The same sums in a different order: equal to <see cref="Forward"/>
    /// within rounding, and the same for any thread count (one item per (batch, head)).
    /// </summary>
    public static void ForwardDirect(ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v, Span<float> output, Span<float> lse, AttentionShape s)
    {
        s.Validate();
        if (!DirectApplies(s, sinks: false)) throw new ArgumentException($"Attention.ForwardDirect does not take {s}.");
        fixed (float* pq = q, pk = k, pv = v, po = output, pl = lse)
            Workers.For(s.Batch * s.Heads, new DirectForwardItem(pq, pk, pv, po, pl, s));
    }

    /// <summary>
    /// <see cref="Backward"/> for the shapes of <see cref="DirectApplies"/>, adding into dq, dk, dv: per (batch, KV
    /// head) the probabilities and score gradients of each query row are rebuilt from lse as in the forward, dQ rows
    /// are summed from them at once, then dK and dV rows as column sums over the rows that see each key.
    /// </summary>
    public static void BackwardDirect(ReadOnlySpan<float> dout, ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v,
        ReadOnlySpan<float> output, ReadOnlySpan<float> lse, Span<float> dq, Span<float> dk, Span<float> dv, AttentionShape s)
    {
        s.Validate();
        if (!DirectApplies(s, sinks: false)) throw new ArgumentException($"Attention.BackwardDirect does not take {s}.");
        fixed (float* pdo = dout, pq = q, pk = k, pv = v, po = output, pl = lse, pdq = dq, pdk = dk, pdv = dv)
            Workers.For(s.Batch * s.KvHeads, new DirectBackwardItem(pdo, pq, pk, pv, po, pl, pdq, pdk, pdv, s));
    }

    /// <summary>Keys padded to whole vectors: the row stride of the transposed [hd, T] copies and of P and dS.</summary>
    private static int Padded(int length) => (length + 15) & ~15;

    /// <summary>dst [hd, tp] = srcᵀ for src rows of hd floats at <paramref name="stride"/>; columns T..tp zero.</summary>
    private static void Transpose(float* src, int stride, int rows, int hd, float* dst, int tp)
    {
        for (int i = 0; i < hd; i++)
        {
            float* d = dst + (long)i * tp;
            for (int j = 0; j < rows; j++) d[j] = src[(long)j * stride + i];
            for (int j = rows; j < tp; j++) d[j] = 0;
        }
    }

    /// <summary>
    /// row[j] = scale·(x·keyⱼ) for the columns of kT [hd, tp] up to <paramref name="n"/> rounded up to 16; returns
    /// the largest of the first n. Two accumulators per chunk halve the FMA dependency chain.
    /// </summary>
    private static float Scores(float* x, float* kT, int tp, int hd, int n, float* row, float scale)
    {
        var max = Vector512.Create(float.NegativeInfinity);
        for (int c = 0; c < n; c += 16)
        {
            var a0 = Vector512<float>.Zero;
            var a1 = Vector512<float>.Zero;
            float* col = kT + c;
            for (int i = 0; i < hd; i += 2)
            {
                a0 = Vector512.FusedMultiplyAdd(Vector512.Create(x[i]), Vector512.Load(col + (long)i * tp), a0);
                a1 = Vector512.FusedMultiplyAdd(Vector512.Create(x[i + 1]), Vector512.Load(col + (long)(i + 1) * tp), a1);
            }
            var sc = (a0 + a1) * scale;
            sc.Store(row + c);
            // Lanes past n are later keys (or padding): kept out of the maximum.
            var live = Vector512.LessThan(Vector512<int>.Indices, Vector512.Create(n - c)).AsSingle();
            max = Vector512.Max(max, Vector512.ConditionalSelect(live, sc, Vector512.Create(float.NegativeInfinity)));
        }
        return MaxAcross(max);
    }

    private static float MaxAcross(Vector512<float> v)
    {
        var h = Vector256.Max(v.GetLower(), v.GetUpper());
        var q = Vector128.Max(h.GetLower(), h.GetUpper());
        return MathF.Max(MathF.Max(q[0], q[1]), MathF.Max(q[2], q[3]));
    }

    /// <summary>
    /// dst[0..hd) (+)= mul · Σ_{j &lt; count} w[j·ws] · rows[j·rs ..]: a weighted sum of rows, four accumulators per
    /// 16 columns so the FMAs do not wait on each other.
    /// </summary>
    private static void Combine(float* w, int ws, float* rows, int rs, int count, int hd, float* dst, float mul, bool accumulate)
    {
        for (int c = 0; c < hd; c += 16)
        {
            var a0 = Vector512<float>.Zero;
            var a1 = Vector512<float>.Zero;
            var a2 = Vector512<float>.Zero;
            var a3 = Vector512<float>.Zero;
            float* r = rows + c;
            int j = 0;
            for (; j + 4 <= count; j += 4)
            {
                a0 = Vector512.FusedMultiplyAdd(Vector512.Create(w[(long)j * ws]), Vector512.Load(r + (long)j * rs), a0);
                a1 = Vector512.FusedMultiplyAdd(Vector512.Create(w[(long)(j + 1) * ws]), Vector512.Load(r + (long)(j + 1) * rs), a1);
                a2 = Vector512.FusedMultiplyAdd(Vector512.Create(w[(long)(j + 2) * ws]), Vector512.Load(r + (long)(j + 2) * rs), a2);
                a3 = Vector512.FusedMultiplyAdd(Vector512.Create(w[(long)(j + 3) * ws]), Vector512.Load(r + (long)(j + 3) * rs), a3);
            }
            for (; j < count; j++)
                a0 = Vector512.FusedMultiplyAdd(Vector512.Create(w[(long)j * ws]), Vector512.Load(r + (long)j * rs), a0);
            var sum = (a0 + a1 + (a2 + a3)) * mul;
            if (accumulate) sum = Vector512.Load(dst + c) + sum;
            sum.Store(dst + c);
        }
    }

    private readonly struct DirectForwardItem(float* q, float* k, float* v, float* o, float* lse, AttentionShape s) : IWorkItem
    {
        public void Invoke(int index)
        {
            var (b, h) = Split(index, s.Batch);
            int hd = s.HeadDim, t = s.QueryLength, tp = Padded(t), kvh = h / (s.Heads / s.KvHeads);
            int qStride = s.Heads * hd, kStride = s.KvHeads * hd;
            float scale = 1f / MathF.Sqrt(hd);
            float* qb = q + (long)b * t * qStride + h * hd, ob = o + (long)b * t * qStride + h * hd;
            float* kb = k + (long)b * t * kStride + kvh * hd, vb = v + (long)b * t * kStride + kvh * hd;
            float* l = lse + ((long)b * s.Heads + h) * t;
            float[] rented = ArrayPool<float>.Shared.Rent(hd * tp + tp + 16);
            fixed (float* buffer = rented)
            {
                float* kT = buffer; // [hd, tp]
                float* row = kT + hd * tp; // [tp] one row's scores, then probabilities
                Transpose(kb, kStride, t, hd, kT, tp);
                for (int r = 0; r < t; r++)
                {
                    int n = r + 1;
                    float max = Scores(qb + (long)r * qStride, kT, tp, hd, n, row, scale);
                    var live = new Span<float>(row, n);
                    TensorPrimitives.Subtract(live, max, live);
                    TensorPrimitives.Exp(live, live);
                    float sum = TensorPrimitives.Sum(live);
                    l[r] = max + MathF.Log(sum);
                    Combine(row, 1, vb, kStride, n, hd, ob + (long)r * qStride, 1 / sum, accumulate: false);
                }
            }
            ArrayPool<float>.Shared.Return(rented);
        }
    }

    private readonly struct DirectBackwardItem(float* dout, float* q, float* k, float* v, float* o, float* lse,
        float* dq, float* dk, float* dv, AttentionShape s) : IWorkItem
    {
        public void Invoke(int index)
        {
            var (b, kvh) = Split(index, s.Batch);
            int hd = s.HeadDim, t = s.QueryLength, tp = Padded(t), group = s.Heads / s.KvHeads;
            int qStride = s.Heads * hd, kStride = s.KvHeads * hd;
            float scale = 1f / MathF.Sqrt(hd);
            long kvFirst = (long)b * t * kStride + kvh * hd;
            float[] rented = ArrayPool<float>.Shared.Rent(2 * hd * tp + 2 * t * tp + 16);
            fixed (float* buffer = rented)
            {
                float* kT = buffer;                 // [hd, tp]
                float* vT = kT + hd * tp;           // [hd, tp]
                float* p = vT + hd * tp;            // [T, tp] probabilities, row r valid up to r
                float* ds = p + (long)t * tp;       // [T, tp] score gradients, scale folded in
                Transpose(k + kvFirst, kStride, t, hd, kT, tp);
                Transpose(v + kvFirst, kStride, t, hd, vT, tp);
                for (int h = kvh * group; h < (kvh + 1) * group; h++)
                {
                    long first = (long)b * t * qStride + h * hd;
                    float* l = lse + ((long)b * s.Heads + h) * t;
                    for (int r = 0; r < t; r++)
                    {
                        int n = r + 1;
                        long row = first + (long)r * qStride;
                        float* pr = p + (long)r * tp, dr = ds + (long)r * tp;
                        Scores(q + row, kT, tp, hd, n, pr, scale);
                        var live = new Span<float>(pr, n);
                        TensorPrimitives.Subtract(live, l[r], live);
                        TensorPrimitives.Exp(live, live); // p = exp(score − lse)
                        Scores(dout + row, vT, tp, hd, n, dr, 1f); // dP = dO·v
                        // δ = Σ_j p_j (dO·v_j) = dO·O; dS = p ⊙ (dP − δ) · scale
                        float delta = TensorPrimitives.Dot(new ReadOnlySpan<float>(dout + row, hd), new ReadOnlySpan<float>(o + row, hd));
                        var dlive = new Span<float>(dr, n);
                        TensorPrimitives.Subtract(dlive, delta, dlive);
                        TensorPrimitives.Multiply(dlive, live, dlive);
                        TensorPrimitives.Multiply(dlive, scale, dlive);
                        Combine(dr, 1, k + kvFirst, kStride, n, hd, dq + row, 1f, accumulate: true); // dQ_r += dS_r·K
                    }
                    // Key j is seen by rows j..T−1: dV_j += Σ_r P[r,j]·dO_r, dK_j += Σ_r dS[r,j]·Q_r.
                    for (int j = 0; j < t; j++)
                    {
                        long at = (long)j * tp + j, rowJ = first + (long)j * qStride, kvJ = kvFirst + (long)j * kStride;
                        Combine(p + at, tp, dout + rowJ, qStride, t - j, hd, dv + kvJ, 1f, accumulate: true);
                        Combine(ds + at, tp, q + rowJ, qStride, t - j, hd, dk + kvJ, 1f, accumulate: true);
                    }
                }
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
