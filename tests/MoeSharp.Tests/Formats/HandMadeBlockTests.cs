using System.Buffers.Binary;
using MoeSharp.Formats;

namespace MoeSharp.Tests.Formats;

/// <summary>
/// Each format's dequantization of blocks built by hand from the format's definition (ggml's block structs), with
/// the expected values worked out here, independently of the kernels' unpacking code. Exact: tolerance 0.
/// </summary>
[Trait("Category", "Kernel")]
public class HandMadeBlockTests
{
    [Fact]
    public void Q8_0IsScaleTimesInt8()
    {
        // Two blocks, so the vector path's block stride is exercised: d = 0.5 (f16 0x3800), then d = −2 (0xC000).
        var row = new byte[68];
        BinaryPrimitives.WriteUInt16LittleEndian(row, 0x3800);
        BinaryPrimitives.WriteUInt16LittleEndian(row.AsSpan(34), 0xC000);
        var expected = new float[64];
        for (int j = 0; j < 32; j++)
        {
            sbyte q = (sbyte)(j * 9 - 128); // −128, −119, …, 151 wraps: covers both signs and the extremes
            row[2 + j] = (byte)q;
            row[36 + j] = (byte)(sbyte)(127 - j);
            expected[j] = q * 0.5f;
            expected[32 + j] = (127 - j) * -2f;
        }
        AssertDequantizes(WeightFormat.Q8_0, row, expected);
    }

    [Fact]
    public void Q4_KUsesSixBitScalesAndMinsPerSubBlock()
    {
        int[] scales = [1, 2, 3, 4, 33, 40, 63, 17];
        int[] mins = [0, 1, 2, 3, 48, 5, 63, 20];
        var row = new byte[144];
        BinaryPrimitives.WriteUInt16LittleEndian(row, 0x3400);          // d = 0.25
        BinaryPrimitives.WriteUInt16LittleEndian(row.AsSpan(2), 0x3800); // dmin = 0.5
        // Packed by hand. Bytes 0-3: scale j in the low 6 bits, the top 2 bits of scale j+4 above it
        // (33 = 0b10_0001 → 2, 40 = 0b10_1000 → 2, 63 → 3, 17 = 0b01_0001 → 1).
        // Bytes 4-7: min j, with the top 2 bits of min j+4 (48 = 0b11_0000 → 3, 5 → 0, 63 → 3, 20 = 0b01_0100 → 1).
        // Bytes 8-11: low 4 bits of scale j+4, then of min j+4 in the high nibble.
        byte[] packed = [1 | 2 << 6, 2 | 2 << 6, 3 | 3 << 6, 4 | 1 << 6,
                         0 | 3 << 6, 1 | 0 << 6, 2 | 3 << 6, 3 | 1 << 6,
                         1 | 0 << 4, 8 | 5 << 4, 15 | 15 << 4, 1 | 4 << 4];
        packed.CopyTo(row, 4);
        for (int i = 0; i < 128; i++) row[16 + i] = (byte)(i % 16 | (15 - i % 16) << 4);

        // Element e: group g = e/64 reads bytes 32g..32g+31; the first 32 take the low nibbles (sub-block 2g),
        // the next 32 the high nibbles (sub-block 2g+1). Byte 32g+w has low nibble w%16 and high nibble 15 − w%16.
        var expected = new float[256];
        for (int e = 0; e < 256; e++)
        {
            int g = e / 64, w = e % 64;
            int sub = w < 32 ? 2 * g : 2 * g + 1;
            int nibble = w < 32 ? w % 16 : 15 - (w - 32) % 16;
            expected[e] = 0.25f * scales[sub] * nibble - 0.5f * mins[sub];
        }
        AssertDequantizes(WeightFormat.Q4_K, row, expected);
    }

    [Fact]
    public void Q6_KCombinesNibblesAndTwoBitPairs()
    {
        var row = new byte[210];
        for (int h = 0; h < 2; h++)
        {
            for (int i = 0; i < 64; i++) row[64 * h + i] = (byte)(i % 16 | (i / 4 % 16) << 4);
            // Even l: 2-bit pairs 0,1,2,3 from the lowest up (0b11_10_01_00); odd l: 3,2,1,0.
            for (int l = 0; l < 32; l++) row[128 + 32 * h + l] = (byte)(l % 2 == 0 ? 0xE4 : 0x1B);
        }
        for (int s = 0; s < 16; s++) row[192 + s] = (byte)(sbyte)(s - 8);
        BinaryPrimitives.WriteUInt16LittleEndian(row.AsSpan(208), 0x3800); // d = 0.5

        // Element e: half h = e/128; within it quarter k = w/32 and l = w%32. Low 4 bits: quarter 0 the low
        // nibble of ql[l], 1 the low nibble of ql[l+32], 2 the high nibble of ql[l], 3 the high nibble of ql[l+32];
        // high 2 bits: pair k of qh[l]. Value (q − 32)·d·scale[8h + l/16 + 2k].
        var expected = new float[256];
        for (int e = 0; e < 256; e++)
        {
            int h = e / 128, w = e % 128, k = w / 32, l = w % 32;
            int lowBits = k switch { 0 or 1 => l % 16, 2 => l / 4 % 16, _ => (l + 32) / 4 % 16 };
            int highBits = l % 2 == 0 ? k : 3 - k;
            int scale = 8 * h + l / 16 + 2 * k - 8;
            expected[e] = 0.5f * scale * ((lowBits | highBits << 4) - 32);
        }
        AssertDequantizes(WeightFormat.Q6_K, row, expected);
    }

    [Fact]
    public void Mxfp4IsE2M1TimesPowerOfTwo()
    {
        // E2M1 magnitudes 0, 0.5, 1, 1.5, 2, 3, 4, 6; bit 3 is the sign. The E8M0 byte e scales by 2^(e − 127).
        // ggml decodes through an int8 table, so the code for −0 (nibble 8) gives +0.
        float[] e2m1 = [0, 0.5f, 1, 1.5f, 2, 3, 4, 6, 0, -0.5f, -1, -1.5f, -2, -3, -4, -6];
        byte[] exponents = [127, 130, 1, 0];
        float[] scale = [1, 8, MathF.ScaleB(1, -126), MathF.ScaleB(1, -127)];
        var row = new byte[17 * exponents.Length];
        var expected = new float[32 * exponents.Length];
        for (int b = 0; b < exponents.Length; b++)
        {
            row[17 * b] = exponents[b];
            for (int j = 0; j < 16; j++)
            {
                row[17 * b + 1 + j] = (byte)(j | (15 - j) << 4); // element j: low nibble, element j+16: high
                expected[32 * b + j] = e2m1[j] * scale[b];
                expected[32 * b + 16 + j] = e2m1[15 - j] * scale[b];
            }
        }
        AssertDequantizes(WeightFormat.MXFP4, row, expected);
    }

    [Fact]
    public void HalfAndBFloat16WidenExactly()
    {
        // 1, −2, the smallest subnormal, the largest finite, +Inf, −0, 0.333 (0x3555 = 1365/4096), a mid subnormal.
        ushort[] halfBits = [0x3C00, 0xC000, 0x0001, 0x7BFF, 0x7C00, 0x8000, 0x3555, 0x0200];
        float[] halfValues = [1, -2, MathF.ScaleB(1, -24), 65504, float.PositiveInfinity, -0f, 1365f / 4096, MathF.ScaleB(1, -15)];
        ushort[] bfBits = [0x3F80, 0xC000, 0x0001, 0x7F7F, 0x7F80, 0x8000, 0x3EAB, 0x4049];
        float[] bfValues = [1, -2, MathF.ScaleB(1, -133), BitConverter.Int32BitsToSingle(0x7F7F0000), float.PositiveInfinity,
            -0f, BitConverter.Int32BitsToSingle(0x3EAB0000), BitConverter.Int32BitsToSingle(0x40490000)];
        // 37 elements: two full vectors of 16 and a scalar tail.
        foreach (var (format, bits, values) in new[] { (WeightFormat.F16, halfBits, halfValues), (WeightFormat.BF16, bfBits, bfValues) })
        {
            var row = new byte[2 * 37];
            var expected = new float[37];
            for (int i = 0; i < 37; i++)
            {
                BinaryPrimitives.WriteUInt16LittleEndian(row.AsSpan(2 * i), bits[i % 8]);
                expected[i] = values[i % 8];
            }
            AssertDequantizes(format, row, expected);
        }
    }

    private static void AssertDequantizes(WeightFormat format, byte[] row, float[] expected)
    {
        var fast = new float[expected.Length];
        var twin = new float[expected.Length];
        RowKernels.DequantizeRow(format, row, fast);
        RowKernels.DequantizeRowReference(format, row, twin);
        Numerics.BitwiseEqual(expected, twin, $"{format} twin");
        Numerics.BitwiseEqual(expected, fast, $"{format} vector path");
    }
}
