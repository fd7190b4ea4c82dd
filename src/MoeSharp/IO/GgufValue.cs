namespace MoeSharp.IO;

/// <summary>GGUF metadata value types, numbered as in the file.</summary>
public enum GgufValueType : uint
{
    UInt8 = 0, Int8 = 1, UInt16 = 2, Int16 = 3, UInt32 = 4, Int32 = 5, Float32 = 6, Bool = 7, String = 8,
    Array = 9, UInt64 = 10, Int64 = 11, Float64 = 12,
}

/// <summary>
/// One metadata value: a scalar (byte, sbyte, ushort, short, uint, int, float, bool, string, ulong, long, double
/// as <see cref="Value"/>) or an array of one scalar type (<see cref="Value"/> is then a CLR array of it).
/// </summary>
public sealed class GgufValue
{
    public GgufValue(GgufValueType type, object value, GgufValueType elementType = GgufValueType.UInt8)
    {
        Type = type;
        ElementType = elementType;
        Value = value;
    }

    public GgufValueType Type { get; }

    /// <summary>For an array, its element type.</summary>
    public GgufValueType ElementType { get; }

    public object Value { get; }

    public static GgufValue Of(string value) => new(GgufValueType.String, value);

    public static GgufValue Of(uint value) => new(GgufValueType.UInt32, value);

    public static GgufValue Of(int value) => new(GgufValueType.Int32, value);

    public static GgufValue Of(float value) => new(GgufValueType.Float32, value);

    public static GgufValue Of(bool value) => new(GgufValueType.Bool, value);

    public static GgufValue Of(ulong value) => new(GgufValueType.UInt64, value);

    public static GgufValue Array(GgufValueType elementType, System.Array items) =>
        new(GgufValueType.Array, items, elementType);

    public override string ToString() => Value is System.Array a ? $"[{ElementType} × {a.Length}]" : $"{Value}";
}

/// <summary>One tensor's entry in a GGUF file. Dimensions are in ggml order: <c>Dims[0]</c> is the contiguous one.</summary>
/// <param name="Offset">Bytes from the start of the data section.</param>
public sealed record GgufTensorInfo(string Name, long[] Dims, uint GgmlType, long Offset, long ByteCount)
{
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
