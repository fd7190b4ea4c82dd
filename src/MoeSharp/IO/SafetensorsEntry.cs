namespace MoeSharp.IO;

/// <summary>
/// One tensor of a safetensors file: its name, element type, shape, and byte span
/// <c>[Begin, End)</c> relative to the start of the data section.
/// </summary>
public sealed record SafetensorsEntry(string Name, SafetensorsDType DType, int[] Shape, long Begin, long End)
{
    /// <summary>Number of elements, from the validated byte span (the shape's product, 1 for a scalar).</summary>
    public long ElementCount => (End - Begin) / DType.Size();
}
