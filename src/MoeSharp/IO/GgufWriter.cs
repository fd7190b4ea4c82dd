using System.Text;
using MoeSharp.Formats;

namespace MoeSharp.IO;

/// <summary>
/// Builds a GGUF v3 file: metadata and tensors are added in order, then <see cref="Write"/> lays them out as
/// llama.cpp expects (tensor data in info order, each aligned to <c>general.alignment</c>) and replaces the target
/// atomically (a temporary file, then a rename), so a reader never sees a half-written file.
/// </summary>
public sealed class GgufWriter
{
    private readonly List<(string Key, GgufValue Value)> _metadata = [];
    private readonly List<(string Name, long[] Dims, uint Type, byte[] Data)> _tensors = [];
    private readonly HashSet<string> _keys = new(StringComparer.Ordinal);
    private readonly HashSet<string> _names = new(StringComparer.Ordinal);

    /// <summary>The data alignment in bytes the file will use; set by adding <see cref="GgufFile.AlignmentKey"/>.</summary>
    public int Alignment { get; private set; } = GgufFile.DefaultAlignment;

    /// <summary>Adds metadata <paramref name="key"/>; each key once. Returns this writer, for chaining.</summary>
    public GgufWriter Add(string key, GgufValue value)
    {
        if (!_keys.Add(key)) throw new ArgumentException($"metadata key '{key}' is already set", nameof(key));
        if (key == GgufFile.AlignmentKey)
        {
            if (value.Type != GgufValueType.UInt32 || (uint)value.Value is 0 or > 1 << 30 || ((uint)value.Value & ((uint)value.Value - 1)) != 0)
                throw new ArgumentException($"'{key}' must be a UInt32 power of two", nameof(value));
            Alignment = (int)(uint)value.Value;
        }
        _metadata.Add((key, value));
        return this;
    }

    /// <summary>Adds a tensor stored as <paramref name="format"/>; <paramref name="dims"/> in ggml order (contiguous first).</summary>
    public GgufWriter AddTensor(string name, WeightFormat format, long[] dims, byte[] data) =>
        AddTensor(name, (uint)format.GgmlType(), dims, data);

    /// <summary>Adds a tensor of any ggml type id; its byte count is checked against the type's block geometry.</summary>
    public GgufWriter AddTensor(string name, uint ggmlType, long[] dims, byte[] data)
    {
        if (Encoding.UTF8.GetByteCount(name) > GgufFile.MaxNameBytes)
            throw new ArgumentException($"tensor name '{name}' is longer than {GgufFile.MaxNameBytes} bytes", nameof(name));
        if (!_names.Add(name)) throw new ArgumentException($"tensor '{name}' is already added", nameof(name));
        if (dims.Length is 0 or > GgufFile.MaxDims)
            throw new ArgumentException($"tensor '{name}' has {dims.Length} dimensions; expected 1 to {GgufFile.MaxDims}", nameof(dims));
        if (!GgmlTypes.TryGetSize(ggmlType, out int block, out int blockBytes))
            throw new ArgumentException($"unknown ggml type {ggmlType}", nameof(ggmlType));
        if (dims[0] % block != 0)
            throw new ArgumentException($"tensor '{name}' ne[0] = {dims[0]} is not a multiple of the block size {block}", nameof(dims));
        long bytes = dims[0] / block * blockBytes;
        for (int d = 1; d < dims.Length; d++) bytes *= dims[d];
        if (bytes != data.Length)
            throw new ArgumentException($"tensor '{name}' needs {bytes} bytes; {data.Length} given", nameof(data));
        _tensors.Add((name, (long[])dims.Clone(), ggmlType, data));
        return this;
    }

    /// <summary>Writes the file to <paramref name="path"/>, replacing any file there atomically.</summary>
    public void Write(string path)
    {
        string temp = $"{path}.{Environment.ProcessId}.tmp";
        try
        {
            using (var stream = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None))
            {
                var w = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true);
                w.Write(GgufFile.Magic);
                w.Write(3u);
                w.Write((ulong)_tensors.Count);
                w.Write((ulong)_metadata.Count);
                foreach (var (key, value) in _metadata)
                {
                    WriteString(w, key);
                    w.Write((uint)value.Type);
                    WriteValue(w, value);
                }
                long offset = 0;
                foreach (var (name, dims, type, data) in _tensors)
                {
                    WriteString(w, name);
                    w.Write((uint)dims.Length);
                    foreach (long d in dims) w.Write((ulong)d);
                    w.Write(type);
                    w.Write((ulong)offset);
                    offset = GgufFile.AlignUp(offset + data.Length, Alignment);
                }
                Pad(w);
                foreach (var (_, _, _, data) in _tensors)
                {
                    w.Write(data);
                    Pad(w);
                }
                w.Flush();
                stream.Flush(flushToDisk: true);
            }
            File.Move(temp, path, overwrite: true);
        }
        catch
        {
            File.Delete(temp);
            throw;
        }
    }

    private void Pad(BinaryWriter w)
    {
        long position = w.BaseStream.Position;
        for (long p = position; p < GgufFile.AlignUp(position, Alignment); p++) w.Write((byte)0);
    }

    private static void WriteString(BinaryWriter w, string s)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(s);
        w.Write((ulong)bytes.Length);
        w.Write(bytes);
    }

    private static void WriteValue(BinaryWriter w, GgufValue value)
    {
        if (value.Type != GgufValueType.Array)
        {
            WriteScalar(w, value.Type, value.Value);
            return;
        }
        var items = (Array)value.Value;
        w.Write((uint)value.ElementType);
        w.Write((ulong)items.Length);
        foreach (object item in items) WriteScalar(w, value.ElementType, item);
    }

    private static void WriteScalar(BinaryWriter w, GgufValueType type, object v)
    {
        switch (type)
        {
            case GgufValueType.UInt8: w.Write((byte)v); break;
            case GgufValueType.Int8: w.Write((sbyte)v); break;
            case GgufValueType.UInt16: w.Write((ushort)v); break;
            case GgufValueType.Int16: w.Write((short)v); break;
            case GgufValueType.UInt32: w.Write((uint)v); break;
            case GgufValueType.Int32: w.Write((int)v); break;
            case GgufValueType.Float32: w.Write((float)v); break;
            case GgufValueType.Bool: w.Write((bool)v ? (byte)1 : (byte)0); break;
            case GgufValueType.String: WriteString(w, (string)v); break;
            case GgufValueType.UInt64: w.Write((ulong)v); break;
            case GgufValueType.Int64: w.Write((long)v); break;
            case GgufValueType.Float64: w.Write((double)v); break;
            default: throw new ArgumentException($"GGUF value type {type} cannot be written as a scalar", nameof(type));
        }
    }
}
