using System.Buffers;

namespace MoeSharp.Kernels;

/// <summary>
/// Dimensions of one causal attention call. Query t of a sequence sits at position <see cref="QueryOffset"/> + t
/// and sees keys 0..QueryOffset + t. Training has QueryOffset = 0 and KeyLength = QueryLength; a KV-cache decode
/// step has QueryOffset = cached length. Heads share key/value heads in groups of Heads / KvHeads (GQA).
/// </summary>
public readonly record struct AttentionShape(int Batch, int QueryLength, int KeyLength, int Heads, int KvHeads, int HeadDim, int QueryOffset = 0)
{
    internal void Validate()
    {
        if (Heads <= 0 || KvHeads <= 0 || Heads % KvHeads != 0)
            throw new ArgumentException($"Attention heads ({Heads}) must be a positive multiple of KV heads ({KvHeads}).");
        if (QueryOffset + QueryLength > KeyLength)
            throw new ArgumentException($"Attention queries reach position {QueryOffset + QueryLength - 1} but only {KeyLength} keys exist.");
    }
}

/// <summary>
/// Fused causal multi-head attention. q [B,Tq,H·hd], k and v [B,Tk,KVH·hd], out [B,Tq,H·hd], lse [B,H,Tq].
/// Scores are formed one query row at a time, so memory is O(Tk) per thread and no Tq×Tk matrix exists. The
/// forward keeps each row's logsumexp; the backward recomputes the probabilities from it (FlashAttention's trick).
/// </summary>
public static unsafe class Attention
{
    public static void Forward(ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v, Span<float> output,
        Span<float> lse, AttentionShape s)
    {
        s.Validate();
        fixed (float* pq = q, pk = k, pv = v, po = output, pl = lse)
            Workers.For(s.Batch * s.Heads, new ForwardItem(pq, pk, pv, po, pl, s));
    }

    /// <summary>Adds into dq, dk, dv. Work is split over (batch, KV head) so each dk/dv row has one writer.</summary>
    public static void Backward(ReadOnlySpan<float> dout, ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v,
        ReadOnlySpan<float> output, ReadOnlySpan<float> lse, Span<float> dq, Span<float> dk, Span<float> dv, AttentionShape s)
    {
        s.Validate();
        fixed (float* pdo = dout, pq = q, pk = k, pv = v, po = output, pl = lse, pdq = dq, pdk = dk, pdv = dv)
            Workers.For(s.Batch * s.KvHeads, new BackwardItem(pdo, pq, pk, pv, po, pl, pdq, pdk, pdv, s));
    }

    private readonly struct ForwardItem(float* q, float* k, float* v, float* o, float* lse, AttentionShape s) : IWorkItem
    {
        public void Invoke(int index)
        {
            int b = index / s.Heads, h = index % s.Heads, hd = s.HeadDim;
            int kvh = h / (s.Heads / s.KvHeads);
            int qStride = s.Heads * hd, kStride = s.KvHeads * hd;
            float scale = 1f / MathF.Sqrt(hd);
            float[] rented = ArrayPool<float>.Shared.Rent(s.KeyLength);
            var scores = rented.AsSpan(0, s.KeyLength); // [Tk] one query row
            for (int t = 0; t < s.QueryLength; t++)
            {
                var qr = new ReadOnlySpan<float>(q + ((long)b * s.QueryLength + t) * qStride + h * hd, hd);
                var orow = new Span<float>(o + ((long)b * s.QueryLength + t) * qStride + h * hd, hd);
                int n = s.QueryOffset + t + 1;
                float* kb = k + (long)b * s.KeyLength * kStride + kvh * hd;
                float* vb = v + (long)b * s.KeyLength * kStride + kvh * hd;
                for (int j = 0; j < n; j++)
                    scores[j] = TensorPrimitives.Dot(qr, new ReadOnlySpan<float>(kb + (long)j * kStride, hd)) * scale;
                var row = scores[..n];
                float max = TensorPrimitives.Max(row);
                TensorPrimitives.Subtract(row, max, row);
                TensorPrimitives.Exp(row, row);
                float sum = TensorPrimitives.Sum(row);
                orow.Clear();
                for (int j = 0; j < n; j++)
                    TensorPrimitives.MultiplyAdd(new ReadOnlySpan<float>(vb + (long)j * kStride, hd), row[j], orow, orow);
                TensorPrimitives.Divide(orow, sum, orow);
                lse[((long)b * s.Heads + h) * s.QueryLength + t] = max + MathF.Log(sum);
            }
            ArrayPool<float>.Shared.Return(rented);
        }
    }

    private readonly struct BackwardItem(float* dout, float* q, float* k, float* v, float* o, float* lse,
        float* dq, float* dk, float* dv, AttentionShape s) : IWorkItem
    {
        public void Invoke(int index)
        {
            int b = index / s.KvHeads, kvh = index % s.KvHeads, hd = s.HeadDim, group = s.Heads / s.KvHeads;
            int qStride = s.Heads * hd, kStride = s.KvHeads * hd;
            float scale = 1f / MathF.Sqrt(hd);
            float[] rented = ArrayPool<float>.Shared.Rent(s.KeyLength);
            var p = rented.AsSpan(0, s.KeyLength); // [Tk] probabilities, then score gradients, of one query row
            float* kb = k + (long)b * s.KeyLength * kStride + kvh * hd;
            float* vb = v + (long)b * s.KeyLength * kStride + kvh * hd;
            float* dkb = dk + (long)b * s.KeyLength * kStride + kvh * hd;
            float* dvb = dv + (long)b * s.KeyLength * kStride + kvh * hd;
            for (int h = kvh * group; h < (kvh + 1) * group; h++)
                for (int t = 0; t < s.QueryLength; t++)
                {
                    long row = ((long)b * s.QueryLength + t) * qStride + h * hd;
                    var qr = new ReadOnlySpan<float>(q + row, hd);
                    var dor = new ReadOnlySpan<float>(dout + row, hd);
                    var dqr = new Span<float>(dq + row, hd);
                    float l = lse[((long)b * s.Heads + h) * s.QueryLength + t];
                    float delta = TensorPrimitives.Dot(dor, new ReadOnlySpan<float>(o + row, hd)); // Σ_j p_j·(dout·v_j)
                    int n = s.QueryOffset + t + 1;
                    for (int j = 0; j < n; j++)
                    {
                        var kj = new ReadOnlySpan<float>(kb + (long)j * kStride, hd);
                        var vj = new ReadOnlySpan<float>(vb + (long)j * kStride, hd);
                        float pj = MathF.Exp(TensorPrimitives.Dot(qr, kj) * scale - l);
                        var dvj = new Span<float>(dvb + (long)j * kStride, hd);
                        TensorPrimitives.MultiplyAdd(dor, pj, dvj, dvj);
                        p[j] = pj * (TensorPrimitives.Dot(dor, vj) - delta) * scale; // dscore_j, scaled for q·k
                    }
                    for (int j = 0; j < n; j++)
                    {
                        TensorPrimitives.MultiplyAdd(new ReadOnlySpan<float>(kb + (long)j * kStride, hd), p[j], dqr, dqr);
                        var dkj = new Span<float>(dkb + (long)j * kStride, hd);
                        TensorPrimitives.MultiplyAdd(qr, p[j], dkj, dkj);
                    }
                }
            ArrayPool<float>.Shared.Return(rented);
        }
    }

    /// <summary>Scalar twin: materialises every score in double, per (batch, head).</summary>
    public static void ForwardReference(ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v, Span<float> output, AttentionShape s)
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
                        for (int i = 0; i < hd; i++)
                            sc[j] += (double)q[(b * s.QueryLength + t) * qStride + h * hd + i] * k[(b * s.KeyLength + j) * kStride + h / group * hd + i] * scale;
                    double max = sc.Max(), sum = sc.Sum(x => Math.Exp(x - max));
                    for (int i = 0; i < hd; i++)
                    {
                        double acc = 0;
                        for (int j = 0; j < n; j++) acc += Math.Exp(sc[j] - max) / sum * v[(b * s.KeyLength + j) * kStride + h / group * hd + i];
                        output[(b * s.QueryLength + t) * qStride + h * hd + i] = (float)acc;
                    }
                }
    }
}
