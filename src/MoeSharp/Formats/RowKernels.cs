using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using static MoeSharp.Formats.ScalarCodec;

namespace MoeSharp.Formats;

/// <summary>
/// Per-row kernels over weights stored in a <see cref="WeightFormat"/>: dequantize a row to fp32, and the dot
/// product of a row with an fp32 vector. Each has a scalar twin (<c>…Reference</c>) written from the format's
/// definition, which is the test reference and the path on machines without AVX-512.
/// </summary>
/// <remarks>
/// The dot products dequantize in registers and multiply in fp32; the activation is not quantized to Q8 blocks
/// (ggml's <c>vec_dot_type</c>), so the result is the exact dot product of the dequantized row up to fp32 rounding.
/// The vector dequantization rounds exactly as the twin (a product, then a difference; no fused multiply-add), so
/// the two agree bitwise.
/// </remarks>
internal static unsafe class RowKernels
{
    /// <summary>Whether the AVX-512 paths run; otherwise the scalar twins do.</summary>
    public static bool Vectorized => Avx512F.IsSupported;

    /// <summary>y = the row's <c>y.Length</c> elements as fp32.</summary>
    public static void DequantizeRow(WeightFormat format, ReadOnlySpan<byte> row, Span<float> y)
    {
        Check(format, row.Length, y.Length);
        fixed (byte* r = row)
        fixed (float* py = y)
            DequantizeRow(format, r, py, y.Length);
    }

    /// <summary>The scalar twin of <see cref="DequantizeRow(WeightFormat, ReadOnlySpan{byte}, Span{float})"/>.</summary>
    public static void DequantizeRowReference(WeightFormat format, ReadOnlySpan<byte> row, Span<float> y)
    {
        Check(format, row.Length, y.Length);
        fixed (byte* r = row)
        fixed (float* py = y)
            DequantizeReference(format, r, py, y.Length);
    }

    /// <summary>Σ row[i]·x[i] over the row's <c>x.Length</c> elements.</summary>
    public static float Dot(WeightFormat format, ReadOnlySpan<byte> row, ReadOnlySpan<float> x)
    {
        Check(format, row.Length, x.Length);
        fixed (byte* r = row)
        fixed (float* px = x)
            return Dot(format, r, px, x.Length);
    }

    /// <summary>
    /// The scalar twin of <see cref="Dot(WeightFormat, ReadOnlySpan{byte}, ReadOnlySpan{float})"/>: each element
    /// dequantized by the definition, products summed in double.
    /// </summary>
    public static double DotReference(WeightFormat format, ReadOnlySpan<byte> row, ReadOnlySpan<float> x)
    {
        Check(format, row.Length, x.Length);
        var w = new float[x.Length]; // [n]
        DequantizeRowReference(format, row, w);
        double sum = 0;
        for (int i = 0; i < w.Length; i++) sum += (double)w[i] * x[i];
        return sum;
    }

    internal static void DequantizeRow(WeightFormat format, byte* row, float* y, int n)
    {
        if (!Avx512F.IsSupported)
        {
            DequantizeReference(format, row, y, n);
            return;
        }
        switch (format)
        {
            case WeightFormat.F32: new ReadOnlySpan<float>(row, n).CopyTo(new Span<float>(y, n)); break;
            case WeightFormat.F16: DequantizeF16(row, y, n); break;
            case WeightFormat.BF16: DequantizeBF16(row, y, n); break;
            case WeightFormat.Q8_0: DequantizeQ8_0(row, y, n / 32); break;
            case WeightFormat.Q4_K: DequantizeQ4_K(row, y, n / 256); break;
            case WeightFormat.Q6_K: DequantizeQ6_K(row, y, n / 256); break;
            case WeightFormat.MXFP4: DequantizeMxfp4(row, y, n / 32); break;
            default: throw new ArgumentOutOfRangeException(nameof(format), format, "unknown weight format");
        }
    }

    internal static float Dot(WeightFormat format, byte* row, float* x, int n)
    {
        if (format == WeightFormat.F32)
            return TensorPrimitives.Dot(new ReadOnlySpan<float>(row, n), new ReadOnlySpan<float>(x, n));
        if (!Avx512F.IsSupported) return (float)DotScalar(format, row, x, n);
        return format switch
        {
            WeightFormat.F16 => DotF16(row, x, n),
            WeightFormat.BF16 => DotBF16(row, x, n),
            WeightFormat.Q8_0 => DotQ8_0(row, x, n / 32),
            WeightFormat.Q4_K => DotQ4_K(row, x, n / 256),
            WeightFormat.Q6_K => DotQ6_K(row, x, n / 256),
            WeightFormat.MXFP4 => DotMxfp4(row, x, n / 32),
            _ => throw new ArgumentOutOfRangeException(nameof(format), format, "unknown weight format"),
        };
    }

    // The fallback without AVX-512 dequantizes one block at a time onto the stack, so it allocates nothing.
    private static double DotScalar(WeightFormat format, byte* row, float* x, int n)
    {
        int block = format.BlockSize() == 1 ? 256 : format.BlockSize();
        int blockBytes = format.BlockSize() == 1 ? 256 * format.BlockBytes() : format.BlockBytes();
        float* w = stackalloc float[256]; // [block]
        double sum = 0;
        for (int start = 0; start < n; start += block)
        {
            int len = Math.Min(block, n - start);
            DequantizeReference(format, row + (long)start / block * blockBytes, w, len);
            for (int i = 0; i < len; i++) sum += (double)w[i] * x[start + i];
        }
        return sum;
    }

    internal static void DequantizeReference(WeightFormat format, byte* row, float* y, int n)
    {
        switch (format)
        {
            case WeightFormat.F32:
                for (int i = 0; i < n; i++) y[i] = Unsafe.ReadUnaligned<float>(row + 4 * i);
                break;
            case WeightFormat.F16:
                for (int i = 0; i < n; i++) y[i] = Half(row + 2 * i);
                break;
            case WeightFormat.BF16:
                for (int i = 0; i < n; i++) y[i] = BFloat16(Unsafe.ReadUnaligned<ushort>(row + 2 * i));
                break;
            case WeightFormat.Q8_0:
                for (int b = 0; b < n / 32; b++, row += 34, y += 32)
                {
                    float d = Half(row);
                    for (int j = 0; j < 32; j++) y[j] = (sbyte)row[2 + j] * d;
                }
                break;
            case WeightFormat.Q4_K:
                for (int b = 0; b < n / 256; b++, row += 144)
                {
                    float d = Half(row), dmin = Half(row + 2);
                    byte* scales = row + 4, q = row + 16;
                    // Four groups of 64: the low nibbles of 32 bytes are elements 0-31, their high nibbles 32-63.
                    for (int g = 0; g < 4; g++, q += 32)
                    {
                        ScaleMinK4(2 * g, scales, out int s1, out int m1);
                        ScaleMinK4(2 * g + 1, scales, out int s2, out int m2);
                        float d1 = d * s1, min1 = dmin * m1, d2 = d * s2, min2 = dmin * m2;
                        for (int l = 0; l < 32; l++) *y++ = d1 * (q[l] & 0xF) - min1;
                        for (int l = 0; l < 32; l++) *y++ = d2 * (q[l] >> 4) - min2;
                    }
                }
                break;
            case WeightFormat.Q6_K:
                for (int b = 0; b < n / 256; b++, row += 210)
                {
                    byte* ql = row, qh = row + 128;
                    sbyte* sc = (sbyte*)(row + 192);
                    float d = Half(row + 208);
                    // Two halves of 128; in each, element l of the four quarters takes a nibble of ql[l] or
                    // ql[l+32] and a 2-bit pair of qh[l], and every 16 elements share one int8 scale.
                    for (int h = 0; h < 2; h++, ql += 64, qh += 32, sc += 8, y += 128)
                    {
                        for (int l = 0; l < 32; l++)
                        {
                            int s = l / 16;
                            int q1 = ((ql[l] & 0xF) | ((qh[l] & 3) << 4)) - 32;
                            int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                            int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                            int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                            y[l] = d * sc[s] * q1;
                            y[l + 32] = d * sc[s + 2] * q2;
                            y[l + 64] = d * sc[s + 4] * q3;
                            y[l + 96] = d * sc[s + 6] * q4;
                        }
                    }
                }
                break;
            case WeightFormat.MXFP4:
                for (int b = 0; b < n / 32; b++, row += 17, y += 32)
                {
                    float d = E8M0Half(row[0]);
                    for (int j = 0; j < 16; j++)
                    {
                        y[j] = Mxfp4Values[row[1 + j] & 0xF] * d;
                        y[j + 16] = Mxfp4Values[row[1 + j] >> 4] * d;
                    }
                }
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(format), format, "unknown weight format");
        }
    }

    private static void Check(WeightFormat format, int rowBytes, int n)
    {
        long expected = format.RowBytes(n);
        if (rowBytes != expected)
            throw new ArgumentException(
                $"a {format} row of {n} elements is {expected} bytes; the row given is {rowBytes}", nameof(rowBytes));
    }

    // ---- AVX-512 paths. Blocks are decoded 16 lanes at a time: one 16-byte load widened to 16 int32. ----

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<int> Bytes16(byte* p) => Avx512F.ConvertToVector512Int32(Vector128.Load(p));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> SBytes16(byte* p) =>
        Avx512F.ConvertToVector512Single(Avx512F.ConvertToVector512Int32(Vector128.Load((sbyte*)p)));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> ToFloat(Vector512<int> v) => Avx512F.ConvertToVector512Single(v);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Load(float* p) => Vector512.Load(p);

    /// <summary>16 binary16 values to binary32, exactly.</summary>
    /// <remarks>
    /// Moving exponent and mantissa up by 13 bits and multiplying by 2^112 rebiases the exponent (15 → 127): exact
    /// for normals, and for subnormals too, whose product is a normal binary32. Exponent 31 (Inf/NaN) gets the
    /// all-ones binary32 exponent instead; the sign is put back last.
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Halves16(byte* p)
    {
        Vector512<uint> h = Avx512F.ConvertToVector512UInt32(Vector256.Load((ushort*)p));
        Vector512<uint> magnitude = (h & Vector512.Create(0x7fffu)) << 13;
        Vector512<float> scaled = magnitude.AsSingle() * Vector512.Create(BitConverter.UInt32BitsToSingle(0x77800000)); // ·2^112
        Vector512<uint> infNan = magnitude | Vector512.Create(0x7f800000u);
        Vector512<uint> special = Vector512.GreaterThanOrEqual(magnitude, Vector512.Create(0x0f800000u));
        Vector512<uint> bits = Vector512.ConditionalSelect(special, infNan, scaled.AsUInt32());
        return (bits | ((h & Vector512.Create(0x8000u)) << 16)).AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> BFloat16x16(byte* p) =>
        (Avx512F.ConvertToVector512UInt32(Vector256.Load((ushort*)p)) << 16).AsSingle();

    private static void DequantizeF16(byte* row, float* y, int n)
    {
        int i = 0;
        for (; i <= n - 16; i += 16) Halves16(row + 2 * i).Store(y + i);
        for (; i < n; i++) y[i] = Half(row + 2 * i);
    }

    private static void DequantizeBF16(byte* row, float* y, int n)
    {
        int i = 0;
        for (; i <= n - 16; i += 16) BFloat16x16(row + 2 * i).Store(y + i);
        for (; i < n; i++) y[i] = BFloat16(Unsafe.ReadUnaligned<ushort>(row + 2 * i));
    }

    private static void DequantizeQ8_0(byte* row, float* y, int blocks)
    {
        for (int b = 0; b < blocks; b++, row += 34, y += 32)
        {
            var d = Vector512.Create(Half(row));
            (SBytes16(row + 2) * d).Store(y);
            (SBytes16(row + 18) * d).Store(y + 16);
        }
    }

    private static void DequantizeQ4_K(byte* row, float* y, int blocks)
    {
        var low = Vector512.Create(0xF);
        for (int b = 0; b < blocks; b++, row += 144)
        {
            float d = Half(row), dmin = Half(row + 2);
            byte* q = row + 16;
            for (int g = 0; g < 4; g++, q += 32, y += 64)
            {
                ScaleMinK4(2 * g, row + 4, out int s1, out int m1);
                ScaleMinK4(2 * g + 1, row + 4, out int s2, out int m2);
                Vector512<float> d1 = Vector512.Create(d * s1), min1 = Vector512.Create(dmin * m1);
                Vector512<float> d2 = Vector512.Create(d * s2), min2 = Vector512.Create(dmin * m2);
                Vector512<int> q0 = Bytes16(q), q1 = Bytes16(q + 16);
                (d1 * ToFloat(q0 & low) - min1).Store(y);
                (d1 * ToFloat(q1 & low) - min1).Store(y + 16);
                (d2 * ToFloat(q0 >>> 4) - min2).Store(y + 32);
                (d2 * ToFloat(q1 >>> 4) - min2).Store(y + 48);
            }
        }
    }

    private static void DequantizeQ6_K(byte* row, float* y, int blocks)
    {
        for (int b = 0; b < blocks; b++, row += 210)
        {
            float d = Half(row + 208);
            for (int h = 0; h < 2; h++, y += 128)
            {
                byte* ql = row + 64 * h, qh = row + 128 + 32 * h;
                sbyte* sc = (sbyte*)(row + 192 + 8 * h);
                for (int s = 0; s < 2; s++)
                {
                    int l = 16 * s;
                    Q6Quads(ql + l, qh + l, out var q1, out var q2, out var q3, out var q4);
                    // d·sc first, then ·q: the twin's left-to-right order, so the rounding is the same.
                    (Vector512.Create(d * sc[s]) * q1).Store(y + l);
                    (Vector512.Create(d * sc[s + 2]) * q2).Store(y + l + 32);
                    (Vector512.Create(d * sc[s + 4]) * q3).Store(y + l + 64);
                    (Vector512.Create(d * sc[s + 6]) * q4).Store(y + l + 96);
                }
            }
        }
    }

    /// <summary>The four 6-bit quarters of 16 consecutive l, as signed values q − 32.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Q6Quads(byte* ql, byte* qh, out Vector512<float> q1, out Vector512<float> q2,
        out Vector512<float> q3, out Vector512<float> q4)
    {
        var low = Vector512.Create(0xF);
        var two = Vector512.Create(3);
        var bias = Vector512.Create(32);
        Vector512<int> a = Bytes16(ql), c = Bytes16(ql + 32), hi = Bytes16(qh);
        q1 = ToFloat(((a & low) | ((hi & two) << 4)) - bias);
        q2 = ToFloat(((c & low) | (((hi >>> 2) & two) << 4)) - bias);
        q3 = ToFloat(((a >>> 4) | (((hi >>> 4) & two) << 4)) - bias);
        q4 = ToFloat(((c >>> 4) | (((hi >>> 6) & two) << 4)) - bias);
    }

    private static Vector512<float> Mxfp4Table => Vector512.Create(0f, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12);

    private static void DequantizeMxfp4(byte* row, float* y, int blocks)
    {
        var table = Mxfp4Table;
        var low = Vector512.Create(0xF);
        for (int b = 0; b < blocks; b++, row += 17, y += 32)
        {
            var d = Vector512.Create(E8M0Half(row[0]));
            Vector512<int> q = Bytes16(row + 1);
            (Avx512F.PermuteVar16x32(table, q & low) * d).Store(y);
            (Avx512F.PermuteVar16x32(table, q >>> 4) * d).Store(y + 16);
        }
    }

    // Dot products keep several independent accumulators so that the FMA latency does not bound the loop.

    private static float DotF16(byte* row, float* x, int n)
    {
        Vector512<float> a0 = default, a1 = default;
        int i = 0;
        for (; i <= n - 32; i += 32)
        {
            a0 = Vector512.FusedMultiplyAdd(Halves16(row + 2 * i), Load(x + i), a0);
            a1 = Vector512.FusedMultiplyAdd(Halves16(row + 2 * i + 32), Load(x + i + 16), a1);
        }
        for (; i <= n - 16; i += 16) a0 = Vector512.FusedMultiplyAdd(Halves16(row + 2 * i), Load(x + i), a0);
        float sum = Vector512.Sum(a0 + a1);
        for (; i < n; i++) sum += Half(row + 2 * i) * x[i];
        return sum;
    }

    private static float DotBF16(byte* row, float* x, int n)
    {
        Vector512<float> a0 = default, a1 = default;
        int i = 0;
        for (; i <= n - 32; i += 32)
        {
            a0 = Vector512.FusedMultiplyAdd(BFloat16x16(row + 2 * i), Load(x + i), a0);
            a1 = Vector512.FusedMultiplyAdd(BFloat16x16(row + 2 * i + 32), Load(x + i + 16), a1);
        }
        for (; i <= n - 16; i += 16) a0 = Vector512.FusedMultiplyAdd(BFloat16x16(row + 2 * i), Load(x + i), a0);
        float sum = Vector512.Sum(a0 + a1);
        for (; i < n; i++) sum += BFloat16(Unsafe.ReadUnaligned<ushort>(row + 2 * i)) * x[i];
        return sum;
    }

    private static float DotQ8_0(byte* row, float* x, int blocks)
    {
        Vector512<float> a0 = default, a1 = default;
        int b = 0;
        for (; b <= blocks - 2; b += 2, row += 68, x += 64)
        {
            var p0 = Vector512.FusedMultiplyAdd(SBytes16(row + 18), Load(x + 16), SBytes16(row + 2) * Load(x));
            var p1 = Vector512.FusedMultiplyAdd(SBytes16(row + 52), Load(x + 48), SBytes16(row + 36) * Load(x + 32));
            a0 = Vector512.FusedMultiplyAdd(p0, Vector512.Create(Half(row)), a0);
            a1 = Vector512.FusedMultiplyAdd(p1, Vector512.Create(Half(row + 34)), a1);
        }
        if (b < blocks)
        {
            var p = Vector512.FusedMultiplyAdd(SBytes16(row + 18), Load(x + 16), SBytes16(row + 2) * Load(x));
            a0 = Vector512.FusedMultiplyAdd(p, Vector512.Create(Half(row)), a0);
        }
        return Vector512.Sum(a0 + a1);
    }

    private static float DotQ4_K(byte* row, float* x, int blocks)
    {
        // Σ (d·s·q − dmin·m)·x = d·s·Σq·x − dmin·m·Σx per sub-block of 32: scales and mins enter once per sub-block.
        var low = Vector512.Create(0xF);
        Vector512<float> lo = default, hi = default, minLo = default, minHi = default;
        for (int b = 0; b < blocks; b++, row += 144)
        {
            float d = Half(row), dmin = -Half(row + 2);
            byte* q = row + 16;
            for (int g = 0; g < 4; g++, q += 32, x += 64)
            {
                ScaleMinK4(2 * g, row + 4, out int s1, out int m1);
                ScaleMinK4(2 * g + 1, row + 4, out int s2, out int m2);
                Vector512<int> q0 = Bytes16(q), q1 = Bytes16(q + 16);
                Vector512<float> x0 = Load(x), x1 = Load(x + 16), x2 = Load(x + 32), x3 = Load(x + 48);
                var dotLo = Vector512.FusedMultiplyAdd(ToFloat(q1 & low), x1, ToFloat(q0 & low) * x0);
                var dotHi = Vector512.FusedMultiplyAdd(ToFloat(q1 >>> 4), x3, ToFloat(q0 >>> 4) * x2);
                lo = Vector512.FusedMultiplyAdd(dotLo, Vector512.Create(d * s1), lo);
                hi = Vector512.FusedMultiplyAdd(dotHi, Vector512.Create(d * s2), hi);
                minLo = Vector512.FusedMultiplyAdd(x0 + x1, Vector512.Create(dmin * m1), minLo);
                minHi = Vector512.FusedMultiplyAdd(x2 + x3, Vector512.Create(dmin * m2), minHi);
            }
        }
        return Vector512.Sum((lo + hi) + (minLo + minHi));
    }

    private static float DotQ6_K(byte* row, float* x, int blocks)
    {
        Vector512<float> a1 = default, a2 = default, a3 = default, a4 = default;
        for (int b = 0; b < blocks; b++, row += 210)
        {
            float d = Half(row + 208);
            for (int h = 0; h < 2; h++, x += 128)
            {
                byte* ql = row + 64 * h, qh = row + 128 + 32 * h;
                sbyte* sc = (sbyte*)(row + 192 + 8 * h);
                for (int s = 0; s < 2; s++)
                {
                    int l = 16 * s;
                    Q6Quads(ql + l, qh + l, out var q1, out var q2, out var q3, out var q4);
                    a1 = Vector512.FusedMultiplyAdd(q1 * Vector512.Create(d * sc[s]), Load(x + l), a1);
                    a2 = Vector512.FusedMultiplyAdd(q2 * Vector512.Create(d * sc[s + 2]), Load(x + l + 32), a2);
                    a3 = Vector512.FusedMultiplyAdd(q3 * Vector512.Create(d * sc[s + 4]), Load(x + l + 64), a3);
                    a4 = Vector512.FusedMultiplyAdd(q4 * Vector512.Create(d * sc[s + 6]), Load(x + l + 96), a4);
                }
            }
        }
        return Vector512.Sum((a1 + a2) + (a3 + a4));
    }

    private static float DotMxfp4(byte* row, float* x, int blocks)
    {
        var table = Mxfp4Table;
        var low = Vector512.Create(0xF);
        Vector512<float> a0 = default, a1 = default;
        int b = 0;
        for (; b <= blocks - 2; b += 2, row += 34, x += 64)
        {
            Vector512<int> q = Bytes16(row + 1), r = Bytes16(row + 18);
            var p0 = Vector512.FusedMultiplyAdd(Avx512F.PermuteVar16x32(table, q >>> 4), Load(x + 16),
                Avx512F.PermuteVar16x32(table, q & low) * Load(x));
            var p1 = Vector512.FusedMultiplyAdd(Avx512F.PermuteVar16x32(table, r >>> 4), Load(x + 48),
                Avx512F.PermuteVar16x32(table, r & low) * Load(x + 32));
            a0 = Vector512.FusedMultiplyAdd(p0, Vector512.Create(E8M0Half(row[0])), a0);
            a1 = Vector512.FusedMultiplyAdd(p1, Vector512.Create(E8M0Half(row[17])), a1);
        }
        if (b < blocks)
        {
            Vector512<int> q = Bytes16(row + 1);
            var p = Vector512.FusedMultiplyAdd(Avx512F.PermuteVar16x32(table, q >>> 4), Load(x + 16),
                Avx512F.PermuteVar16x32(table, q & low) * Load(x));
            a0 = Vector512.FusedMultiplyAdd(p, Vector512.Create(E8M0Half(row[0])), a0);
        }
        return Vector512.Sum(a0 + a1);
    }
}
