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

    private static ArgumentOutOfRangeException Unknown(WeightFormat format) =>
        new(nameof(format), format, $"unknown weight format {(int)format}");
}
