namespace MoeSharp.IO;

/// <summary>Element types of a safetensors tensor, named as in the file header.</summary>
public enum SafetensorsDType
{
    /// <summary>IEEE 754 single precision, 4 bytes.</summary>
    F32,

    /// <summary>IEEE 754 half precision, 2 bytes.</summary>
    F16,

    /// <summary>bfloat16: the upper half of a float32, 2 bytes.</summary>
    BF16,

    /// <summary>IEEE 754 double precision, 8 bytes.</summary>
    F64,

    /// <summary>Signed 32-bit integer.</summary>
    I32,

    /// <summary>Signed 64-bit integer.</summary>
    I64,

    /// <summary>Signed 16-bit integer.</summary>
    I16,

    /// <summary>Signed 8-bit integer.</summary>
    I8,

    /// <summary>Unsigned 8-bit integer.</summary>
    U8,

    /// <summary>Boolean, one byte.</summary>
    BOOL,
}

internal static class SafetensorsDTypes
{
    /// <summary>The header spelling of each dtype, for messages.</summary>
    public const string Names = "F32, F16, BF16, F64, I32, I64, I16, I8, U8, BOOL";

    // An explicit switch rather than Enum.TryParse: the header spelling is case-sensitive, and Enum.TryParse
    // would also accept numeric strings such as "3".
    public static bool TryParse(string text, out SafetensorsDType dtype)
    {
        SafetensorsDType? parsed = text switch
        {
            "F32" => SafetensorsDType.F32,
            "F16" => SafetensorsDType.F16,
            "BF16" => SafetensorsDType.BF16,
            "F64" => SafetensorsDType.F64,
            "I32" => SafetensorsDType.I32,
            "I64" => SafetensorsDType.I64,
            "I16" => SafetensorsDType.I16,
            "I8" => SafetensorsDType.I8,
            "U8" => SafetensorsDType.U8,
            "BOOL" => SafetensorsDType.BOOL,
            _ => null,
        };
        dtype = parsed.GetValueOrDefault();
        return parsed.HasValue;
    }

    /// <summary>Bytes per element.</summary>
    public static int Size(this SafetensorsDType dtype) => dtype switch
    {
        SafetensorsDType.F64 or SafetensorsDType.I64 => 8,
        SafetensorsDType.F32 or SafetensorsDType.I32 => 4,
        SafetensorsDType.F16 or SafetensorsDType.BF16 or SafetensorsDType.I16 => 2,
        _ => 1,
    };
}
