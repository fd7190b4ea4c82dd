using System.Runtime.InteropServices;

namespace MoeSharp.Formats;

/// <summary>
/// Storage formats of a weight matrix row. The numeric values are ggml's <c>ggml_type</c> ids, so a GGUF tensor's
/// type maps onto a format by value and its bytes are used as they are.
/// </summary>
public enum WeightFormat
{
    /// <summary>IEEE float32, 4 bytes per element, no blocks.</summary>
    F32 = 0,

    /// <summary>IEEE float16, 2 bytes per element, no blocks.</summary>
    F16 = 1,

    /// <summary>Blocks of 32: an f16 scale d, then 32 int8 q; x = d·q (34 bytes).</summary>
    Q8_0 = 8,

    /// <summary>Super-blocks of 256: f16 d and dmin, 12 bytes of 6-bit scales and mins, 128 bytes of nibbles (144 bytes).</summary>
    Q4_K = 12,

    /// <summary>Super-blocks of 256: 128 bytes of low nibbles, 64 of high 2-bit pairs, 16 int8 scales, f16 d (210 bytes).</summary>
    Q6_K = 14,

    /// <summary>bfloat16 (the top 16 bits of a float32), 2 bytes per element, no blocks.</summary>
    BF16 = 30,

    /// <summary>Blocks of 32: an E8M0 exponent byte, then 16 bytes of E2M1 nibbles (17 bytes), GPT-OSS's expert format.</summary>
    MXFP4 = 39,
}

/// <summary>Block geometry of each <see cref="WeightFormat"/>, following ggml's <c>block_*</c> structs.</summary>
public static class WeightFormats
{
    /// <summary>Every format, for tests and benchmarks.</summary>
    public static ReadOnlySpan<WeightFormat> All =>
    [
        WeightFormat.F32, WeightFormat.F16, WeightFormat.BF16, WeightFormat.Q8_0, WeightFormat.Q4_K,
        WeightFormat.Q6_K, WeightFormat.MXFP4,
    ];

    /// <summary>Elements per block (1 for the plain float formats).</summary>
    public static int BlockSize(this WeightFormat format) => format switch
    {
        WeightFormat.F32 or WeightFormat.F16 or WeightFormat.BF16 => 1,
        WeightFormat.Q8_0 or WeightFormat.MXFP4 => 32,
        WeightFormat.Q4_K or WeightFormat.Q6_K => 256,
        _ => throw Unknown(format),
    };

    /// <summary>Bytes per block.</summary>
    public static int BlockBytes(this WeightFormat format) => format switch
    {
        WeightFormat.F32 => 4,
        WeightFormat.F16 or WeightFormat.BF16 => 2,
        WeightFormat.Q8_0 => 34,
        WeightFormat.Q4_K => 144,
        WeightFormat.Q6_K => 210,
        WeightFormat.MXFP4 => 17,
        _ => throw Unknown(format),
    };

    /// <summary>ggml's <c>ggml_type</c> id of the format.</summary>
    public static int GgmlType(this WeightFormat format) => (int)format;

    /// <summary>The format whose ggml type id is <paramref name="ggmlType"/>, if MoeSharp computes with it.</summary>
    public static bool TryFromGgmlType(uint ggmlType, out WeightFormat format)
    {
        format = (WeightFormat)ggmlType;
        return ggmlType <= int.MaxValue && Enum.IsDefined(format);
    }

    /// <summary>Bytes of one row of <paramref name="cols"/> elements.</summary>
    /// <exception cref="ArgumentException"><paramref name="cols"/> is negative or not a whole number of blocks.</exception>
    public static long RowBytes(this WeightFormat format, int cols)
    {
        int block = format.BlockSize();
        if (cols < 0 || cols % block != 0)
            throw new ArgumentException(
                $"{format} rows hold whole blocks of {block}; {cols} columns is not a multiple", nameof(cols));
        return (long)(cols / block) * format.BlockBytes();
    }

    /// <summary>
    /// The first NaN or infinity of <paramref name="m"/> (flat index and value), or null, read from the stored bits
    /// so that an in-place load (or the expert cache, paging an expert in) checks its weights as the fp32 copy does, at the cost of one pass over the bytes: a
    /// float format's exponent field all ones, or a block format's scale (the quants are integers, so a block is
    /// finite exactly when its f16 scales, or MXFP4's E8M0 exponent, are); the row is then dequantized to name the value.
    /// </summary>
    public static (long At, float Value)? FirstNonFinite(this QuantizedMatrix m)
    {
        var bytes = m.Data.Span;
        int badRow = -1;
        switch (m.Format)
        {
            case WeightFormat.F32:
            {
                var f = MemoryMarshal.Cast<byte, float>(bytes);
                if (TensorPrimitives.IsFiniteAll(f)) return null;
                int i = 0;
                while (float.IsFinite(f[i])) i++;
                return (i, f[i]);
            }
            case WeightFormat.F16 or WeightFormat.BF16:
            {
                ushort mask = m.Format == WeightFormat.F16 ? (ushort)0x7C00 : (ushort)0x7F80; // the exponent field
                var u = MemoryMarshal.Cast<byte, ushort>(bytes);
                int i = 0;
                var vmask = new System.Numerics.Vector<ushort>(mask);
                for (int n = System.Numerics.Vector<ushort>.Count; i <= u.Length - n; i += n)
                    if (System.Numerics.Vector.EqualsAny(new System.Numerics.Vector<ushort>(u.Slice(i, n)) & vmask, vmask)) break;
                for (; i < u.Length; i++)
                    if ((u[i] & mask) == mask) return (i, m.Format == WeightFormat.F16 ? (float)BitConverter.UInt16BitsToHalf(u[i]) : BitConverter.Int32BitsToSingle(u[i] << 16));
                return null;
            }
            default:
            {
                int block = m.Format.BlockBytes();
                for (long b = 0; b < bytes.Length / block && badRow < 0; b++)
                {
                    var blk = bytes.Slice((int)(b * block), block);
                    bool finite = m.Format switch
                    {
                        WeightFormat.Q8_0 => FiniteHalf(blk, 0),
                        WeightFormat.Q4_K => FiniteHalf(blk, 0) && FiniteHalf(blk, 2), // d, dmin
                        WeightFormat.Q6_K => FiniteHalf(blk, 208),                     // d after the quants and scales
                        _ => blk[0] != 0xFF,                                           // MXFP4: E8M0 0xFF is NaN
                    };
                    if (!finite) badRow = (int)(b * block / m.RowBytes);
                }
                if (badRow < 0) return null;
                var row = new float[m.Cols];
                m.DequantizeRow(badRow, row);
                int i = 0;
                while (i < row.Length - 1 && float.IsFinite(row[i])) i++;
                return ((long)badRow * m.Cols + i, row[i]);
            }
        }
    }

    private static bool FiniteHalf(ReadOnlySpan<byte> block, int at) => (BitConverter.ToUInt16(block.Slice(at, 2)) & 0x7C00) != 0x7C00;

    private static ArgumentOutOfRangeException Unknown(WeightFormat format) =>
        new(nameof(format), format, $"unknown weight format {(int)format}");
}
