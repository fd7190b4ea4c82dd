using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using static MoeSharp.Formats.ScalarCodec;

namespace MoeSharp.Formats;

/// <summary>
/// Decode's matrix-vector kernels: four rows per pass over x, so each activation vector is loaded once for four
/// rows. The quantized formats multiply in int8 against a <see cref="Q8Activation"/> (ggml's <c>vec_dot_type</c>)
/// with <c>vpmaddubsw</c>, which takes one unsigned operand: Q4_K and Q6_K nibbles are unsigned already and their
/// offsets come back through the activation's block sums; MXFP4 looks up its values plus 12 (unsigned) and
/// subtracts 12·Σq; Q8_0 moves the weight's sign onto x (|w|·sign(w)·x), as ggml does. Integer sums are exact;
/// each block's sum is scaled once in fp32 by (weight scale · activation scale).
/// </summary>
/// <remarks>
/// <see cref="DotReference"/> is the scalar twin of exactly that arithmetic: the same integer sums and the same
/// fp32 scale products, accumulated in double. Rows past the count are read as the last row again and dropped,
/// so a row's result never depends on how rows were grouped. Without AVX-512 the twin is the path (no AVX2 path).
/// </remarks>
internal static unsafe class LegacyMatVecKernels
{
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

    /// <summary>y[0..count) = rows w, w + rowBytes, … dotted with x (fp32 for the float formats, else <paramref name="q8"/>).</summary>
    public static void Dot(WeightFormat format, byte* w, long rowBytes, int count, float* x, in Q8Vector q8, int n, float* y)
    {
        byte* r0 = w, r1 = w + Math.Min(1, count - 1) * rowBytes, r2 = w + Math.Min(2, count - 1) * rowBytes,
            r3 = w + Math.Min(3, count - 1) * rowBytes;
        float* out4 = stackalloc float[4]; // [4 rows]
        if (!Avx512BW.IsSupported)
        {
            for (int r = 0; r < count; r++)
                y[r] = Q8Activation.BlockFor(format) == 0
                    ? RowKernels.Dot(format, w + r * rowBytes, x, n)
                    : (float)DotReference(format, w + r * rowBytes, q8, n);
            return;
        }
        switch (format)
        {
            case WeightFormat.F32: DotF32(r0, r1, r2, r3, x, n, out4); break;
            case WeightFormat.F16: DotF16(r0, r1, r2, r3, x, n, out4); break;
            case WeightFormat.BF16: DotBF16(r0, r1, r2, r3, x, n, out4); break;
            case WeightFormat.Q8_0: DotQ8_0(r0, r1, r2, r3, q8, n / 32, out4); break;
            case WeightFormat.MXFP4: DotMxfp4(r0, r1, r2, r3, q8, n / 32, out4); break;
            case WeightFormat.Q4_K: DotQ4_K(r0, r1, r2, r3, q8, n / 256, out4); break;
            case WeightFormat.Q6_K: DotQ6_K(r0, r1, r2, r3, q8, n / 256, out4); break;
            default: throw new ArgumentOutOfRangeException(nameof(format), format, "unknown weight format");
        }
        for (int r = 0; r < count; r++) y[r] = out4[r];
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
                {
                    int isum = 0;
                    for (int j = 0; j < 32; j++) isum += (sbyte)row[2 + j] * x[j];
                    sum += (double)(Half(row) * a.D[b]) * isum;
                }
                break;
            case WeightFormat.MXFP4:
                for (int b = 0; b < n / 32; b++, row += 17, x += 32)
                {
                    int isum = 0;
                    for (int j = 0; j < 16; j++)
                        isum += Mxfp4Values[row[1 + j] & 0xF] * x[j] + Mxfp4Values[row[1 + j] >> 4] * x[j + 16];
                    sum += (double)(E8M0Half(row[0]) * a.D[b]) * isum;
                }
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

    // ---- float formats: x in fp32, one accumulator per row ----

    private static void DotF32(byte* r0, byte* r1, byte* r2, byte* r3, float* x, int n, float* y)
    {
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
        float* w0 = (float*)r0, w1 = (float*)r1, w2 = (float*)r2, w3 = (float*)r3;
        int i = 0;
        for (; i <= n - 16; i += 16)
        {
            var xv = Vector512.Load(x + i);
            a0 = Vector512.FusedMultiplyAdd(Vector512.Load(w0 + i), xv, a0);
            a1 = Vector512.FusedMultiplyAdd(Vector512.Load(w1 + i), xv, a1);
            a2 = Vector512.FusedMultiplyAdd(Vector512.Load(w2 + i), xv, a2);
            a3 = Vector512.FusedMultiplyAdd(Vector512.Load(w3 + i), xv, a3);
        }
        float s0 = Vector512.Sum(a0), s1 = Vector512.Sum(a1), s2 = Vector512.Sum(a2), s3 = Vector512.Sum(a3);
        for (; i < n; i++)
        {
            s0 += w0[i] * x[i];
            s1 += w1[i] * x[i];
            s2 += w2[i] * x[i];
            s3 += w3[i] * x[i];
        }
        y[0] = s0; y[1] = s1; y[2] = s2; y[3] = s3;
    }

    /// <summary>
    /// binary16 → binary32 for finite values in four operations: sign-extend, move exponent and mantissa up 13 bits
    /// (the sign lands on bit 31, its copies on bits 28-30 are masked off), and multiply by 2^112 to rebias 15 → 127,
    /// exact for normals and subnormals. Exponent 31 (Inf/NaN) would come out finite, so callers track the largest
    /// magnitude and redo such rows exactly.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> FiniteHalves16(Vector256<short> h) =>
        ((Avx512F.ConvertToVector512Int32(h) << 13) & Vector512.Create(unchecked((int)0x8FFFE000))).AsSingle()
        * Vector512.Create(BitConverter.UInt32BitsToSingle(0x77800000));

    private static void DotF16(byte* r0, byte* r1, byte* r2, byte* r3, float* x, int n, float* y)
    {
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
        Vector256<ushort> top = default; // largest |h|·2 seen: exponent 31 shows as ≥ 0xF800
        int i = 0;
        for (; i <= n - 16; i += 16)
        {
            var xv = Vector512.Load(x + i);
            Vector256<short> h0 = Vector256.Load((short*)(r0 + 2 * i)), h1 = Vector256.Load((short*)(r1 + 2 * i));
            Vector256<short> h2 = Vector256.Load((short*)(r2 + 2 * i)), h3 = Vector256.Load((short*)(r3 + 2 * i));
            a0 = Vector512.FusedMultiplyAdd(FiniteHalves16(h0), xv, a0);
            a1 = Vector512.FusedMultiplyAdd(FiniteHalves16(h1), xv, a1);
            a2 = Vector512.FusedMultiplyAdd(FiniteHalves16(h2), xv, a2);
            a3 = Vector512.FusedMultiplyAdd(FiniteHalves16(h3), xv, a3);
            top = Vector256.Max(Vector256.Max(top, h0.AsUInt16() << 1), Vector256.Max(h1.AsUInt16() << 1, Vector256.Max(h2.AsUInt16() << 1, h3.AsUInt16() << 1)));
        }
        if (Vector256.GreaterThanOrEqualAny(top, Vector256.Create((ushort)0xF800)))
        {
            y[0] = RowKernels.Dot(WeightFormat.F16, r0, x, n);
            y[1] = RowKernels.Dot(WeightFormat.F16, r1, x, n);
            y[2] = RowKernels.Dot(WeightFormat.F16, r2, x, n);
            y[3] = RowKernels.Dot(WeightFormat.F16, r3, x, n);
            return;
        }
        float s0 = Vector512.Sum(a0), s1 = Vector512.Sum(a1), s2 = Vector512.Sum(a2), s3 = Vector512.Sum(a3);
        for (; i < n; i++)
        {
            s0 += Half(r0 + 2 * i) * x[i];
            s1 += Half(r1 + 2 * i) * x[i];
            s2 += Half(r2 + 2 * i) * x[i];
            s3 += Half(r3 + 2 * i) * x[i];
        }
        y[0] = s0; y[1] = s1; y[2] = s2; y[3] = s3;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> BFloat16x16(byte* p) =>
        (Avx512F.ConvertToVector512UInt32(Vector256.Load((ushort*)p)) << 16).AsSingle();

    private static void DotBF16(byte* r0, byte* r1, byte* r2, byte* r3, float* x, int n, float* y)
    {
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
        int i = 0;
        for (; i <= n - 16; i += 16)
        {
            var xv = Vector512.Load(x + i);
            a0 = Vector512.FusedMultiplyAdd(BFloat16x16(r0 + 2 * i), xv, a0);
            a1 = Vector512.FusedMultiplyAdd(BFloat16x16(r1 + 2 * i), xv, a1);
            a2 = Vector512.FusedMultiplyAdd(BFloat16x16(r2 + 2 * i), xv, a2);
            a3 = Vector512.FusedMultiplyAdd(BFloat16x16(r3 + 2 * i), xv, a3);
        }
        float s0 = Vector512.Sum(a0), s1 = Vector512.Sum(a1), s2 = Vector512.Sum(a2), s3 = Vector512.Sum(a3);
        for (; i < n; i++)
        {
            s0 += BFloat16(Unsafe.ReadUnaligned<ushort>(r0 + 2 * i)) * x[i];
            s1 += BFloat16(Unsafe.ReadUnaligned<ushort>(r1 + 2 * i)) * x[i];
            s2 += BFloat16(Unsafe.ReadUnaligned<ushort>(r2 + 2 * i)) * x[i];
            s3 += BFloat16(Unsafe.ReadUnaligned<ushort>(r3 + 2 * i)) * x[i];
        }
        y[0] = s0; y[1] = s1; y[2] = s2; y[3] = s3;
    }

    // ---- integer formats ----

    /// <summary>Σ pairs of u8·s8 into int32 lanes: vpmaddubsw then vpmaddwd by 1 (no int16 overflow for these ranges).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<int> DotU8S8(Vector512<byte> u, Vector512<sbyte> s) =>
        Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(u, s), Vector512<short>.One);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Halves(float lower, float upper) =>
        Vector512.Create(Vector256.Create(lower), Vector256.Create(upper));

    /// <summary>Two Q8_0 blocks (lanes 0-7 block 0, 8-15 block 1) of one row into its accumulator.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Q8_0Pair(Vector512<sbyte> w, Vector512<float> dw, Vector512<sbyte> x, Vector512<sbyte> negX,
        Vector512<float> dx, Vector512<float> acc)
    {
        // |w| ≤ 128 and |x| ≤ 127, so a pair sums to at most 32512: vpmaddubsw does not saturate.
        Vector512<sbyte> signedX = Vector512.ConditionalSelect(Vector512.LessThan(w, Vector512<sbyte>.Zero), negX, x);
        Vector512<int> isum = DotU8S8(Avx512BW.Abs(w), signedX);
        return Vector512.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(isum), dw * dx, acc);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<sbyte> Q8_0Weights(byte* block, bool pair) =>
        Vector512.Create(Vector256.Load((sbyte*)block + 2), pair ? Vector256.Load((sbyte*)block + 36) : Vector256<sbyte>.Zero);

    private static void DotQ8_0(byte* r0, byte* r1, byte* r2, byte* r3, in Q8Vector a, int blocks, float* y)
    {
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
        int b = 0;
        for (; b + 1 < blocks; b += 2) Q8_0Step(r0, r1, r2, r3, a, b, pair: true, ref a0, ref a1, ref a2, ref a3);
        // An odd last block runs with a zero second half: x, w and its scale are all zero there.
        if (b < blocks) Q8_0Step(r0, r1, r2, r3, a, b, pair: false, ref a0, ref a1, ref a2, ref a3);
        y[0] = Vector512.Sum(a0); y[1] = Vector512.Sum(a1); y[2] = Vector512.Sum(a2); y[3] = Vector512.Sum(a3);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Q8_0Step(byte* r0, byte* r1, byte* r2, byte* r3, in Q8Vector a, int b, bool pair,
        ref Vector512<float> a0, ref Vector512<float> a1, ref Vector512<float> a2, ref Vector512<float> a3)
    {
        long o = 34L * b;
        // The odd last block spells out its zero upper half: with ToVector512() the optimised JIT folded the 256-bit
        // load into a 512-bit one and read the next 32 bytes of the buffer (stale q of an earlier, longer vector).
        Vector512<sbyte> x = pair ? Vector512.Load(a.Q + 32 * b) : Vector512.Create(Vector256.Load(a.Q + 32 * b), Vector256<sbyte>.Zero);
        Vector512<sbyte> negX = -x;
        Vector512<float> dx = Halves(a.D[b], pair ? a.D[b + 1] : 0f);
        a0 = Q8_0Pair(Q8_0Weights(r0 + o, pair), Halves(Scale(r0 + o), pair ? Scale(r0 + o + 34) : 0f), x, negX, dx, a0);
        a1 = Q8_0Pair(Q8_0Weights(r1 + o, pair), Halves(Scale(r1 + o), pair ? Scale(r1 + o + 34) : 0f), x, negX, dx, a1);
        a2 = Q8_0Pair(Q8_0Weights(r2 + o, pair), Halves(Scale(r2 + o), pair ? Scale(r2 + o + 34) : 0f), x, negX, dx, a2);
        a3 = Q8_0Pair(Q8_0Weights(r3 + o, pair), Halves(Scale(r3 + o), pair ? Scale(r3 + o + 34) : 0f), x, negX, dx, a3);
    }

    /// <summary>Doubled E2M1 values plus 12, so that every entry is unsigned for vpmaddubsw; 12·Σx comes off after.</summary>
    private static Vector512<byte> Mxfp4Offset => Vector512.Create(
        Vector128.Create((byte)12, 13, 14, 15, 16, 18, 20, 24, 12, 11, 10, 9, 8, 6, 4, 0));

    /// <summary>
    /// Two MXFP4 blocks as nibbles in element order: each block's 16 bytes go to two 128-bit lanes, the second
    /// shifted right by 4 (per 64-bit lane; the bits crossing bytes are masked off), so lanes hold elements 0-15, 16-31.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<byte> Mxfp4Nibbles(byte* block, bool pair)
    {
        Vector128<byte> b0 = Vector128.Load(block + 1), b1 = pair ? Vector128.Load(block + 18) : Vector128<byte>.Zero;
        Vector512<ulong> z = Vector512.Create(Vector256.Create(b0, b0), Vector256.Create(b1, b1)).AsUInt64();
        return Avx512F.ShiftRightLogicalVariable(z, Vector512.Create(0UL, 0, 4, 4, 0, 0, 4, 4)).AsByte() & Vector512.Create((byte)0xF);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Mxfp4Pair(Vector512<byte> table, Vector512<byte> nibbles, Vector512<float> dw, Vector512<sbyte> x, Vector512<int> offset,
        Vector512<float> dx, Vector512<float> acc)
    {
        // Values + 12 are in 0..24 and |x| ≤ 127: a pair sums to at most 6096.
        Vector512<int> isum = DotU8S8(Avx512BW.Shuffle(table, nibbles), x) + offset;
        return Vector512.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(isum), dw * dx, acc);
    }

    private static void DotMxfp4(byte* r0, byte* r1, byte* r2, byte* r3, in Q8Vector a, int blocks, float* y)
    {
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
        int b = 0;
        for (; b + 1 < blocks; b += 2) Mxfp4Step(r0, r1, r2, r3, a, b, pair: true, ref a0, ref a1, ref a2, ref a3);
        if (b < blocks) Mxfp4Step(r0, r1, r2, r3, a, b, pair: false, ref a0, ref a1, ref a2, ref a3);
        y[0] = Vector512.Sum(a0); y[1] = Vector512.Sum(a1); y[2] = Vector512.Sum(a2); y[3] = Vector512.Sum(a3);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Mxfp4Step(byte* r0, byte* r1, byte* r2, byte* r3, in Q8Vector a, int b, bool pair,
        ref Vector512<float> a0, ref Vector512<float> a1, ref Vector512<float> a2, ref Vector512<float> a3)
    {
        long o = 17L * b;
        // The odd last block spells out its zero upper half: with ToVector512() the optimised JIT folded the 256-bit
        // load into a 512-bit one and read the next 32 bytes of the buffer (stale q of an earlier, longer vector).
        Vector512<sbyte> x = pair ? Vector512.Load(a.Q + 32 * b) : Vector512.Create(Vector256.Load(a.Q + 32 * b), Vector256<sbyte>.Zero);
        // −12·Σq of each block, in one lane of its half: the lanes are summed in the end anyway.
        Vector512<int> offset = Vector512.Create(Vector256.CreateScalar(-12 * a.Sums32[b]),
            Vector256.CreateScalar(pair ? -12 * a.Sums32[b + 1] : 0));
        Vector512<float> dx = Halves(a.D[b], pair ? a.D[b + 1] : 0f);
        Vector512<byte> table = Mxfp4Offset;
        a0 = Mxfp4Pair(table, Mxfp4Nibbles(r0 + o, pair), Halves(E8M0Half(r0[o]), pair ? E8M0Half(r0[o + 17]) : 0f), x, offset, dx, a0);
        a1 = Mxfp4Pair(table, Mxfp4Nibbles(r1 + o, pair), Halves(E8M0Half(r1[o]), pair ? E8M0Half(r1[o + 17]) : 0f), x, offset, dx, a1);
        a2 = Mxfp4Pair(table, Mxfp4Nibbles(r2 + o, pair), Halves(E8M0Half(r2[o]), pair ? E8M0Half(r2[o + 17]) : 0f), x, offset, dx, a2);
        a3 = Mxfp4Pair(table, Mxfp4Nibbles(r3 + o, pair), Halves(E8M0Half(r3[o]), pair ? E8M0Half(r3[o + 17]) : 0f), x, offset, dx, a3);
    }

    /// <summary>vpshufb indices that spread scale bytes a and b (of a broadcast qword) over 16 int16 lanes each.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<byte> SpreadScales(int a, int b) =>
        Vector512.Create(Vector256.Create((ushort)(0x8000 | a)), Vector256.Create((ushort)(0x8000 | b))).AsByte();

    /// <summary>One Q4_K super-block of one row: Σ s_j·Σq·x in int32 lanes times d·dx, and Σ m_j·Σx times −dmin·dx.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Q4_KBlock(byte* row, Vector512<sbyte> x0, Vector512<sbyte> x1, Vector512<sbyte> x2, Vector512<sbyte> x3,
        Vector128<short> sums, float dx, ref Vector512<float> acc, ref Vector128<float> accMin)
    {
        // ggml's unpacking of the twelve scale bytes: scales 0-3 | 4-7 and mins 0-3 | 4-7, one byte each.
        uint u0 = Unsafe.ReadUnaligned<uint>(row + 4), u1 = Unsafe.ReadUnaligned<uint>(row + 8), u2 = Unsafe.ReadUnaligned<uint>(row + 12);
        ulong scales = (u0 & 0x3f3f3f3fu) | (ulong)((u2 & 0x0f0f0f0fu) | (((u0 >> 6) & 0x03030303u) << 4)) << 32;
        ulong mins = (u1 & 0x3f3f3f3fu) | (ulong)(((u2 >> 4) & 0x0f0f0f0fu) | (((u1 >> 6) & 0x03030303u) << 4)) << 32;
        Vector512<byte> s = Vector512.Create(scales).AsByte();
        var nib = Vector512.Create((byte)0xF);
        Vector512<byte> q0 = Vector512.Load(row + 16), q1 = Vector512.Load(row + 80);
        // Low nibbles of bytes 0-31 are elements 0-31 and of bytes 32-63 elements 64-95; the high nibbles the next 32.
        // Nibble·x pairs sum to at most 3810, times a 6-bit scale: far inside int32.
        Vector512<int> isum =
            Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(q0 & nib, x0), Avx512BW.Shuffle(s, SpreadScales(0, 2)).AsInt16())
            + Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent((q0.AsUInt16() >>> 4).AsByte() & nib, x1), Avx512BW.Shuffle(s, SpreadScales(1, 3)).AsInt16())
            + Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(q1 & nib, x2), Avx512BW.Shuffle(s, SpreadScales(4, 6)).AsInt16())
            + Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent((q1.AsUInt16() >>> 4).AsByte() & nib, x3), Avx512BW.Shuffle(s, SpreadScales(5, 7)).AsInt16());
        acc = Vector512.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(isum), Vector512.Create(Scale(row) * dx), acc);
        Vector128<int> imin = Sse2.MultiplyAddAdjacent(Sse41.ConvertToVector128Int16(Vector128.CreateScalar(mins).AsByte()), sums);
        accMin = Vector128.FusedMultiplyAdd(Sse2.ConvertToVector128Single(imin), Vector128.Create(-(Scale(row + 2) * dx)), accMin);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<sbyte> Join(sbyte* lower, sbyte* upper) =>
        Vector512.Create(Vector256.Load(lower), Vector256.Load(upper));

    private static void DotQ4_K(byte* r0, byte* r1, byte* r2, byte* r3, in Q8Vector a, int blocks, float* y)
    {
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
        Vector128<float> m0 = default, m1 = default, m2 = default, m3 = default;
        for (int b = 0; b < blocks; b++)
        {
            sbyte* xs = a.Q + 256 * b;
            Vector512<sbyte> x0 = Join(xs, xs + 64), x1 = Join(xs + 32, xs + 96), x2 = Join(xs + 128, xs + 192), x3 = Join(xs + 160, xs + 224);
            Vector128<short> sums = Vector128.Load(a.Sums32 + 8 * b);
            float dx = a.D[b];
            long o = 144L * b;
            Q4_KBlock(r0 + o, x0, x1, x2, x3, sums, dx, ref a0, ref m0);
            Q4_KBlock(r1 + o, x0, x1, x2, x3, sums, dx, ref a1, ref m1);
            Q4_KBlock(r2 + o, x0, x1, x2, x3, sums, dx, ref a2, ref m2);
            Q4_KBlock(r3 + o, x0, x1, x2, x3, sums, dx, ref a3, ref m3);
        }
        y[0] = Vector512.Sum(a0) + Vector128.Sum(m0);
        y[1] = Vector512.Sum(a1) + Vector128.Sum(m1);
        y[2] = Vector512.Sum(a2) + Vector128.Sum(m2);
        y[3] = Vector512.Sum(a3) + Vector128.Sum(m3);
    }

    /// <summary>vpermw indices giving int16 lanes 8k..8k+7 the scale first + k (k = 0..3): one scale per 16 elements.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<short> ScaleIndex(int first) => Vector512.Create(
        Vector256.Create(Vector128.Create((short)first), Vector128.Create((short)(first + 1))),
        Vector256.Create(Vector128.Create((short)(first + 2)), Vector128.Create((short)(first + 3))));

    /// <summary>One Q6_K super-block of one row: Σ sc·(q − 32)·x as Σ sc·q·x − 32·Σ sc·Σx, times d·dx.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Q6_KBlock(byte* row, sbyte* x, Vector256<short> sums, float dx, Vector512<float> acc)
    {
        Vector256<short> sc = Avx2.ConvertToVector256Int16((sbyte*)(row + 192)); // [16]
        Vector512<short> scz = sc.ToVector512();
        var nib = Vector512.Create((byte)0xF);
        var top = Vector512.Create((byte)0x30);
        Vector512<int> isum = default;
        for (int h = 0; h < 2; h++)
        {
            // ql's 64 bytes: low nibbles are elements 0-63 of this half, high nibbles 64-127. qh, doubled, gives
            // each its two high bits: shifted to bits 4-5 by 4 and 2 (elements 0-31, 32-63) or 0 and −2 (64-127).
            Vector512<byte> ql = Vector512.Load(row + 64 * h);
            Vector256<ulong> qh = Vector256.Load((ulong*)(row + 128 + 32 * h));
            Vector512<ulong> qh2 = Vector512.Create(qh, qh);
            Vector512<byte> lo = (ql & nib) | (Avx512F.ShiftLeftLogicalVariable(qh2, Vector512.Create(4UL, 4, 4, 4, 2, 2, 2, 2)).AsByte() & top);
            Vector512<byte> hi = ((ql.AsUInt16() >>> 4).AsByte() & nib)
                | (Avx512F.ShiftRightLogicalVariable(qh2, Vector512.Create(0UL, 0, 0, 0, 2, 2, 2, 2)).AsByte() & top);
            // q ≤ 63 and |x| ≤ 127: pairs ≤ 16002; times an int8 scale, pairs of those ≤ 4.1e6.
            isum += Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(lo, Vector512.Load(x + 128 * h)), Avx512BW.PermuteVar32x16(scz, ScaleIndex(8 * h)));
            isum += Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(hi, Vector512.Load(x + 128 * h + 64)), Avx512BW.PermuteVar32x16(scz, ScaleIndex(8 * h + 4)));
        }
        Vector256<int> offset = Avx2.MultiplyAddAdjacent(sc, sums) << 5;
        isum -= offset.ToVector512();
        return Vector512.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(isum), Vector512.Create(Scale(row + 208) * dx), acc);
    }

    private static void DotQ6_K(byte* r0, byte* r1, byte* r2, byte* r3, in Q8Vector a, int blocks, float* y)
    {
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
        for (int b = 0; b < blocks; b++)
        {
            sbyte* xs = a.Q + 256 * b;
            Vector256<short> sums = Vector256.Load(a.Sums16 + 16 * b);
            float dx = a.D[b];
            long o = 210L * b;
            a0 = Q6_KBlock(r0 + o, xs, sums, dx, a0);
            a1 = Q6_KBlock(r1 + o, xs, sums, dx, a1);
            a2 = Q6_KBlock(r2 + o, xs, sums, dx, a2);
            a3 = Q6_KBlock(r3 + o, xs, sums, dx, a3);
        }
        y[0] = Vector512.Sum(a0); y[1] = Vector512.Sum(a1); y[2] = Vector512.Sum(a2); y[3] = Vector512.Sum(a3);
    }
}
