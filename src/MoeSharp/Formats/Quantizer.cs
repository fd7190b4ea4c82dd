using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using static MoeSharp.Formats.ScalarCodec;

namespace MoeSharp.Formats;

/// <summary>
/// fp32 → stored format, following ggml's reference quantizers (<c>quantize_row_*_ref</c>), so that a row
/// quantized here holds the bytes llama.cpp's reference path would write for it.
/// </summary>
public static unsafe class Quantizer
{
    /// <summary>
    /// Writes <paramref name="x"/> as one row of <paramref name="format"/> into <paramref name="row"/>. Q8_0,
    /// Q4_K, Q6_K and MXFP4 take the lane-parallel path when 512-bit vectors are accelerated; its bytes equal
    /// <see cref="QuantizeRowReference"/>'s.
    /// </summary>
    public static void QuantizeRow(WeightFormat format, ReadOnlySpan<float> x, Span<byte> row) =>
        Quantize(format, x, row, Vector512.IsHardwareAccelerated);

    /// <summary>The scalar twin of <see cref="QuantizeRow"/>: ggml's reference quantizers, one block at a time.</summary>
    public static void QuantizeRowReference(WeightFormat format, ReadOnlySpan<float> x, Span<byte> row) => Quantize(format, x, row, false);

    /// <summary>Either path: the lanes (Q8_0, Q4_K, Q6_K, MXFP4; any machine runs them, slowly without 512-bit vectors) or the twin.</summary>
    internal static void Quantize(WeightFormat format, ReadOnlySpan<float> x, Span<byte> row, bool lanes)
    {
        long expected = format.RowBytes(x.Length);
        if (row.Length != expected)
            throw new ArgumentException(
                $"a {format} row of {x.Length} elements is {expected} bytes; the destination is {row.Length}", nameof(row));
        fixed (float* px = x)
        fixed (byte* py = row)
        {
            switch (format)
            {
                case WeightFormat.F32:
                    x.CopyTo(new Span<float>(py, x.Length));
                    break;
                case WeightFormat.F16:
                    for (int i = 0; i < x.Length; i++) Unsafe.WriteUnaligned(py + 2 * i, ToHalfBits(px[i]));
                    break;
                case WeightFormat.BF16:
                    for (int i = 0; i < x.Length; i++) Unsafe.WriteUnaligned(py + 2 * i, ToBFloat16Bits(px[i]));
                    break;
                case WeightFormat.Q8_0 when lanes:
                    for (int b = 0; b < x.Length / 32; b++) Q8_0Lanes(px + 32 * b, py + 34 * b);
                    break;
                case WeightFormat.Q8_0:
                    for (int b = 0; b < x.Length / 32; b++) Q8_0(px + 32 * b, py + 34 * b);
                    break;
                case WeightFormat.Q4_K when lanes:
                    for (int b = 0; b < x.Length / 256; b += 2) Q4_KLanes(px + 256 * b, Math.Min(2, x.Length / 256 - b), py + 144 * b);
                    break;
                case WeightFormat.Q4_K:
                    for (int b = 0; b < x.Length / 256; b++) Q4_K(px + 256 * b, py + 144 * b);
                    break;
                case WeightFormat.Q6_K when lanes:
                    for (int b = 0; b < x.Length / 256; b++) Q6_KLanes(px + 256 * b, py + 210 * b);
                    break;
                case WeightFormat.Q6_K:
                    for (int b = 0; b < x.Length / 256; b++) Q6_K(px + 256 * b, py + 210 * b);
                    break;
                case WeightFormat.MXFP4 when lanes:
                    for (int b = 0; b < x.Length / 32; b++) Mxfp4Lanes(px + 32 * b, py + 17 * b);
                    break;
                case WeightFormat.MXFP4:
                    for (int b = 0; b < x.Length / 32; b++) Mxfp4(px + 32 * b, py + 17 * b);
                    break;
                default:
                    throw new ArgumentOutOfRangeException(nameof(format), format, "unknown weight format");
            }
        }
    }

    /// <summary>d = max|x|/127 (stored as f16); q = round(x/d) half away from zero, with 1/d of the unrounded d.</summary>
    private static void Q8_0(float* x, byte* y)
    {
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = MathF.Max(amax, MathF.Abs(x[j]));
        float d = amax / 127;
        float id = d != 0 ? 1f / d : 0f;
        Unsafe.WriteUnaligned(y, ToHalfBits(d));
        for (int j = 0; j < 32; j++) y[2 + j] = (byte)(sbyte)MathF.Round(x[j] * id, MidpointRounding.AwayFromZero);
    }

    private static void Q4_K(float* x, byte* y)
    {
        byte* levels = stackalloc byte[256]; // [256] 4-bit levels
        byte* aux = stackalloc byte[32];
        float* weights = stackalloc float[32];
        float* scales = stackalloc float[8];
        float* mins = stackalloc float[8];
        for (int j = 0; j < 8; j++)
        {
            float sumX2 = 0;
            for (int l = 0; l < 32; l++) sumX2 += x[32 * j + l] * x[32 * j + l];
            float avX = MathF.Sqrt(sumX2 / 32);
            for (int l = 0; l < 32; l++) weights[l] = avX + MathF.Abs(x[32 * j + l]);
            scales[j] = ScaleAndMin(32, 15, x + 32 * j, weights, levels + 32 * j, out mins[j], aux, -1f, 0.1f, 20);
        }
        Q4_KPack(x, y, scales, mins, levels);
    }

    /// <summary>
    /// Q4_K's super-block from its 8 sub-blocks' fitted scales, mins and levels [8, 32] (<see cref="ScaleAndMin"/>):
    /// the 6-bit scale codes, then the levels refitted to the stored scales.
    /// </summary>
    private static void Q4_KPack(float* x, byte* y, float* scales, float* mins, byte* levels)
    {
        float maxScale = 0, maxMin = 0;
        for (int j = 0; j < 8; j++)
        {
            if (scales[j] > maxScale) maxScale = scales[j];
            if (mins[j] > maxMin) maxMin = mins[j];
        }

        // The 8 scales and 8 mins become 6-bit multiples of d = maxScale/63 and dmin = maxMin/63.
        float invScale = maxScale > 0 ? 63f / maxScale : 0f;
        float invMin = maxMin > 0 ? 63f / maxMin : 0f;
        byte* packed = y + 4;
        new Span<byte>(packed, 12).Clear();
        for (int j = 0; j < 8; j++)
        {
            // Truncated to a byte before the clamp, as ggml stores it in a uint8_t first.
            int ls = Math.Min((byte)63, (byte)NearestInt(invScale * scales[j]));
            int lm = Math.Min((byte)63, (byte)NearestInt(invMin * mins[j]));
            if (j < 4)
            {
                packed[j] = (byte)ls;
                packed[j + 4] = (byte)lm;
            }
            else
            {
                packed[j + 4] = (byte)((ls & 0xF) | ((lm & 0xF) << 4));
                packed[j - 4] |= (byte)((ls >> 4) << 6);
                packed[j] |= (byte)((lm >> 4) << 6);
            }
        }
        Unsafe.WriteUnaligned(y, ToHalfBits(maxScale / 63f));
        Unsafe.WriteUnaligned(y + 2, ToHalfBits(maxMin / 63f));

        // Requantize against the scales as stored, so the levels match what dequantization will compute.
        float dAll = Half(y), dminAll = Half(y + 2);
        for (int j = 0; j < 8; j++)
        {
            ScaleMinK4(j, packed, out int sc, out int m);
            float d = dAll * sc;
            if (d == 0) continue;
            float dm = dminAll * m;
            for (int l = 0; l < 32; l++)
                levels[32 * j + l] = (byte)Math.Clamp(NearestInt((x[32 * j + l] + dm) / d), 0, 15);
        }
        byte* q = y + 16;
        for (int j = 0; j < 256; j += 64, q += 32)
        {
            for (int l = 0; l < 32; l++) q[l] = (byte)(levels[j + l] | (levels[j + l + 32] << 4));
        }
    }

    private static void Q6_K(float* x, byte* y)
    {
        sbyte* levels = stackalloc sbyte[256]; // [256] 6-bit levels, offset by 32
        float* scales = stackalloc float[16];
        for (int s = 0; s < 16; s++)
            scales[s] = SymmetricScale(16, 32, x + 16 * s, levels + 16 * s);
        Q6_KPack(x, y, scales, levels);
    }

    /// <summary>Q6_K's super-block from its 16 sub-blocks' fitted scales and levels [16, 16] (<see cref="SymmetricScale"/>, offset by 32).</summary>
    private static void Q6_KPack(float* x, byte* y, float* scales, sbyte* levels)
    {
        float maxScale = 0, maxAbsScale = 0;
        for (int s = 0; s < 16; s++)
        {
            if (MathF.Abs(scales[s]) > maxAbsScale)
            {
                maxAbsScale = MathF.Abs(scales[s]);
                maxScale = scales[s];
            }
        }
        new Span<byte>(y, 210).Clear();
        if (maxAbsScale < 1e-15f) return;

        // The 16 sub-block scales become int8 multiples of d, with the largest mapped to −128.
        float iscale = -128f / maxScale;
        Unsafe.WriteUnaligned(y + 208, ToHalfBits(1 / iscale));
        sbyte* sc = (sbyte*)(y + 192);
        for (int s = 0; s < 16; s++) sc[s] = (sbyte)Math.Min(127, NearestInt(iscale * scales[s]));

        float dAll = Half(y + 208);
        for (int s = 0; s < 16; s++)
        {
            float d = dAll * sc[s];
            if (d == 0) continue;
            for (int i = 0; i < 16; i++)
                levels[16 * s + i] = (sbyte)(Math.Clamp(NearestInt(x[16 * s + i] / d), -32, 31) + 32);
        }
        byte* ql = y, qh = y + 128;
        for (int j = 0; j < 256; j += 128, ql += 64, qh += 32)
        {
            for (int l = 0; l < 32; l++)
            {
                int q1 = levels[j + l], q2 = levels[j + l + 32], q3 = levels[j + l + 64], q4 = levels[j + l + 96];
                ql[l] = (byte)((q1 & 0xF) | ((q3 & 0xF) << 4));
                ql[l + 32] = (byte)((q2 & 0xF) | ((q4 & 0xF) << 4));
                qh[l] = (byte)((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6));
            }
        }
    }

    /// <summary>e = ⌊log2 max|x|⌋ − 2 + 127; each element takes the nearest of the 16 E2M1 values times 2^(e−128).</summary>
    private static void Mxfp4(float* x, byte* y)
    {
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = MathF.Max(amax, MathF.Abs(x[j]));
        byte e = amax > 0 ? (byte)(MathF.Floor(MathF.Log2(amax)) - 2 + 127) : (byte)0;
        float d = E8M0Half(e);
        y[0] = e;
        for (int j = 0; j < 16; j++) y[1 + j] = (byte)(NearestMxfp4(x[j], d) | (NearestMxfp4(x[j + 16], d) << 4));
    }

    private static int NearestMxfp4(float x, float d)
    {
        int best = 0;
        float bestError = MathF.Abs(Mxfp4Values[0] * d - x);
        for (int i = 1; i < 16; i++)
        {
            float error = MathF.Abs(Mxfp4Values[i] * d - x);
            if (error < bestError)
            {
                best = i;
                bestError = error;
            }
        }
        return best;
    }

    /// <summary>
    /// ggml's <c>make_qx_quants</c> with x² weights: levels l ∈ [−nmax, nmax) for a scale through the
    /// signed max-magnitude element, then 18 nearby scales tried for the least weighted squared error.
    /// Stores l + nmax; returns the scale.
    /// </summary>
    private static float SymmetricScale(int n, int nmax, float* x, sbyte* levels)
    {
        float max = 0, amax = 0;
        for (int i = 0; i < n; i++)
        {
            float ax = MathF.Abs(x[i]);
            if (ax > amax)
            {
                amax = ax;
                max = x[i];
            }
        }
        if (amax < 1e-15f)
        {
            new Span<sbyte>(levels, n).Clear();
            return 0;
        }
        float iscale = -nmax / max;
        float sumLx = 0, sumL2 = 0;
        for (int i = 0; i < n; i++)
        {
            int l = Math.Clamp(NearestInt(iscale * x[i]), -nmax, nmax - 1);
            levels[i] = (sbyte)(l + nmax);
            float w = x[i] * x[i];
            sumLx += w * x[i] * l;
            sumL2 += w * l * l;
        }
        float scale = sumL2 != 0 ? sumLx / sumL2 : 0f;
        float best = scale * sumLx;
        for (int step = -9; step <= 9; step++)
        {
            if (step == 0) continue;
            iscale = -(nmax + 0.1f * step) / max;
            sumLx = sumL2 = 0;
            for (int i = 0; i < n; i++)
            {
                int l = Math.Clamp(NearestInt(iscale * x[i]), -nmax, nmax - 1);
                float w = x[i] * x[i];
                sumLx += w * x[i] * l;
                sumL2 += w * l * l;
            }
            if (sumL2 > 0 && sumLx * sumLx > best * sumL2)
            {
                for (int i = 0; i < n; i++)
                    levels[i] = (sbyte)(nmax + Math.Clamp(NearestInt(iscale * x[i]), -nmax, nmax - 1));
                scale = sumLx / sumL2;
                best = scale * sumLx;
            }
        }
        return scale;
    }

    /// <summary>
    /// ggml's <c>make_qkx2_quants</c>: levels l ∈ [0, nmax] with x ≈ scale·l − min, min ≥ 0, chosen among
    /// nstep+1 candidate scales by the least weighted squared error, each fitted by weighted least squares.
    /// </summary>
    private static float ScaleAndMin(int n, int nmax, float* x, float* weights, byte* levels, out float theMin,
        byte* aux, float rmin, float rdelta, int nstep)
    {
        float min = x[0], max = x[0];
        float sumW = weights[0], sumX = sumW * x[0];
        for (int i = 1; i < n; i++)
        {
            if (x[i] < min) min = x[i];
            if (x[i] > max) max = x[i];
            sumW += weights[i];
            sumX += weights[i] * x[i];
        }
        if (min > 0) min = 0;
        if (max == min)
        {
            new Span<byte>(levels, n).Clear();
            theMin = -min;
            return 0;
        }
        float iscale = nmax / (max - min);
        float scale = 1 / iscale;
        float bestError = 0;
        for (int i = 0; i < n; i++)
        {
            int l = Math.Clamp(NearestInt(iscale * (x[i] - min)), 0, nmax);
            levels[i] = (byte)l;
            float diff = scale * l + min - x[i];
            bestError += weights[i] * diff * diff;
        }
        for (int step = 0; step <= nstep; step++)
        {
            iscale = (rmin + rdelta * step + nmax) / (max - min);
            float sumL = 0, sumL2 = 0, sumXl = 0;
            for (int i = 0; i < n; i++)
            {
                int l = Math.Clamp(NearestInt(iscale * (x[i] - min)), 0, nmax);
                aux[i] = (byte)l;
                float w = weights[i];
                sumL += w * l;
                sumL2 += w * l * l;
                sumXl += w * l * x[i];
            }
            float det = sumW * sumL2 - sumL * sumL;
            if (det <= 0) continue;
            float thisScale = (sumW * sumXl - sumX * sumL) / det;
            float thisMin = (sumL2 * sumX - sumL * sumXl) / det;
            if (thisMin > 0)
            {
                thisMin = 0;
                thisScale = sumXl / sumL2;
            }
            float error = 0;
            for (int i = 0; i < n; i++)
            {
                float diff = thisScale * aux[i] + thisMin - x[i];
                error += weights[i] * diff * diff;
            }
            if (error < bestError)
            {
                new ReadOnlySpan<byte>(aux, n).CopyTo(new Span<byte>(levels, n));
                bestError = error;
                scale = thisScale;
                min = thisMin;
            }
        }
        theMin = -min;
        return scale;
    }

    // The lane-parallel path: ggml's searches run on 16 sub-blocks at once, sub-block k in lane k, each lane doing
    // exactly the scalar twin's operations in its order (every sum accumulated element by element, no FMA, the same
    // nearest_int bit trick, selects where the twin branches), so every lane rounds as the twin does and the bytes are
    // equal. Vectorising along a sub-block instead would reorder the sums and change which scale wins.

    /// <summary>
    /// Q4_K for <paramref name="blocks"/> (1 or 2) super-blocks at <paramref name="x"/>: their 8 or 16 sub-blocks of
    /// 32 searched in lanes (with one block, lanes 8-15 repeat lanes 0-7 and are discarded), then packed as the twin packs.
    /// </summary>
    private static void Q4_KLanes(float* x, int blocks, byte* y)
    {
        var xt = stackalloc Vector512<float>[32];      // [32 elements] × 16 lanes (sub-blocks)
        var weights = stackalloc Vector512<float>[32]; // [32] × 16
        var levels = stackalloc Vector512<int>[32];    // [32] × 16
        var aux = stackalloc Vector512<int>[32];       // [32] × 16
        int subBlocks = 8 * blocks;
        for (int k = 0; k < 16; k++)
        {
            float* src = x + 32 * (k % subBlocks);
            for (int l = 0; l < 32; l++) ((float*)(xt + l))[k] = src[l];
        }
        var sumX2 = Vector512<float>.Zero;
        for (int l = 0; l < 32; l++) sumX2 += xt[l] * xt[l];
        var avX = Vector512.Sqrt(sumX2 / Vector512.Create(32f));
        for (int l = 0; l < 32; l++) weights[l] = avX + Vector512.Abs(xt[l]);
        ScaleAndMinLanes(32, 15, xt, weights, levels, aux, out var scale, out var theMin, -1f, 0.1f, 20);

        float* scales = stackalloc float[16];
        float* mins = stackalloc float[16];
        byte* bytes = stackalloc byte[512]; // [16 sub-blocks, 32]
        scale.Store(scales);
        theMin.Store(mins);
        for (int l = 0; l < 32; l++)
        {
            int* lane = (int*)(levels + l);
            for (int k = 0; k < subBlocks; k++) bytes[32 * k + l] = (byte)lane[k];
        }
        for (int b = 0; b < blocks; b++) Q4_KPack(x + 256 * b, y + 144 * b, scales + 8 * b, mins + 8 * b, bytes + 256 * b);
    }

    /// <summary>Q6_K for one super-block: its 16 sub-blocks of 16 searched in lanes, then packed as the twin packs.</summary>
    private static void Q6_KLanes(float* x, byte* y)
    {
        var xt = stackalloc Vector512<float>[16];   // [16 elements] × 16 lanes (sub-blocks)
        var levels = stackalloc Vector512<int>[16]; // [16] × 16, offset by 32
        var aux = stackalloc Vector512<int>[16];    // [16] × 16
        for (int k = 0; k < 16; k++)
            for (int i = 0; i < 16; i++) ((float*)(xt + i))[k] = x[16 * k + i];
        var scale = SymmetricScaleLanes(16, 32, xt, levels, aux);
        float* scales = stackalloc float[16];
        sbyte* bytes = stackalloc sbyte[256]; // [16 sub-blocks, 16]
        scale.Store(scales);
        for (int i = 0; i < 16; i++)
        {
            int* lane = (int*)(levels + i);
            for (int k = 0; k < 16; k++) bytes[16 * k + i] = (sbyte)lane[k];
        }
        Q6_KPack(x, y, scales, bytes);
    }

    /// <summary><see cref="Q8_0"/> with the block's 32 elements in two vectors.</summary>
    private static void Q8_0Lanes(float* x, byte* y)
    {
        var lo = Vector512.Load(x);
        var hi = Vector512.Load(x + 16);
        float amax = MaxAbs(lo, hi);
        float d = amax / 127;
        float id = d != 0 ? 1f / d : 0f;
        Unsafe.WriteUnaligned(y, ToHalfBits(d));
        int* q = stackalloc int[32]; // [32] levels
        RoundAway(lo * Vector512.Create(id)).Store(q);
        RoundAway(hi * Vector512.Create(id)).Store(q + 16);
        for (int j = 0; j < 32; j++) y[2 + j] = (byte)(sbyte)q[j];
    }

    /// <summary>The largest |x| over both vectors; a maximum is exact in any order, so the lanes fold first.</summary>
    private static float MaxAbs(Vector512<float> lo, Vector512<float> hi)
    {
        float* lanes = stackalloc float[16];
        Vector512.Max(Vector512.Abs(lo), Vector512.Abs(hi)).Store(lanes);
        float amax = 0;
        for (int j = 0; j < 16; j++) amax = MathF.Max(amax, lanes[j]);
        return amax;
    }

    /// <summary>
    /// <c>MathF.Round(v, AwayFromZero)</c> per lane for |v| ≤ 127: nearest_int's bit trick rounds ties to even, and
    /// v − n (exact there) is ±0.5 only at a tie, which then moves one away from zero unless n already lies there.
    /// </summary>
    private static Vector512<int> RoundAway(Vector512<float> v)
    {
        var magic = Vector512.Create(12582912f);
        var n = v + magic - magic; // v rounded to the nearest integer, ties to even, exactly
        var diff = v - n;
        var half = Vector512.Create(0.5f);
        var up = Vector512.Equals(diff, half) & Vector512.GreaterThan(v, Vector512<float>.Zero);
        var down = Vector512.Equals(diff, -half) & Vector512.LessThan(v, Vector512<float>.Zero);
        return NearestInts(v) + (up.AsInt32() & Vector512<int>.One) - (down.AsInt32() & Vector512<int>.One);
    }

    /// <summary><see cref="Mxfp4"/> with the nearest-value search run over 16 elements at once, keeping the first of equal errors.</summary>
    private static void Mxfp4Lanes(float* x, byte* y)
    {
        var lo = Vector512.Load(x);
        var hi = Vector512.Load(x + 16);
        float amax = MaxAbs(lo, hi);
        byte e = amax > 0 ? (byte)(MathF.Floor(MathF.Log2(amax)) - 2 + 127) : (byte)0;
        float d = E8M0Half(e);
        y[0] = e;
        int* packed = stackalloc int[16]; // [16] packed nibbles
        Vector512<int> bestLo = Vector512<int>.Zero, bestHi = Vector512<int>.Zero;
        var value = Vector512.Create(Mxfp4Values[0] * d);
        Vector512<float> errorLo = Vector512.Abs(value - lo), errorHi = Vector512.Abs(value - hi);
        for (int i = 1; i < 16; i++)
        {
            value = Vector512.Create(Mxfp4Values[i] * d);
            var index = Vector512.Create(i);
            var eLo = Vector512.Abs(value - lo);
            var eHi = Vector512.Abs(value - hi);
            var takeLo = Vector512.LessThan(eLo, errorLo);
            var takeHi = Vector512.LessThan(eHi, errorHi);
            errorLo = Vector512.ConditionalSelect(takeLo, eLo, errorLo);
            errorHi = Vector512.ConditionalSelect(takeHi, eHi, errorHi);
            bestLo = Vector512.ConditionalSelect(takeLo.AsInt32(), index, bestLo);
            bestHi = Vector512.ConditionalSelect(takeHi.AsInt32(), index, bestHi);
        }
        (bestLo | (bestHi << 4)).Store(packed);
        for (int j = 0; j < 16; j++) y[1 + j] = (byte)packed[j];
    }

    /// <summary>ggml's <c>nearest_int</c> per lane (see <see cref="ScalarCodec.NearestInt"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<int> NearestInts(Vector512<float> x) =>
        (Vector512.AsInt32(x + Vector512.Create(12582912f)) & Vector512.Create(0x007fffff)) - Vector512.Create(0x00400000);

    /// <summary>
    /// <see cref="SymmetricScale"/> in 16 lanes: <paramref name="x"/> [n] × lanes; levels [n] × lanes (l + nmax, or 0 for
    /// an all-but-zero lane); returns the scales.
    /// </summary>
    private static Vector512<float> SymmetricScaleLanes(int n, int nmax, Vector512<float>* x, Vector512<int>* levels, Vector512<int>* aux)
    {
        Vector512<float> max = Vector512<float>.Zero, amax = Vector512<float>.Zero;
        for (int i = 0; i < n; i++)
        {
            var ax = Vector512.Abs(x[i]);
            var larger = Vector512.GreaterThan(ax, amax);
            amax = Vector512.ConditionalSelect(larger, ax, amax);
            max = Vector512.ConditionalSelect(larger, x[i], max);
        }
        var lo = Vector512.Create(-nmax);
        var hi = Vector512.Create(nmax - 1);
        var iscale = Vector512.Create((float)-nmax) / max;
        Vector512<float> sumLx = Vector512<float>.Zero, sumL2 = Vector512<float>.Zero;
        for (int i = 0; i < n; i++)
        {
            var li = Vector512.Min(Vector512.Max(NearestInts(iscale * x[i]), lo), hi);
            levels[i] = li;
            var l = Vector512.ConvertToSingle(li);
            var w = x[i] * x[i];
            sumLx += w * x[i] * l;
            sumL2 += w * l * l;
        }
        // sumL2 != 0 ? sumLx / sumL2 : 0, with a NaN sumL2 counted as nonzero as the twin's != counts it
        var scale = Vector512.ConditionalSelect(Vector512.Equals(sumL2, Vector512<float>.Zero), Vector512<float>.Zero, sumLx / sumL2);
        var best = scale * sumLx;
        for (int step = -9; step <= 9; step++)
        {
            if (step == 0) continue;
            iscale = Vector512.Create(-(nmax + 0.1f * step)) / max;
            sumLx = sumL2 = Vector512<float>.Zero;
            for (int i = 0; i < n; i++)
            {
                var li = Vector512.Min(Vector512.Max(NearestInts(iscale * x[i]), lo), hi);
                aux[i] = li;
                var l = Vector512.ConvertToSingle(li);
                var w = x[i] * x[i];
                sumLx += w * x[i] * l;
                sumL2 += w * l * l;
            }
            var take = Vector512.GreaterThan(sumL2, Vector512<float>.Zero) & Vector512.GreaterThan(sumLx * sumLx, best * sumL2);
            if (take.AsInt32() == Vector512<int>.Zero) continue;
            var takeInt = take.AsInt32();
            for (int i = 0; i < n; i++) levels[i] = Vector512.ConditionalSelect(takeInt, aux[i], levels[i]);
            scale = Vector512.ConditionalSelect(take, sumLx / sumL2, scale);
            best = Vector512.ConditionalSelect(take, scale * sumLx, best);
        }
        // amax < 1e-15: the twin clears the levels (to 0, not to the offset nmax) and returns 0
        var tiny = Vector512.LessThan(amax, Vector512.Create(1e-15f));
        var offset = Vector512.Create(nmax);
        for (int i = 0; i < n; i++) levels[i] = Vector512.ConditionalSelect(tiny.AsInt32(), Vector512<int>.Zero, levels[i] + offset);
        return Vector512.ConditionalSelect(tiny, Vector512<float>.Zero, scale);
    }

    /// <summary>
    /// <see cref="ScaleAndMin"/> in 16 lanes: <paramref name="x"/> and <paramref name="weights"/> [n] × lanes; levels
    /// [n] × lanes; <paramref name="theMin"/> and the returned scale per lane.
    /// </summary>
    private static void ScaleAndMinLanes(int n, int nmax, Vector512<float>* x, Vector512<float>* weights, Vector512<int>* levels,
        Vector512<int>* aux, out Vector512<float> scaleOut, out Vector512<float> theMin, float rmin, float rdelta, int nstep)
    {
        Vector512<float> min = x[0], max = x[0];
        Vector512<float> sumW = weights[0], sumX = sumW * x[0];
        for (int i = 1; i < n; i++)
        {
            // selects, not Min/Max: those order −0 below +0, where the twin's < and > keep the first of equals
            min = Vector512.ConditionalSelect(Vector512.LessThan(x[i], min), x[i], min);
            max = Vector512.ConditionalSelect(Vector512.GreaterThan(x[i], max), x[i], max);
            sumW += weights[i];
            sumX += weights[i] * x[i];
        }
        min = Vector512.ConditionalSelect(Vector512.GreaterThan(min, Vector512<float>.Zero), Vector512<float>.Zero, min);
        // max == min: the twin clears the levels and returns 0; such lanes compute garbage below and are masked
        var flat = Vector512.Equals(max, min);
        var zero = Vector512<int>.Zero;
        var top = Vector512.Create(nmax);
        var iscale = Vector512.Create((float)nmax) / (max - min);
        var scale = Vector512<float>.One / iscale;
        var bestError = Vector512<float>.Zero;
        for (int i = 0; i < n; i++)
        {
            var li = Vector512.Min(Vector512.Max(NearestInts(iscale * (x[i] - min)), zero), top);
            levels[i] = li;
            var diff = scale * Vector512.ConvertToSingle(li) + min - x[i];
            bestError += weights[i] * diff * diff;
        }
        for (int step = 0; step <= nstep; step++)
        {
            // min is the best fit so far, as in ggml, where a taken step moves the next steps' range
            iscale = Vector512.Create(rmin + rdelta * step + nmax) / (max - min);
            Vector512<float> sumL = Vector512<float>.Zero, sumL2 = Vector512<float>.Zero, sumXl = Vector512<float>.Zero;
            for (int i = 0; i < n; i++)
            {
                var li = Vector512.Min(Vector512.Max(NearestInts(iscale * (x[i] - min)), zero), top);
                aux[i] = li;
                var l = Vector512.ConvertToSingle(li);
                var w = weights[i];
                sumL += w * l;
                sumL2 += w * l * l;
                sumXl += w * l * x[i];
            }
            var det = sumW * sumL2 - sumL * sumL;
            var thisScale = (sumW * sumXl - sumX * sumL) / det;
            var thisMin = (sumL2 * sumX - sumL * sumXl) / det;
            var positive = Vector512.GreaterThan(thisMin, Vector512<float>.Zero);
            thisMin = Vector512.ConditionalSelect(positive, Vector512<float>.Zero, thisMin);
            thisScale = Vector512.ConditionalSelect(positive, sumXl / sumL2, thisScale);
            var error = Vector512<float>.Zero;
            for (int i = 0; i < n; i++)
            {
                var diff = thisScale * Vector512.ConvertToSingle(aux[i]) + thisMin - x[i];
                error += weights[i] * diff * diff;
            }
            // the twin skips a step with det <= 0 (a NaN det goes on, and its NaN error then loses the comparison)
            var take = ~Vector512.LessThanOrEqual(det, Vector512<float>.Zero) & ~flat & Vector512.LessThan(error, bestError);
            if (take.AsInt32() == Vector512<int>.Zero) continue;
            var takeInt = take.AsInt32();
            for (int i = 0; i < n; i++) levels[i] = Vector512.ConditionalSelect(takeInt, aux[i], levels[i]);
            bestError = Vector512.ConditionalSelect(take, error, bestError);
            scale = Vector512.ConditionalSelect(take, thisScale, scale);
            min = Vector512.ConditionalSelect(take, thisMin, min);
        }
        for (int i = 0; i < n; i++) levels[i] = Vector512.ConditionalSelect(flat.AsInt32(), zero, levels[i]);
        theMin = -min;
        scaleOut = Vector512.ConditionalSelect(flat, Vector512<float>.Zero, scale);
    }
}
