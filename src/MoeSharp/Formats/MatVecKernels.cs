using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using static MoeSharp.Formats.ScalarCodec;

namespace MoeSharp.Formats;

/// <summary>The instruction set a kernel runs on; tests force each one the machine supports.</summary>
internal enum KernelPath
{
    /// <summary>The scalar twins: integer sums exact, fp32 scale products, accumulated in double.</summary>
    Scalar,

    /// <summary>256-bit AVX2 and FMA.</summary>
    Avx2,

    /// <summary>512-bit AVX-512 F/BW and VBMI (byte permutes).</summary>
    Avx512,
}

/// <summary>One activation row as the kernels read it: fp32 for the float formats, 8-bit blocks for the others.</summary>
internal unsafe struct Activation
{
    public float* X; // [n]
    public Q8Vector Q;
}

/// <summary>
/// Decode's and prefill's dot products. Every result is one (weight row, activation row) pair computed by one fixed
/// sequence of operations (a format's <c>Step</c> over the row, then its <c>Finish</c>), whatever the pairs grouped
/// with it: decode groups four weight rows against one activation, prefill four activations against one weight row
/// (or, for the float formats, a 4 × 4 tile), and each pair keeps its own accumulator. So a token's output in a batched
/// product is bitwise the one it gets alone, on every path.
/// </summary>
/// <remarks>
/// The quantized formats multiply in int8 against a <see cref="Q8Activation"/> (ggml's <c>vec_dot_type</c>) with
/// <c>vpmaddubsw</c>, which takes one unsigned operand: Q4_K and Q6_K nibbles are unsigned already and their offsets
/// come back through the activation's block sums; MXFP4 looks up its values plus 12 and subtracts 12·Σq; Q8_0 moves
/// the weight's sign onto x (|w|·sign(w)·x), as ggml does. The integer sum of each block is exact on every path and
/// equals the scalar twin's; each is converted once and scaled in fp32 by (weight scale · activation scale), and only
/// the fp32 accumulation order differs between paths (lanes of 16 or 8, then a tree sum; the twin sums in double).
/// .NET 10 exposes no AVX-512 VNNI (<c>vpdpbusd</c>) and no F16C, so the sums go through vpmaddubsw + vpmaddwd and
/// binary16 scales through a table.
/// </remarks>
internal static unsafe class MatVecKernels
{
    /// <summary>The fastest path this machine supports.</summary>
    public static KernelPath Best { get; } = Supports(KernelPath.Avx512) ? KernelPath.Avx512 : Supports(KernelPath.Avx2) ? KernelPath.Avx2 : KernelPath.Scalar;

    public static bool Supports(KernelPath path) => path switch
    {
        KernelPath.Scalar => true,
        KernelPath.Avx2 => Avx2.IsSupported && Fma.IsSupported,
        KernelPath.Avx512 => Avx512BW.IsSupported && Avx512Vbmi.IsSupported,
        _ => false,
    };

    /// <summary>
    /// binary16 → binary32 by table, as ggml does without F16C: .NET exposes no vcvtph2ps and converts a scalar Half
    /// in software, which cost more than the integer dot of a Q8_0 block. 256 KiB, of which the few scales a model
    /// uses stay cached. Built from <see cref="ScalarCodec.Half"/>, so the values are the same.
    /// </summary>
    // The array must stay referenced: a pinned array is still collected once unreachable, and the pointer alone
    // does not keep it alive (after a GC the kernels read freed memory).
    private static readonly float[] HalfValues = BuildHalfTable(); // [2^16]
    private static readonly float* HalfTable = (float*)Unsafe.AsPointer(ref HalfValues[0]);

    private static float[] BuildHalfTable()
    {
        var table = GC.AllocateUninitializedArray<float>(65536, pinned: true); // [2^16]
        for (int i = 0; i < 65536; i++) table[i] = (float)BitConverter.UInt16BitsToHalf((ushort)i);
        return table;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Scale(byte* p) => HalfTable[Unsafe.ReadUnaligned<ushort>(p)];

    /// <summary>y[0..count) = rows w, w + rowBytes, … dotted with x (fp32 for the float formats, else <paramref name="q8"/>), on the best path.</summary>
    public static void Dot(WeightFormat format, byte* w, long rowBytes, int count, float* x, in Q8Vector q8, int n, float* y)
    {
        byte** rows = stackalloc byte*[4]; // [4]
        for (int r = 0; r < count; r++) rows[r] = w + r * rowBytes;
        var a = new Activation { X = x, Q = q8 };
        Rows(Best, format, count, rows, &a, n, y);
    }

    /// <summary>
    /// Whether decode prefetches the next rows (<see cref="Rows"/>' <c>ahead</c>); on except in the bench's A/B, and
    /// without effect on any result.
    /// </summary>
    internal static bool PrefetchAhead { get; set; } = true;

    /// <summary>
    /// Decode: y[i] = row <paramref name="rows"/>[i] · the one activation, for i &lt; count ≤ 4. While it runs, the
    /// <paramref name="aheadBytes"/> bytes at <paramref name="ahead"/> (the rows the caller multiplies next; null for
    /// none) are prefetched, spread over the steps: a row of 1024 Q8_0 weights is only 17 cache lines, too short a
    /// stream for the hardware prefetcher to reach full speed before it ends, so every group of rows would start
    /// with misses.
    /// </summary>
    public static void Rows(KernelPath path, WeightFormat format, int count, byte** rows, Activation* act, int n, float* y, byte* ahead = null, long aheadBytes = 0) =>
        Dispatch(path, format, new Group { Rows = rows, Acts = act, Count = count, SharedActivation = true, Ahead = PrefetchAhead ? ahead : null, AheadBytes = aheadBytes }, n, y);

    /// <summary>
    /// Prefill: y[i] = the one weight row · activation <paramref name="acts"/>[i], for i &lt; count ≤ 4;
    /// <paramref name="special"/> is <see cref="Special"/> of the row, which the caller checks once for all tokens.
    /// </summary>
    public static void Tokens(KernelPath path, WeightFormat format, byte* row, bool special, int count, Activation* acts, int n, float* y) =>
        Dispatch(path, format, new Group { Rows = &row, Special = &special, Acts = acts, Count = count, SharedActivation = false }, n, y);

    /// <summary>Whether the row needs the exact twin (an F16 row holding Inf or NaN); the same answer on every path.</summary>
    public static bool Special(WeightFormat format, byte* row, int n) => format == WeightFormat.F16 && HasNonFiniteHalves(row, n);

    /// <summary>Up to four (weight row, activation) pairs: four rows against one activation, or one row against four.</summary>
    private struct Group
    {
        public byte** Rows; // [count] or [1]
        public bool* Special; // null (decode checks its rows itself) or [1]: the one row's Special
        public Activation* Acts; // [1] or [count]
        public int Count;
        public bool SharedActivation;
        public byte* Ahead; // null, or AheadBytes to prefetch while the group runs
        public long AheadBytes;
    }

    private static void Dispatch(KernelPath path, WeightFormat format, Group g, int n, float* y)
    {
        switch (path)
        {
            case KernelPath.Avx512:
                switch (format)
                {
                    case WeightFormat.F32: Run<F32x16, Vector512<float>>(g, n, y); return;
                    case WeightFormat.BF16: Run<BF16x16, Vector512<float>>(g, n, y); return;
                    case WeightFormat.F16: Run<F16x16, Vector512<float>>(g, n, y); return;
                    case WeightFormat.Q8_0: Run<Q8_0x512, Vector512<float>>(g, n, y); return;
                    case WeightFormat.MXFP4: Run<Mxfp4x512, Vector512<float>>(g, n, y); return;
                    case WeightFormat.Q4_K: Run<Q4_Kx512, Vector512<float>>(g, n, y); return;
                    case WeightFormat.Q6_K: Run<Q6_Kx512, Vector512<float>>(g, n, y); return;
                }
                break;
            case KernelPath.Avx2:
                switch (format)
                {
                    case WeightFormat.F32: Run<F32x8, Vector256<float>>(g, n, y); return;
                    case WeightFormat.BF16: Run<BF16x8, Vector256<float>>(g, n, y); return;
                    case WeightFormat.F16: Run<F16x8, Vector256<float>>(g, n, y); return;
                    case WeightFormat.Q8_0: Run<Q8_0x256, Vector256<float>>(g, n, y); return;
                    case WeightFormat.MXFP4: Run<Mxfp4x256, Vector256<float>>(g, n, y); return;
                    case WeightFormat.Q4_K: Run<Q4_Kx256, Vector256<float>>(g, n, y); return;
                    case WeightFormat.Q6_K: Run<Q6_Kx256, Vector256<float>>(g, n, y); return;
                }
                break;
            case KernelPath.Scalar:
                for (int i = 0; i < g.Count; i++)
                {
                    byte* w = g.SharedActivation ? g.Rows[i] : g.Rows[0];
                    Activation a = g.SharedActivation ? g.Acts[0] : g.Acts[i];
                    y[i] = Q8Activation.BlockFor(format) == 0 ? (float)FloatDotReference(format, w, a.X, n) : (float)DotReference(format, w, a.Q, n);
                }
                return;
        }
        throw new ArgumentOutOfRangeException(nameof(format), format, $"no {path} kernel for this format");
    }

    private static void Run<K, TAcc>(Group g, int n, float* y) where K : struct, IKernel<TAcc> where TAcc : unmanaged
    {
        if (g.SharedActivation) RunRows<K, TAcc>(g.Count, g.Rows, *g.Acts, n, y, g.Ahead, g.AheadBytes);
        else RunTokens<K, TAcc>(g.Rows[0], *g.Special, g.Count, g.Acts, n, y);
    }

    /// <summary>
    /// y[4r + t] = row r · activation t for r &lt; rowCount, t &lt; tokenCount (both ≤ 4): the float formats load
    /// each weight and activation vector once for 16 products. The others run as <see cref="Tokens"/> per row.
    /// </summary>
    /// <remarks><paramref name="special"/> holds <see cref="Special"/> of each row, checked once by the caller for all its tokens.</remarks>
    public static void Tile(KernelPath path, WeightFormat format, int rowCount, byte** rows, bool* special, int tokenCount, Activation* acts, int n, float* y)
    {
        switch (path, format)
        {
            case (KernelPath.Avx512, WeightFormat.F32): Tile4x4<F32x16, Vector512<float>>(rowCount, rows, special, tokenCount, acts, n, y); return;
            case (KernelPath.Avx512, WeightFormat.BF16): Tile4x4<BF16x16, Vector512<float>>(rowCount, rows, special, tokenCount, acts, n, y); return;
            case (KernelPath.Avx512, WeightFormat.F16): Tile4x4<F16x16, Vector512<float>>(rowCount, rows, special, tokenCount, acts, n, y); return;
            case (KernelPath.Avx2, WeightFormat.F32): Tile4x4<F32x8, Vector256<float>>(rowCount, rows, special, tokenCount, acts, n, y); return;
            case (KernelPath.Avx2, WeightFormat.BF16): Tile4x4<BF16x8, Vector256<float>>(rowCount, rows, special, tokenCount, acts, n, y); return;
            case (KernelPath.Avx2, WeightFormat.F16): Tile4x4<F16x8, Vector256<float>>(rowCount, rows, special, tokenCount, acts, n, y); return;
        }
        for (int r = 0; r < rowCount; r++) Tokens(path, format, rows[r], special[r], tokenCount, acts, n, y + 4 * r);
    }

    /// <summary>
    /// The scalar twin of the integer dot products: per block, the exact integer sum times the fp32 product of the
    /// two scales, summed in double.
    /// </summary>
    public static double DotReference(WeightFormat format, byte* row, in Q8Vector a, int n)
    {
        double sum = 0;
        sbyte* x = a.Q;
        switch (format)
        {
            case WeightFormat.Q8_0:
                for (int b = 0; b < n / 32; b++, row += 34, x += 32)
                    sum += (double)(Half(row) * a.D[b]) * Q8_0Sum(row, x);
                break;
            case WeightFormat.MXFP4:
                for (int b = 0; b < n / 32; b++, row += 17, x += 32)
                    sum += (double)(E8M0Half(row[0]) * a.D[b]) * Mxfp4Sum(row, x);
                break;
            case WeightFormat.Q4_K:
                for (int b = 0; b < n / 256; b++, row += 144)
                {
                    int isum = 0, imin = 0;
                    byte* q = row + 16;
                    for (int g = 0; g < 4; g++, q += 32, x += 64)
                    {
                        ScaleMinK4(2 * g, row + 4, out int s1, out int m1);
                        ScaleMinK4(2 * g + 1, row + 4, out int s2, out int m2);
                        int lo = 0, hi = 0;
                        for (int l = 0; l < 32; l++)
                        {
                            lo += (q[l] & 0xF) * x[l];
                            hi += (q[l] >> 4) * x[l + 32];
                        }
                        isum += s1 * lo + s2 * hi;
                        imin += m1 * a.Sums32[8 * b + 2 * g] + m2 * a.Sums32[8 * b + 2 * g + 1];
                    }
                    sum += (double)(Half(row) * a.D[b]) * isum - (double)(Half(row + 2) * a.D[b]) * imin;
                }
                break;
            case WeightFormat.Q6_K:
                for (int b = 0; b < n / 256; b++, row += 210)
                {
                    int isum = 0;
                    for (int h = 0; h < 2; h++, x += 128)
                    {
                        byte* ql = row + 64 * h, qh = row + 128 + 32 * h;
                        sbyte* sc = (sbyte*)(row + 192 + 8 * h);
                        for (int l = 0; l < 32; l++)
                        {
                            int s = l / 16;
                            int q1 = ((ql[l] & 0xF) | ((qh[l] & 3) << 4)) - 32;
                            int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                            int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                            int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                            isum += sc[s] * q1 * x[l] + sc[s + 2] * q2 * x[l + 32] + sc[s + 4] * q3 * x[l + 64] + sc[s + 6] * q4 * x[l + 96];
                        }
                    }
                    sum += (double)(Half(row + 208) * a.D[b]) * isum;
                }
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(format), format, "not an integer-dot format");
        }
        return sum;
    }

    /// <summary>The scalar twin of the float formats: each element widened exactly, products summed in double.</summary>
    public static double FloatDotReference(WeightFormat format, byte* row, float* x, int n)
    {
        double sum = 0;
        for (int i = 0; i < n; i++)
        {
            float w = format switch
            {
                WeightFormat.F32 => Unsafe.ReadUnaligned<float>(row + 4 * i),
                WeightFormat.F16 => Half(row + 2 * i),
                WeightFormat.BF16 => BFloat16(Unsafe.ReadUnaligned<ushort>(row + 2 * i)),
                _ => throw new ArgumentOutOfRangeException(nameof(format), format, "not a float format"),
            };
            sum += (double)w * x[i];
        }
        return sum;
    }

    private static int Q8_0Sum(byte* block, sbyte* x)
    {
        int isum = 0;
        for (int j = 0; j < 32; j++) isum += (sbyte)block[2 + j] * x[j];
        return isum;
    }

    private static int Mxfp4Sum(byte* block, sbyte* x)
    {
        int isum = 0;
        for (int j = 0; j < 16; j++)
            isum += Mxfp4Values[block[1 + j] & 0xF] * x[j] + Mxfp4Values[block[1 + j] >> 4] * x[j + 16];
        return isum;
    }

    // ---- drivers ----

    /// <summary>A format's dot product on one path: whole steps into an accumulator, then the tail and the reduction.</summary>
    private interface IKernel<TAcc> where TAcc : struct
    {
        static abstract int Steps(int n);

        static abstract TAcc Step(byte* w, in Activation a, int s, TAcc acc);

        /// <summary>Whether a row needs the exact twin instead (F16 rows with Inf/NaN); checked once per row per call.</summary>
        static virtual bool Special(byte* w, int n) => false;

        static abstract float Finish(byte* w, in Activation a, int n, TAcc acc, bool special);
    }

    // Four independent chains per pass hide the accumulation latency; rows past the count repeat the last one.
    // One activation for all four, so the JIT loads each of its vectors once per step.
    // The prefetch runs ahead by whole steps' shares of the next rows' bytes; a prefetch never faults, so the
    // rows after a matrix's last need no check.
    // The accumulators go to memory once the loop ends: live in registers across Finish's calls (a Half conversion,
    // a tail block), the JIT spilled and reloaded them on every step.
    private static void RunRows<K, TAcc>(int count, byte** rows, Activation a, int n, float* y, byte* ahead, long aheadBytes)
        where K : struct, IKernel<TAcc> where TAcc : unmanaged
    {
        int last = count - 1;
        byte* w0 = rows[0], w1 = rows[Math.Min(1, last)], w2 = rows[Math.Min(2, last)], w3 = rows[Math.Min(3, last)];
        TAcc c0 = default, c1 = default, c2 = default, c3 = default;
        int steps = K.Steps(n);
        long perStep = ahead is null || steps == 0 ? 0 : (aheadBytes + steps - 1) / steps;
        for (int s = 0; s < steps; s++)
        {
            for (long b = 0; b < perStep; b += 64) Sse.Prefetch0(ahead + s * perStep + b);
            c0 = K.Step(w0, a, s, c0);
            c1 = K.Step(w1, a, s, c1);
            c2 = K.Step(w2, a, s, c2);
            c3 = K.Step(w3, a, s, c3);
        }
        TAcc* acc4 = stackalloc TAcc[4]; // [4 rows]
        acc4[0] = c0;
        acc4[1] = c1;
        acc4[2] = c2;
        acc4[3] = c3;
        float* out4 = stackalloc float[4]; // [4 rows]
        out4[0] = K.Finish(w0, a, n, acc4[0], K.Special(w0, n));
        out4[1] = K.Finish(w1, a, n, acc4[1], K.Special(w1, n));
        out4[2] = K.Finish(w2, a, n, acc4[2], K.Special(w2, n));
        out4[3] = K.Finish(w3, a, n, acc4[3], K.Special(w3, n));
        for (int i = 0; i < count; i++) y[i] = out4[i];
    }

    // The same chains with one weight row against four activations; its identical loads and decoding are shared.
    private static void RunTokens<K, TAcc>(byte* w, bool special, int count, Activation* acts, int n, float* y)
        where K : struct, IKernel<TAcc> where TAcc : struct
    {
        int last = count - 1;
        Activation a0 = acts[0], a1 = acts[Math.Min(1, last)], a2 = acts[Math.Min(2, last)], a3 = acts[Math.Min(3, last)];
        TAcc c0 = default, c1 = default, c2 = default, c3 = default;
        int steps = K.Steps(n);
        for (int s = 0; s < steps; s++)
        {
            c0 = K.Step(w, a0, s, c0);
            c1 = K.Step(w, a1, s, c1);
            c2 = K.Step(w, a2, s, c2);
            c3 = K.Step(w, a3, s, c3);
        }
        float* out4 = stackalloc float[4]; // [4 tokens]
        out4[0] = K.Finish(w, a0, n, c0, special);
        out4[1] = K.Finish(w, a1, n, c1, special);
        out4[2] = K.Finish(w, a2, n, c2, special);
        out4[3] = K.Finish(w, a3, n, c3, special);
        for (int i = 0; i < count; i++) y[i] = out4[i];
    }

    // 16 chains, each the same Step sequence as in RunRows; the JIT shares the identical loads between them.
    private static void Tile4x4<K, TAcc>(int rowCount, byte** rows, bool* special, int tokenCount, Activation* acts, int n, float* y)
        where K : struct, IKernel<TAcc> where TAcc : struct
    {
        int lr = rowCount - 1, lt = tokenCount - 1;
        byte* w0 = rows[0], w1 = rows[Math.Min(1, lr)], w2 = rows[Math.Min(2, lr)], w3 = rows[Math.Min(3, lr)];
        Activation a0 = acts[0], a1 = acts[Math.Min(1, lt)], a2 = acts[Math.Min(2, lt)], a3 = acts[Math.Min(3, lt)];
        TAcc c00 = default, c01 = default, c02 = default, c03 = default, c10 = default, c11 = default, c12 = default, c13 = default;
        TAcc c20 = default, c21 = default, c22 = default, c23 = default, c30 = default, c31 = default, c32 = default, c33 = default;
        int steps = K.Steps(n);
        for (int s = 0; s < steps; s++)
        {
            c00 = K.Step(w0, a0, s, c00); c01 = K.Step(w0, a1, s, c01); c02 = K.Step(w0, a2, s, c02); c03 = K.Step(w0, a3, s, c03);
            c10 = K.Step(w1, a0, s, c10); c11 = K.Step(w1, a1, s, c11); c12 = K.Step(w1, a2, s, c12); c13 = K.Step(w1, a3, s, c13);
            c20 = K.Step(w2, a0, s, c20); c21 = K.Step(w2, a1, s, c21); c22 = K.Step(w2, a2, s, c22); c23 = K.Step(w2, a3, s, c23);
            c30 = K.Step(w3, a0, s, c30); c31 = K.Step(w3, a1, s, c31); c32 = K.Step(w3, a2, s, c32); c33 = K.Step(w3, a3, s, c33);
        }
        float* all = stackalloc float[16]; // [4 rows, 4 tokens]
        bool s0 = special[0], s1 = special[Math.Min(1, lr)], s2 = special[Math.Min(2, lr)], s3 = special[Math.Min(3, lr)];
        all[0] = K.Finish(w0, a0, n, c00, s0); all[1] = K.Finish(w0, a1, n, c01, s0); all[2] = K.Finish(w0, a2, n, c02, s0); all[3] = K.Finish(w0, a3, n, c03, s0);
        all[4] = K.Finish(w1, a0, n, c10, s1); all[5] = K.Finish(w1, a1, n, c11, s1); all[6] = K.Finish(w1, a2, n, c12, s1); all[7] = K.Finish(w1, a3, n, c13, s1);
        all[8] = K.Finish(w2, a0, n, c20, s2); all[9] = K.Finish(w2, a1, n, c21, s2); all[10] = K.Finish(w2, a2, n, c22, s2); all[11] = K.Finish(w2, a3, n, c23, s2);
        all[12] = K.Finish(w3, a0, n, c30, s3); all[13] = K.Finish(w3, a1, n, c31, s3); all[14] = K.Finish(w3, a2, n, c32, s3); all[15] = K.Finish(w3, a3, n, c33, s3);
        for (int r = 0; r < rowCount; r++)
            for (int t = 0; t < tokenCount; t++) y[4 * r + t] = all[4 * r + t];
    }

    // ---- float formats, AVX-512: 16 elements per step ----

    private struct F32x16 : IKernel<Vector512<float>>
    {
        public static int Steps(int n) => n / 16;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Step(byte* w, in Activation a, int s, Vector512<float> acc) =>
            Vector512.FusedMultiplyAdd(Vector512.Load((float*)w + 16 * s), Vector512.Load(a.X + 16 * s), acc);

        public static float Finish(byte* w, in Activation a, int n, Vector512<float> acc, bool special)
        {
            float sum = Vector512.Sum(acc);
            for (int i = n / 16 * 16; i < n; i++) sum += ((float*)w)[i] * a.X[i];
            return sum;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> BFloat16x16(byte* p) =>
        (Avx512F.ConvertToVector512UInt32(Vector256.Load((ushort*)p)) << 16).AsSingle();

    private struct BF16x16 : IKernel<Vector512<float>>
    {
        public static int Steps(int n) => n / 16;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Step(byte* w, in Activation a, int s, Vector512<float> acc) =>
            Vector512.FusedMultiplyAdd(BFloat16x16(w + 32 * s), Vector512.Load(a.X + 16 * s), acc);

        public static float Finish(byte* w, in Activation a, int n, Vector512<float> acc, bool special)
        {
            float sum = Vector512.Sum(acc);
            for (int i = n / 16 * 16; i < n; i++) sum += BFloat16(Unsafe.ReadUnaligned<ushort>(w + 2 * i)) * a.X[i];
            return sum;
        }
    }

    /// <summary>Whether any of the row's n binary16 values has exponent 31 (Inf/NaN), which the fast conversion makes finite.</summary>
    private static bool HasNonFiniteHalves(byte* w, int n)
    {
        // |h|·2 ≥ 0xF800 exactly when the exponent bits are all ones; a running maximum keeps the loop branch-free.
        int i = 0;
        Vector256<ushort> top = default;
        if (Vector256.IsHardwareAccelerated)
            for (; i <= n - 16; i += 16) top = Vector256.Max(top, Vector256.Load((ushort*)w + i) << 1);
        if (Vector256.GreaterThanOrEqualAny(top, Vector256.Create((ushort)0xF800))) return true;
        for (; i < n; i++)
            if ((ushort)(Unsafe.ReadUnaligned<ushort>(w + 2 * i) << 1) >= 0xF800) return true;
        return false;
    }

    private struct F16x16 : IKernel<Vector512<float>>
    {
        public static int Steps(int n) => n / 16;

        public static bool Special(byte* w, int n) => HasNonFiniteHalves(w, n);

        /// <summary>
        /// binary16 → binary32 for finite values in four operations: sign-extend, move exponent and mantissa up 13
        /// bits (the sign lands on bit 31, its copies on bits 28-30 are masked off), and multiply by 2^112 to rebias
        /// 15 → 127, exact for normals and subnormals. Exponent 31 would come out finite; <c>Finish</c> checks for it.
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Step(byte* w, in Activation a, int s, Vector512<float> acc)
        {
            Vector256<short> h = Vector256.Load((short*)w + 16 * s);
            Vector512<float> v = ((Avx512F.ConvertToVector512Int32(h) << 13) & Vector512.Create(unchecked((int)0x8FFFE000))).AsSingle()
                * Vector512.Create(BitConverter.UInt32BitsToSingle(0x77800000));
            return Vector512.FusedMultiplyAdd(v, Vector512.Load(a.X + 16 * s), acc);
        }

        public static float Finish(byte* w, in Activation a, int n, Vector512<float> acc, bool special)
        {
            if (special) return (float)FloatDotReference(WeightFormat.F16, w, a.X, n);
            float sum = Vector512.Sum(acc);
            for (int i = n / 16 * 16; i < n; i++) sum += Half(w + 2 * i) * a.X[i];
            return sum;
        }
    }

    // ---- integer formats, AVX-512 ----

    /// <summary>Σ pairs of u8·s8 into int32 lanes: vpmaddubsw then vpmaddwd by 1 (no int16 overflow for these ranges).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<int> DotU8S8(Vector512<byte> u, Vector512<sbyte> s) =>
        Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(u, s), Vector512<short>.One);

    /// <summary>Two blocks per step (lanes 0-7 block 0, 8-15 block 1); an odd last block is summed in <c>Finish</c>.</summary>
    private struct Q8_0x512 : IKernel<Vector512<float>>
    {
        public static int Steps(int n) => n / 64;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Step(byte* w, in Activation a, int s, Vector512<float> acc)
        {
            byte* p = w + 68L * s;
            // One vinserti32x8 from memory per pair of halves: Vector512.Create(lower, upper) compiles to two inserts,
            // each depending on the register's previous value, on the shuffle port the byte compare also needs.
            Vector512<sbyte> q = Avx512F.InsertVector256(Vector256.Load((sbyte*)p + 2).ToVector512Unsafe(), Vector256.Load((sbyte*)p + 36), 1);
            // |w| ≤ 128 and |x| ≤ 127, so a pair sums to at most 32512: vpmaddubsw does not saturate.
            Vector512<sbyte> signedX = Vector512.ConditionalSelect(Vector512.LessThan(q, Vector512<sbyte>.Zero),
                Vector512.Load(a.Q.NegQ + 64 * s), Vector512.Load(a.Q.Q + 64 * s));
            Vector512<int> isum = DotU8S8(Avx512BW.Abs(q), signedX);
            Vector512<float> dw = Avx512F.InsertVector256(Vector256.Create(Scale(p)).ToVector512Unsafe(), Vector256.Create(Scale(p + 34)), 1);
            return Vector512.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(isum), dw * Vector512.Load(a.Q.DPair + 16 * s), acc);
        }

        public static float Finish(byte* w, in Activation a, int n, Vector512<float> acc, bool special)
        {
            float sum = Vector512.Sum(acc);
            if (n / 32 % 2 != 0)
            {
                int b = n / 32 - 1;
                sum += Half(w + 34L * b) * a.Q.D[b] * Q8_0Sum(w + 34L * b, a.Q.Q + 32 * b);
            }
            return sum;
        }
    }

    /// <summary>Doubled E2M1 values plus 12, so that every entry is unsigned for vpmaddubsw; 12·Σx comes off after.</summary>
    private static readonly Vector512<byte> Mxfp4Offset512 = Vector512.Create(
        Vector128.Create((byte)12, 13, 14, 15, 16, 18, 20, 24, 12, 11, 10, 9, 8, 6, 4, 0));

    /// <summary>
    /// vpermt2b indices gathering the 16 nibble bytes of four 17-byte blocks into 16-byte lanes, from p[0..64) and
    /// p[4..68) (the second load ends at the fourth block's last byte, never past it).
    /// </summary>
    private static readonly Vector512<byte> Mxfp4Gather = BuildMxfp4Gather();

    /// <summary>vpermb indices putting block k's E8M0 byte (p[17k]) into the four int32 lanes of block k.</summary>
    private static readonly Vector512<byte> Mxfp4Exponents = BuildMxfp4Exponents();

    private static Vector512<byte> BuildMxfp4Gather()
    {
        Span<byte> idx = stackalloc byte[64]; // [4 blocks, 16 bytes]
        for (int k = 0; k < 4; k++)
            for (int j = 0; j < 16; j++)
            {
                int offset = 17 * k + 1 + j;
                idx[16 * k + j] = (byte)(offset < 64 ? offset : 64 + offset - 4);
            }
        return Vector512.Create((ReadOnlySpan<byte>)idx);
    }

    private static Vector512<byte> BuildMxfp4Exponents()
    {
        Span<byte> idx = stackalloc byte[64]; // [16 int32 lanes, 4 bytes]
        for (int i = 0; i < 64; i++) idx[i] = (byte)(17 * (i / 16));
        return Vector512.Create((ReadOnlySpan<byte>)idx);
    }

    /// <summary>
    /// Four blocks per step: one byte permute brings their nibbles together, so low nibbles are elements 0-15 and high
    /// nibbles 16-31 of each block, matching the activation's <see cref="Q8Vector.MxQ"/> order. The E8M0 scale is
    /// applied with vscalefps, dx·2^(e−128), the same single rounding as the twin's product. Blocks past a multiple
    /// of four are summed in <c>Finish</c>.
    /// </summary>
    private struct Mxfp4x512 : IKernel<Vector512<float>>
    {
        public static int Steps(int n) => n / 128;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Step(byte* w, in Activation a, int s, Vector512<float> acc)
        {
            byte* p = w + 68L * s;
            Vector512<byte> l0 = Vector512.Load(p), l1 = Vector512.Load(p + 4);
            Vector512<byte> nib = Avx512Vbmi.PermuteVar64x8x2(l0, Mxfp4Gather, l1);
            var low = Vector512.Create((byte)0xF);
            Vector512<byte> table = Mxfp4Offset512;
            sbyte* x = a.Q.MxQ + 128 * s;
            // Values + 12 are in 0..24 and |x| ≤ 127: a pair sums to at most 6096, two pairs plus the −12·Σx
            // offset of the same four elements stay within ±12192.
            Vector512<short> pairs = Avx512BW.MultiplyAddAdjacent(Avx512BW.Shuffle(table, nib & low), Vector512.Load(x))
                + Avx512BW.MultiplyAddAdjacent(Avx512BW.Shuffle(table, (nib.AsUInt16() >>> 4).AsByte() & low), Vector512.Load(x + 64))
                + Vector512.Load(a.Q.MxOffset + 32 * s);
            Vector512<int> isum = Avx512BW.MultiplyAddAdjacent(pairs, Vector512<short>.One);
            Vector512<int> e = Avx512Vbmi.PermuteVar64x8(l0, Mxfp4Exponents).AsInt32() & Vector512.Create(0xFF);
            Vector512<float> scale = Avx512F.Scale(Vector512.Load(a.Q.DQuad + 16 * s), Avx512F.ConvertToVector512Single(e - Vector512.Create(128)));
            return Vector512.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(isum), scale, acc);
        }

        public static float Finish(byte* w, in Activation a, int n, Vector512<float> acc, bool special)
        {
            float sum = Vector512.Sum(acc);
            for (int b = n / 128 * 4; b < n / 32; b++)
                sum += E8M0Half(w[17L * b]) * a.Q.D[b] * Mxfp4Sum(w + 17L * b, a.Q.Q + 32 * b);
            return sum;
        }
    }

    /// <summary>vpshufb indices that spread scale bytes a and b (of a broadcast qword) over 16 int16 lanes each.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<byte> SpreadScales(ulong a, ulong b)
    {
        ulong la = (0x8000 | a) * 0x0001000100010001UL, lb = (0x8000 | b) * 0x0001000100010001UL;
        return Vector512.Create(la, la, la, la, lb, lb, lb, lb).AsByte();
    }

    /// <summary>
    /// One super-block per step: Σ s_j·Σq·x in int32 lanes times d·dx, and Σ m_j·Σx (lanes 0-3) times −dmin·dx into
    /// the same accumulator.
    /// </summary>
    private struct Q4_Kx512 : IKernel<Vector512<float>>
    {
        public static int Steps(int n) => n / 256;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Step(byte* w, in Activation a, int s, Vector512<float> acc)
        {
            byte* row = w + 144L * s;
            sbyte* xs = a.Q.K4Q + 256 * s;
            // ggml's unpacking of the twelve scale bytes: scales 0-3 | 4-7 and mins 0-3 | 4-7, one byte each.
            uint u0 = Unsafe.ReadUnaligned<uint>(row + 4), u1 = Unsafe.ReadUnaligned<uint>(row + 8), u2 = Unsafe.ReadUnaligned<uint>(row + 12);
            ulong scales = (u0 & 0x3f3f3f3fu) | (ulong)((u2 & 0x0f0f0f0fu) | (((u0 >> 6) & 0x03030303u) << 4)) << 32;
            ulong mins = (u1 & 0x3f3f3f3fu) | (ulong)(((u2 >> 4) & 0x0f0f0f0fu) | (((u1 >> 6) & 0x03030303u) << 4)) << 32;
            Vector512<byte> sv = Vector512.Create(scales).AsByte();
            var nib = Vector512.Create((byte)0xF);
            Vector512<byte> q0 = Vector512.Load(row + 16), q1 = Vector512.Load(row + 80);
            // Low nibbles of bytes 0-31 are elements 0-31 and of bytes 32-63 elements 64-95; the high nibbles the next
            // 32; the activation's K4Q holds x in that order.
            // Nibble·x pairs sum to at most 3810, times a 6-bit scale: far inside int32.
            Vector512<int> isum =
                Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(q0 & nib, Vector512.Load(xs)), Avx512BW.Shuffle(sv, SpreadScales(0, 2)).AsInt16())
                + Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent((q0.AsUInt16() >>> 4).AsByte() & nib, Vector512.Load(xs + 64)), Avx512BW.Shuffle(sv, SpreadScales(1, 3)).AsInt16())
                + Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(q1 & nib, Vector512.Load(xs + 128)), Avx512BW.Shuffle(sv, SpreadScales(4, 6)).AsInt16())
                + Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent((q1.AsUInt16() >>> 4).AsByte() & nib, Vector512.Load(xs + 192)), Avx512BW.Shuffle(sv, SpreadScales(5, 7)).AsInt16());
            float dx = a.Q.D[s];
            acc = Vector512.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(isum), Vector512.Create(Scale(row) * dx), acc);
            Vector128<int> imin = Sse2.MultiplyAddAdjacent(Sse41.ConvertToVector128Int16(Vector128.CreateScalar(mins).AsByte()),
                Vector128.Load(a.Q.Sums32 + 8 * s));
            Vector512<int> imin512 = imin.ToVector256().ToVector512();
            return Vector512.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(imin512), Vector512.Create(-(Scale(row + 2) * dx)), acc);
        }

        public static float Finish(byte* w, in Activation a, int n, Vector512<float> acc, bool special) => Vector512.Sum(acc);
    }

    private static readonly Vector512<short> Q6ScaleIndex0 = ScaleIndex(0), Q6ScaleIndex4 = ScaleIndex(4), Q6ScaleIndex8 = ScaleIndex(8), Q6ScaleIndex12 = ScaleIndex(12);

    /// <summary>vpermw indices giving int16 lanes 8k..8k+7 the scale first + k (k = 0..3): one scale per 16 elements.</summary>
    private static Vector512<short> ScaleIndex(int first) => Vector512.Create(
        Vector256.Create(Vector128.Create((short)first), Vector128.Create((short)(first + 1))),
        Vector256.Create(Vector128.Create((short)(first + 2)), Vector128.Create((short)(first + 3))));

    /// <summary>One super-block per step: Σ sc·(q − 32)·x as Σ sc·q·x − 32·Σ sc·Σx, times d·dx.</summary>
    private struct Q6_Kx512 : IKernel<Vector512<float>>
    {
        public static int Steps(int n) => n / 256;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Step(byte* w, in Activation a, int s, Vector512<float> acc)
        {
            byte* row = w + 210L * s;
            sbyte* x = a.Q.Q + 256 * s;
            Vector256<short> sc = Avx2.ConvertToVector256Int16((sbyte*)(row + 192)); // [16]
            Vector512<short> scz = sc.ToVector512();
            Vector512<int> isum = Half(row, row + 128, x, scz, Q6ScaleIndex0, Q6ScaleIndex4) + Half(row + 64, row + 160, x + 128, scz, Q6ScaleIndex8, Q6ScaleIndex12);
            Vector256<int> offset = Avx2.MultiplyAddAdjacent(sc, Vector256.Load(a.Q.Sums16 + 16 * s)) << 5;
            isum -= offset.ToVector512();
            return Vector512.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(isum), Vector512.Create(Scale(row + 208) * a.Q.D[s]), acc);
        }

        /// <summary>
        /// One half of 128 elements. ql's 64 bytes: low nibbles are elements 0-63, high nibbles 64-127. qh, doubled,
        /// gives each its two high bits: shifted to bits 4-5 by 4 and 2 (elements 0-31, 32-63) or 0 and −2 (64-127).
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static Vector512<int> Half(byte* ql, byte* qhBytes, sbyte* x, Vector512<short> scz, Vector512<short> loScales, Vector512<short> hiScales)
        {
            var nib = Vector512.Create((byte)0xF);
            var top = Vector512.Create((byte)0x30);
            Vector512<byte> l = Vector512.Load(ql);
            Vector256<ulong> qh = Vector256.Load((ulong*)qhBytes);
            Vector512<ulong> qh2 = Vector512.Create(qh, qh);
            Vector512<byte> lo = (l & nib) | (Avx512F.ShiftLeftLogicalVariable(qh2, Vector512.Create(4UL, 4, 4, 4, 2, 2, 2, 2)).AsByte() & top);
            Vector512<byte> hi = ((l.AsUInt16() >>> 4).AsByte() & nib)
                | (Avx512F.ShiftRightLogicalVariable(qh2, Vector512.Create(0UL, 0, 0, 0, 2, 2, 2, 2)).AsByte() & top);
            // q ≤ 63 and |x| ≤ 127: pairs ≤ 16002; times an int8 scale, pairs of those ≤ 4.1e6.
            return Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(lo, Vector512.Load(x)), Avx512BW.PermuteVar32x16(scz, loScales))
                + Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(hi, Vector512.Load(x + 64)), Avx512BW.PermuteVar32x16(scz, hiScales));
        }

        public static float Finish(byte* w, in Activation a, int n, Vector512<float> acc, bool special) => Vector512.Sum(acc);
    }

    // ---- AVX2: the same arithmetic per block in 256-bit registers ----

    private struct F32x8 : IKernel<Vector256<float>>
    {
        public static int Steps(int n) => n / 8;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> Step(byte* w, in Activation a, int s, Vector256<float> acc) =>
            Vector256.FusedMultiplyAdd(Vector256.Load((float*)w + 8 * s), Vector256.Load(a.X + 8 * s), acc);

        public static float Finish(byte* w, in Activation a, int n, Vector256<float> acc, bool special)
        {
            float sum = Vector256.Sum(acc);
            for (int i = n / 8 * 8; i < n; i++) sum += ((float*)w)[i] * a.X[i];
            return sum;
        }
    }

    private struct BF16x8 : IKernel<Vector256<float>>
    {
        public static int Steps(int n) => n / 8;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> Step(byte* w, in Activation a, int s, Vector256<float> acc) =>
            Vector256.FusedMultiplyAdd((Avx2.ConvertToVector256Int32(Vector128.Load((ushort*)w + 8 * s)) << 16).AsSingle(),
                Vector256.Load(a.X + 8 * s), acc);

        public static float Finish(byte* w, in Activation a, int n, Vector256<float> acc, bool special)
        {
            float sum = Vector256.Sum(acc);
            for (int i = n / 8 * 8; i < n; i++) sum += BFloat16(Unsafe.ReadUnaligned<ushort>(w + 2 * i)) * a.X[i];
            return sum;
        }
    }

    private struct F16x8 : IKernel<Vector256<float>>
    {
        public static int Steps(int n) => n / 8;

        public static bool Special(byte* w, int n) => HasNonFiniteHalves(w, n);

        // The conversion of F16x16, in 8 lanes.
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> Step(byte* w, in Activation a, int s, Vector256<float> acc)
        {
            Vector128<short> h = Vector128.Load((short*)w + 8 * s);
            Vector256<float> v = ((Avx2.ConvertToVector256Int32(h) << 13) & Vector256.Create(unchecked((int)0x8FFFE000))).AsSingle()
                * Vector256.Create(BitConverter.UInt32BitsToSingle(0x77800000));
            return Vector256.FusedMultiplyAdd(v, Vector256.Load(a.X + 8 * s), acc);
        }

        public static float Finish(byte* w, in Activation a, int n, Vector256<float> acc, bool special)
        {
            if (special) return (float)FloatDotReference(WeightFormat.F16, w, a.X, n);
            float sum = Vector256.Sum(acc);
            for (int i = n / 8 * 8; i < n; i++) sum += Half(w + 2 * i) * a.X[i];
            return sum;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> DotU8S8(Vector256<byte> u, Vector256<sbyte> s) =>
        Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(u, s), Vector256<short>.One);

    /// <summary>One block per step; vpsignb moves the weight's sign onto x.</summary>
    private struct Q8_0x256 : IKernel<Vector256<float>>
    {
        public static int Steps(int n) => n / 32;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> Step(byte* w, in Activation a, int s, Vector256<float> acc)
        {
            byte* p = w + 34L * s;
            Vector256<sbyte> q = Vector256.Load((sbyte*)p + 2);
            Vector256<int> isum = DotU8S8(Avx2.Abs(q), Avx2.Sign(Vector256.Load(a.Q.Q + 32 * s), q));
            return Vector256.FusedMultiplyAdd(Avx.ConvertToVector256Single(isum), Vector256.Create(Scale(p) * a.Q.D[s]), acc);
        }

        public static float Finish(byte* w, in Activation a, int n, Vector256<float> acc, bool special) => Vector256.Sum(acc);
    }

    /// <summary>One block per step: low nibbles (elements 0-15) in the lower lane, high nibbles (16-31) in the upper.</summary>
    private struct Mxfp4x256 : IKernel<Vector256<float>>
    {
        public static int Steps(int n) => n / 32;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> Step(byte* w, in Activation a, int s, Vector256<float> acc)
        {
            byte* p = w + 17L * s;
            Vector128<byte> b = Vector128.Load(p + 1);
            var low = Vector128.Create((byte)0xF);
            Vector256<byte> nib = Vector256.Create(b & low, (b.AsUInt16() >>> 4).AsByte() & low);
            Vector256<byte> table = Vector256.Create(Vector128.Create((byte)12, 13, 14, 15, 16, 18, 20, 24, 12, 11, 10, 9, 8, 6, 4, 0));
            Vector256<int> isum = DotU8S8(Avx2.Shuffle(table, nib), Vector256.Load(a.Q.Q + 32 * s))
                + Vector256.CreateScalar(-12 * a.Q.Sums32[s]);
            return Vector256.FusedMultiplyAdd(Avx.ConvertToVector256Single(isum), Vector256.Create(E8M0Half(p[0]) * a.Q.D[s]), acc);
        }

        public static float Finish(byte* w, in Activation a, int n, Vector256<float> acc, bool special) => Vector256.Sum(acc);
    }

    private struct Q4_Kx256 : IKernel<Vector256<float>>
    {
        public static int Steps(int n) => n / 256;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> Step(byte* w, in Activation a, int s, Vector256<float> acc)
        {
            byte* row = w + 144L * s, q = row + 16;
            sbyte* x = a.Q.Q + 256 * s;
            var nib = Vector256.Create((byte)0xF);
            Vector256<int> isum = default;
            int imin = 0;
            for (int g = 0; g < 4; g++, q += 32, x += 64)
            {
                ScaleMinK4(2 * g, row + 4, out int s1, out int m1);
                ScaleMinK4(2 * g + 1, row + 4, out int s2, out int m2);
                Vector256<byte> b = Vector256.Load(q);
                isum += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(b & nib, Vector256.Load(x)), Vector256.Create((short)s1))
                    + Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent((b.AsUInt16() >>> 4).AsByte() & nib, Vector256.Load(x + 32)), Vector256.Create((short)s2));
                imin += m1 * a.Q.Sums32[8 * s + 2 * g] + m2 * a.Q.Sums32[8 * s + 2 * g + 1];
            }
            float dx = a.Q.D[s];
            acc = Vector256.FusedMultiplyAdd(Avx.ConvertToVector256Single(isum), Vector256.Create(Scale(row) * dx), acc);
            return Vector256.FusedMultiplyAdd(Vector256.CreateScalar((float)imin), Vector256.Create(-(Scale(row + 2) * dx)), acc);
        }

        public static float Finish(byte* w, in Activation a, int n, Vector256<float> acc, bool special) => Vector256.Sum(acc);
    }

    private struct Q6_Kx256 : IKernel<Vector256<float>>
    {
        public static int Steps(int n) => n / 256;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> Step(byte* w, in Activation a, int s, Vector256<float> acc)
        {
            byte* row = w + 210L * s;
            sbyte* x = a.Q.Q + 256 * s;
            var nib = Vector256.Create((byte)0xF);
            var top = Vector256.Create((byte)0x30);
            Vector256<int> isum = default;
            int offset = 0;
            for (int h = 0; h < 2; h++, x += 128)
            {
                byte* ql = row + 64 * h;
                sbyte* sc = (sbyte*)(row + 192 + 8 * h);
                Vector256<byte> l0 = Vector256.Load(ql), l1 = Vector256.Load(ql + 32);
                Vector256<ushort> qh = Vector256.Load((ushort*)(row + 128 + 32 * h));
                // Quarter k of element l: a nibble of ql[l] or ql[l + 32] and bits 2k..2k+1 of qh[l], moved to bits 4-5.
                Vector256<byte> q1 = (l0 & nib) | ((qh << 4).AsByte() & top);
                Vector256<byte> q2 = (l1 & nib) | ((qh << 2).AsByte() & top);
                Vector256<byte> q3 = ((l0.AsUInt16() >>> 4).AsByte() & nib) | (qh.AsByte() & top);
                Vector256<byte> q4 = ((l1.AsUInt16() >>> 4).AsByte() & nib) | ((qh >>> 2).AsByte() & top);
                isum += Q6Quarter(q1, x, sc[0], sc[1]) + Q6Quarter(q2, x + 32, sc[2], sc[3])
                    + Q6Quarter(q3, x + 64, sc[4], sc[5]) + Q6Quarter(q4, x + 96, sc[6], sc[7]);
                for (int k = 0; k < 8; k++) offset += sc[k] * a.Q.Sums16[16 * s + 8 * h + k];
            }
            isum -= Vector256.CreateScalar(32 * offset);
            return Vector256.FusedMultiplyAdd(Avx.ConvertToVector256Single(isum), Vector256.Create(Scale(row + 208) * a.Q.D[s]), acc);
        }

        // Elements 0-15 (int16 lanes 0-7 after vpmaddubsw) take the first scale, 16-31 the second.
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static Vector256<int> Q6Quarter(Vector256<byte> q, sbyte* x, sbyte s0, sbyte s1) =>
            Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(q, Vector256.Load(x)), Vector256.Create(Vector128.Create((short)s0), Vector128.Create((short)s1)));

        public static float Finish(byte* w, in Activation a, int n, Vector256<float> acc, bool special) => Vector256.Sum(acc);
    }
}
