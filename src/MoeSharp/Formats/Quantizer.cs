using System.Runtime.CompilerServices;
using static MoeSharp.Formats.ScalarCodec;

namespace MoeSharp.Formats;

/// <summary>
/// fp32 → stored format, following ggml's reference quantizers (<c>quantize_row_*_ref</c>), so that a row
/// quantized here holds the bytes llama.cpp's reference path would write for it.
/// </summary>
public static unsafe class Quantizer
{
    /// <summary>Writes <paramref name="x"/> as one row of <paramref name="format"/> into <paramref name="row"/>.</summary>
    public static void QuantizeRow(WeightFormat format, ReadOnlySpan<float> x, Span<byte> row)
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
                case WeightFormat.Q8_0:
                    for (int b = 0; b < x.Length / 32; b++) Q8_0(px + 32 * b, py + 34 * b);
                    break;
                case WeightFormat.Q4_K:
                    for (int b = 0; b < x.Length / 256; b++) Q4_K(px + 256 * b, py + 144 * b);
                    break;
                case WeightFormat.Q6_K:
                    for (int b = 0; b < x.Length / 256; b++) Q6_K(px + 256 * b, py + 210 * b);
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
        float maxScale = 0, maxMin = 0;
        for (int j = 0; j < 8; j++)
        {
            float sumX2 = 0;
            for (int l = 0; l < 32; l++) sumX2 += x[32 * j + l] * x[32 * j + l];
            float avX = MathF.Sqrt(sumX2 / 32);
            for (int l = 0; l < 32; l++) weights[l] = avX + MathF.Abs(x[32 * j + l]);
            scales[j] = ScaleAndMin(32, 15, x + 32 * j, weights, levels + 32 * j, out mins[j], aux, -1f, 0.1f, 20);
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
        float maxScale = 0, maxAbsScale = 0;
        for (int s = 0; s < 16; s++)
        {
            scales[s] = SymmetricScale(16, 32, x + 16 * s, levels + 16 * s);
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
}
