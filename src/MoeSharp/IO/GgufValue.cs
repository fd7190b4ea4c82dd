namespace MoeSharp.IO;

/// <summary>GGUF metadata value types, numbered as in the file.</summary>
public enum GgufValueType : uint
{
    /// <summary>byte.</summary>
    UInt8 = 0,

    /// <summary>sbyte.</summary>
    Int8 = 1,

    /// <summary>ushort.</summary>
    UInt16 = 2,

    /// <summary>short.</summary>
    Int16 = 3,

    /// <summary>uint.</summary>
    UInt32 = 4,

    /// <summary>int.</summary>
    Int32 = 5,

    /// <summary>float.</summary>
    Float32 = 6,

    /// <summary>bool, stored as one byte (0 or 1).</summary>
    Bool = 7,

    /// <summary>string: a u64 byte length, then UTF-8 bytes.</summary>
    String = 8,

    /// <summary>An array: a u32 element type, a u64 count, then the elements.</summary>
    Array = 9,

    /// <summary>ulong.</summary>
    UInt64 = 10,

    /// <summary>long.</summary>
    Int64 = 11,

    /// <summary>double.</summary>
    Float64 = 12,
}

/// <summary>
/// One metadata value: a scalar (byte, sbyte, ushort, short, uint, int, float, bool, string, ulong, long, double
/// as <see cref="Value"/>) or an array of one scalar type (<see cref="Value"/> is then a CLR array of it).
/// </summary>
public sealed class GgufValue
{
    /// <summary>A value of <paramref name="type"/>; for an array, <paramref name="value"/> is a CLR array of <paramref name="elementType"/>.</summary>
    public GgufValue(GgufValueType type, object value, GgufValueType elementType = GgufValueType.UInt8)
    {
        Type = type;
        ElementType = elementType;
        Value = value;
    }

    /// <summary>The value's GGUF type (<see cref="GgufValueType.Array"/> for an array).</summary>
    public GgufValueType Type { get; }

    /// <summary>For an array, its element type.</summary>
    public GgufValueType ElementType { get; }

    /// <summary>The CLR value: a scalar of the type's CLR counterpart, a string, or a CLR array.</summary>
    public object Value { get; }

    /// <summary>A string value.</summary>
    public static GgufValue Of(string value) => new(GgufValueType.String, value);

    /// <summary>A UInt32 value (GGUF counts and sizes, <c>general.alignment</c>).</summary>
    public static GgufValue Of(uint value) => new(GgufValueType.UInt32, value);

    /// <summary>An Int32 value.</summary>
    public static GgufValue Of(int value) => new(GgufValueType.Int32, value);

    /// <summary>A Float32 value (epsilons, RoPE bases).</summary>
    public static GgufValue Of(float value) => new(GgufValueType.Float32, value);

    /// <summary>A Bool value.</summary>
    public static GgufValue Of(bool value) => new(GgufValueType.Bool, value);

    /// <summary>A UInt64 value.</summary>
    public static GgufValue Of(ulong value) => new(GgufValueType.UInt64, value);

    /// <summary>An array of <paramref name="elementType"/>; <paramref name="items"/> must be a CLR array of that type's counterpart.</summary>
    public static GgufValue Array(GgufValueType elementType, System.Array items) =>
        new(GgufValueType.Array, items, elementType);

    /// <summary>The scalar as text, or the element type and length of an array.</summary>
    public override string ToString() => Value is System.Array a ? $"[{ElementType} × {a.Length}]" : $"{Value}";
}

/// <summary>One tensor's entry in a GGUF file. Dimensions are in ggml order: <c>Dims[0]</c> is the contiguous one.</summary>
/// <param name="Offset">Bytes from the start of the data section.</param>
public sealed record GgufTensorInfo(string Name, long[] Dims, uint GgmlType, long Offset, long ByteCount)
{
    /// <summary>The product of <see cref="Dims"/>: the number of elements, not of bytes.</summary>
    public long ElementCount
    {
        get
        {
            long n = 1;
            foreach (long d in Dims) n *= d;
            return n;
        }
    }
}

/// <summary>Block geometry of every ggml type, so that files holding types MoeSharp does not compute with still validate.</summary>
internal static class GgmlTypes
{
    // (block size, bytes per block) by ggml_type id; (0, 0) marks ids ggml has retired or never used.
    private static readonly (int Block, int Bytes)[] Sizes =
    [
        (1, 4), (1, 2), (32, 18), (32, 20), (0, 0), (0, 0), (32, 22), (32, 24), (32, 34), (32, 36),   // 0-9
        (256, 84), (256, 110), (256, 144), (256, 176), (256, 210), (256, 292),                     // 10-15 Q2_K..Q8_K
        (256, 66), (256, 74), (256, 98), (256, 50), (32, 18), (256, 110), (256, 82), (256, 136),   // 16-23 IQ*
        (1, 1), (1, 2), (1, 4), (1, 8), (1, 8), (256, 56), (1, 2),                                 // 24-30 I8..BF16
        (0, 0), (0, 0), (0, 0), (256, 54), (256, 66), (0, 0), (0, 0), (0, 0), (32, 17),             // 31-39 TQ*, MXFP4
    ];

    public static bool TryGetSize(uint type, out int block, out int bytes)
    {
        (block, bytes) = type < Sizes.Length ? Sizes[type] : (0, 0);
        return block != 0;
    }
}
