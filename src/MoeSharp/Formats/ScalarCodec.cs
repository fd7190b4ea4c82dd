using System.Runtime.CompilerServices;

namespace MoeSharp.Formats;

/// <summary>Element-level definitions shared by the scalar twins, the vector paths and the quantizers.</summary>
internal static unsafe class ScalarCodec
{
    /// <summary>E2M1 values doubled (ggml's <c>kvalues_mxfp4</c>); the E8M0 scale is halved to match.</summary>
    public static ReadOnlySpan<sbyte> Mxfp4Values => [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12];

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Half(byte* p) => (float)BitConverter.UInt16BitsToHalf(Unsafe.ReadUnaligned<ushort>(p));

    /// <summary>binary32 → binary16, round to nearest even, as F16C's <c>vcvtps2ph</c> does.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort ToHalfBits(float x) => BitConverter.HalfToUInt16Bits((Half)x);

    /// <summary>bfloat16 is the upper half of a binary32, so widening is a 16-bit shift and exact.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float BFloat16(ushort bits) => BitConverter.Int32BitsToSingle(bits << 16);

    /// <summary>binary32 → bfloat16 rounding to nearest even; a NaN stays a (quiet) NaN, as ggml does.</summary>
    public static ushort ToBFloat16Bits(float x)
    {
        uint u = BitConverter.SingleToUInt32Bits(x);
        if ((u & 0x7fffffff) > 0x7f800000) return (ushort)((u >> 16) | 64);
        return (ushort)((u + 0x7fff + ((u >> 16) & 1)) >> 16);
    }

    /// <summary>2^(e − 128): half of the E8M0 scale 2^(e − 127), because the E2M1 table is doubled. e = 0 and 1 are subnormal.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float E8M0Half(byte e) =>
        BitConverter.UInt32BitsToSingle(e < 2 ? 0x00200000u << e : (uint)(e - 1) << 23);

    /// <summary>
    /// Q4_K's j-th 6-bit scale and min (j in 0..7) from the 12 packed bytes: bytes 0-3 hold scales 0-3 and bytes 4-7
    /// mins 0-3 in their low 6 bits; scales and mins 4-7 keep their low 4 bits in bytes 8-11 and their top 2 bits in
    /// the spare top bits of bytes 0-3 (scales) and 4-7 (mins).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void ScaleMinK4(int j, byte* q, out int scale, out int min)
    {
        if (j < 4)
        {
            scale = q[j] & 63;
            min = q[j + 4] & 63;
        }
        else
        {
            scale = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
            min = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
        }
    }

    /// <summary>
    /// ggml's <c>nearest_int</c>: adding 1.5·2^23 leaves the rounded integer (ties to even) in the low mantissa bits.
    /// Valid for |x| ≤ 2^22, which every caller guarantees by its clamp range.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int NearestInt(float x)
    {
        float shifted = x + 12582912f;
        return (BitConverter.SingleToInt32Bits(shifted) & 0x007fffff) - 0x00400000;
    }
}
