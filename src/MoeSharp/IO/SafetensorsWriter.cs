using System.Buffers;
using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace MoeSharp.IO;

/// <summary>Writes float32 tensors to a safetensors file, atomically.</summary>
public static class SafetensorsWriter
{
    /// <summary>A tensor to write as F32; <paramref name="Data"/> is row-major and holds exactly the shape's element count.</summary>
    public readonly record struct Tensor(string Name, int[] Shape, ReadOnlyMemory<float> Data);

    /// <summary>
    /// Writes <paramref name="tensors"/> with contiguous data in the given order, after a header padded with spaces
    /// to a multiple of 8 bytes so that the data section starts 8-byte aligned.
    /// </summary>
    /// <remarks>
    /// The file is written to a temporary file in the same folder, flushed to disk, then moved over
    /// <paramref name="path"/>, so readers see either the old file or the complete new one, never a partial one.
    /// </remarks>
    public static void Write(string path, IEnumerable<Tensor> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(tensors);
        // The header holds every offset, so all tensors are known before the first data byte is written.
        Tensor[] list = tensors.ToArray();
        byte[] header = BuildHeader(list, metadata);

        string fullPath = Path.GetFullPath(path);
        string temp = Path.Combine(Path.GetDirectoryName(fullPath)!,
            $".{Path.GetFileName(fullPath)}.{Guid.NewGuid():N}.tmp");
        var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, bufferSize: 1 << 16);
        try
        {
            using (stream)
            {
                Span<byte> prefix = stackalloc byte[8];
                BinaryPrimitives.WriteUInt64LittleEndian(prefix, (ulong)header.Length);
                stream.Write(prefix);
                stream.Write(header);
                foreach (var tensor in list)
                    WriteLittleEndian(stream, tensor.Data.Span);
                stream.Flush(flushToDisk: true);
            }
            File.Move(temp, fullPath, overwrite: true);
        }
        catch
        {
            File.Delete(temp);
            throw;
        }
    }

    private static byte[] BuildHeader(Tensor[] tensors, IReadOnlyDictionary<string, string>? metadata)
    {
        var buffer = new ArrayBufferWriter<byte>();
        // Relaxed escaping keeps names and metadata readable (e.g. '+', '<'); the header is never embedded in HTML.
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            json.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                json.WriteStartObject("__metadata__");
                foreach (var (key, value) in metadata)
                {
                    if (value is null)
                        throw new ArgumentException($"metadata '{key}' is null; expected a string", nameof(metadata));
                    json.WriteString(key, value);
                }
                json.WriteEndObject();
            }

            var names = new HashSet<string>(StringComparer.Ordinal);
            long offset = 0;
            foreach (var tensor in tensors)
            {
                Validate(tensor, names);
                long end = offset + (long)tensor.Data.Length * sizeof(float);
                json.WriteStartObject(tensor.Name);
                json.WriteString("dtype", "F32");
                json.WriteStartArray("shape");
                foreach (int dim in tensor.Shape)
                    json.WriteNumberValue(dim);
                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(offset);
                json.WriteNumberValue(end);
                json.WriteEndArray();
                json.WriteEndObject();
                offset = end;
            }
            json.WriteEndObject();
        }

        var header = new byte[(buffer.WrittenCount + 7) & ~7];
        buffer.WrittenSpan.CopyTo(header);
        header.AsSpan(buffer.WrittenCount).Fill((byte)' ');
        return header;
    }

    private static void Validate(Tensor tensor, HashSet<string> names)
    {
        if (string.IsNullOrEmpty(tensor.Name) || tensor.Name == "__metadata__")
            throw new ArgumentException($"tensor name '{tensor.Name}' is empty or reserved", "tensors");
        if (!names.Add(tensor.Name))
            throw new ArgumentException($"duplicate tensor name '{tensor.Name}'", "tensors");
        if (tensor.Shape is null)
            throw new ArgumentException($"tensor '{tensor.Name}' has a null shape", "tensors");
        // Clamp just above int.MaxValue: a larger product can never match Data.Length, and a later 0 still gives 0.
        long count = 1;
        foreach (int dim in tensor.Shape)
        {
            if (dim < 0)
                throw new ArgumentException($"tensor '{tensor.Name}' has negative dimension {dim}", "tensors");
            count = Math.Min(count * dim, (long)int.MaxValue + 1);
        }
        if (count != tensor.Data.Length)
            throw new ArgumentException(
                $"tensor '{tensor.Name}' shape [{string.Join(", ", tensor.Shape)}] has {count} elements; data has {tensor.Data.Length}",
                "tensors");
    }

    private static void WriteLittleEndian(Stream stream, ReadOnlySpan<float> data)
    {
        if (BitConverter.IsLittleEndian)
        {
            stream.Write(MemoryMarshal.AsBytes(data));
            return;
        }
        Span<int> chunk = stackalloc int[256];
        for (var bits = MemoryMarshal.Cast<float, int>(data); !bits.IsEmpty;)
        {
            int count = Math.Min(bits.Length, chunk.Length);
            BinaryPrimitives.ReverseEndianness(bits[..count], chunk);
            stream.Write(MemoryMarshal.AsBytes(chunk[..count]));
            bits = bits[count..];
        }
    }
}
