using System.Buffers;
using System.IO.MemoryMappedFiles;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Unicode;
using MoeSharp.Formats;

namespace MoeSharp.IO;

/// <summary>
/// A GGUF v3 file, memory-mapped: <see cref="Open"/> parses and validates the header; tensor bytes are used in place
/// (<see cref="TensorBytes"/>, <see cref="Matrix"/>), never copied. Dispose only after the last use of its memory.
/// </summary>
/// <remarks>
/// Layout (little-endian): "GGUF", version u32, tensor count u64, metadata count u64; metadata as (string key,
/// u32 type, value); tensor infos as (string name, u32 n_dims, u64 dims[n_dims] with the contiguous one first,
/// u32 ggml type, u64 offset); padding to <c>general.alignment</c> (default 32); the data section. A string is a
/// u64 byte length and UTF-8 bytes.
/// </remarks>
public sealed unsafe class GgufFile : IDisposable, IMappedFile
{
    internal const uint Magic = 0x46554747; // "GGUF" read as a little-endian u32
    /// <summary>The data alignment in bytes when the file sets no <c>general.alignment</c>.</summary>
    public const int DefaultAlignment = 32;
    /// <summary>The metadata key that sets the data alignment (a UInt32 power of two).</summary>
    public const string AlignmentKey = "general.alignment";

    /// <summary>ggml's limits: at most 4 dimensions, names shorter than 64 bytes.</summary>
    public const int MaxDims = 4, MaxNameBytes = 63;

    private readonly MemoryMappedFile _map;
    private readonly MemoryMappedViewAccessor _view;
    private readonly byte* _base;
    private readonly long _dataStart;
    private readonly Dictionary<string, GgufTensorInfo> _byName;
    private bool _disposed;

    bool IMappedFile.IsDisposed => _disposed;

    private GgufFile(string path, MemoryMappedFile map, MemoryMappedViewAccessor view, byte* basePointer, long length)
    {
        Path = path;
        _map = map;
        _view = view;
        _base = basePointer;
        var reader = new Reader(path, basePointer, length);
        (Version, Metadata, Tensors, Alignment, _dataStart) = Parse(ref reader);
        _byName = new Dictionary<string, GgufTensorInfo>(StringComparer.Ordinal);
        foreach (var t in Tensors) _byName.Add(t.Name, t);
    }

    /// <summary>The path the file was opened from, as given; messages name it.</summary>
    public string Path { get; }

    /// <summary>The GGUF version in the header; only 3 is accepted.</summary>
    public uint Version { get; }

    /// <summary>The metadata key/value pairs, in file order (e.g. <c>general.architecture</c>, <c>llama.block_count</c>).</summary>
    public IReadOnlyDictionary<string, GgufValue> Metadata { get; }

    /// <summary>Tensors in file order.</summary>
    public IReadOnlyList<GgufTensorInfo> Tensors { get; }

    /// <summary>The data alignment in bytes: <c>general.alignment</c>, or <see cref="DefaultAlignment"/>.</summary>
    public int Alignment { get; }

    /// <summary>Maps <paramref name="path"/> and validates its header, metadata and tensor table; throws <see cref="GgufFormatException"/> naming the file and the bad field.</summary>
    public static GgufFile Open(string path)
    {
        long length = new FileInfo(path).Length;
        if (length < 24)
            throw new GgufFormatException(path, $"file is {length} bytes; expected at least 24 (magic, version, counts)");
        // FileShare.Delete so that an atomic rewrite (temp + rename) can replace the file while it is mapped.
        var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete);
        MemoryMappedFile? map = null;
        MemoryMappedViewAccessor? view = null;
        byte* pointer = null;
        try
        {
            map = MemoryMappedFile.CreateFromFile(stream, null, 0, MemoryMappedFileAccess.Read, HandleInheritability.None, leaveOpen: false);
            view = map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
            view.SafeMemoryMappedViewHandle.AcquirePointer(ref pointer);
            return new GgufFile(path, map, view, pointer + view.PointerOffset, length);
        }
        catch
        {
            if (pointer != null) view!.SafeMemoryMappedViewHandle.ReleasePointer();
            view?.Dispose();
            if (map is null) stream.Dispose();
            map?.Dispose();
            throw;
        }
    }

    /// <summary>Whether the file holds a tensor named <paramref name="name"/>.</summary>
    public bool Contains(string name) => _byName.ContainsKey(name);

    /// <exception cref="KeyNotFoundException">No tensor of that name; the message names the file and tensor.</exception>
    public GgufTensorInfo this[string name] =>
        _byName.TryGetValue(name, out var info) ? info : throw new KeyNotFoundException($"{Path}: no tensor named '{name}'");

    /// <summary>The tensor's bytes, in place in the mapping.</summary>
    public ReadOnlySpan<byte> TensorBytes(GgufTensorInfo tensor)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (tensor.ByteCount > int.MaxValue)
            throw new NotSupportedException($"{Path}: tensor '{tensor.Name}' is {tensor.ByteCount} bytes, more than one span holds");
        return new ReadOnlySpan<byte>(_base + _dataStart + tensor.Offset, (int)tensor.ByteCount);
    }

    /// <summary>
    /// The 2-D tensor <paramref name="name"/> ([ne1 rows, ne0 cols]), or matrix <paramref name="index"/> of a 3-D
    /// one ([ne2, ne1, ne0], e.g. stacked experts), over the mapped bytes.
    /// </summary>
    public QuantizedMatrix Matrix(string name, int index = 0)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var t = this[name];
        if (!WeightFormats.TryFromGgmlType(t.GgmlType, out var format))
            throw new GgufFormatException(Path,
                $"tensor '{name}' has ggml type {t.GgmlType}; MoeSharp computes with F32, F16, BF16, Q8_0, Q4_K, Q6_K and MXFP4");
        if (t.Dims.Length is < 2 or > 3 || (t.Dims.Length == 2 && index != 0))
            throw new GgufFormatException(Path,
                $"tensor '{name}' has {t.Dims.Length} dimensions; expected a matrix, or index 0..ne2-1 of a 3-D tensor");
        long count = t.Dims.Length == 3 ? t.Dims[2] : 1;
        if ((ulong)index >= (ulong)count)
            throw new ArgumentOutOfRangeException(nameof(index), index, $"{Path}: tensor '{name}' holds {count} matrices");
        if (t.Dims[0] > int.MaxValue || t.Dims[1] > int.MaxValue)
            throw new GgufFormatException(Path, $"tensor '{name}' dims [{string.Join(", ", t.Dims)}] exceed int range");
        int cols = (int)t.Dims[0], rows = (int)t.Dims[1];
        long bytes = rows * format.RowBytes(cols);
        if (bytes > int.MaxValue)
            throw new NotSupportedException($"{Path}: one matrix of tensor '{name}' is {bytes} bytes, more than one span holds");
        var memory = new MappedMemory(this, _base + _dataStart + t.Offset + index * bytes, (int)bytes).Memory;
        return new QuantizedMatrix(memory, format, rows, cols);
    }

    /// <summary>Where <see cref="Matrix"/>(<paramref name="name"/>, <paramref name="index"/>) starts in the file, for reading it without the map.</summary>
    public long FileOffset(string name, int index = 0)
    {
        var m = Matrix(name, index);
        return _dataStart + this[name].Offset + index * m.Data.Length;
    }

    /// <summary>Unmaps the file; spans and matrices taken from it must not be used afterwards.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _map.Dispose();
    }

    private static (uint, Dictionary<string, GgufValue>, GgufTensorInfo[], int, long) Parse(ref Reader r)
    {
        string path = r.Path;
        uint magic = r.U32("magic");
        if (magic != Magic)
            throw new GgufFormatException(path, $"magic is 0x{magic:X8}; expected 0x{Magic:X8} (\"GGUF\")");
        uint version = r.U32("version");
        if (version != 3)
            throw new GgufFormatException(path, $"version is {version}; expected 3");
        ulong tensorCount = r.U64("tensor count");
        ulong kvCount = r.U64("metadata count");
        // Each entry takes at least 8 + 4 bytes (key length + type; name length + n_dims), which bounds the counts
        // by the file length before anything is allocated for them.
        if (kvCount > (ulong)r.Remaining / 12)
            throw new GgufFormatException(path, $"metadata count {kvCount} cannot fit in the {r.Remaining} bytes left");
        if (tensorCount > (ulong)r.Remaining / 12)
            throw new GgufFormatException(path, $"tensor count {tensorCount} cannot fit in the {r.Remaining} bytes left");

        var metadata = new Dictionary<string, GgufValue>(StringComparer.Ordinal);
        for (ulong i = 0; i < kvCount; i++)
        {
            long at = r.Position;
            string key = r.String($"metadata key {i}");
            if (key.Length == 0) throw new GgufFormatException(path, $"metadata key {i} at byte {at} is empty");
            var type = (GgufValueType)r.U32($"type of '{key}'");
            var value = ReadValue(ref r, key, type);
            if (!metadata.TryAdd(key, value))
                throw new GgufFormatException(path, $"duplicate metadata key '{key}' at byte {at}");
        }

        int alignment = DefaultAlignment;
        if (metadata.TryGetValue(AlignmentKey, out var alignValue))
        {
            if (alignValue.Type != GgufValueType.UInt32)
                throw new GgufFormatException(path, $"'{AlignmentKey}' is {alignValue.Type}; expected UInt32");
            uint a = (uint)alignValue.Value;
            if (a == 0 || (a & (a - 1)) != 0 || a > 1 << 30)
                throw new GgufFormatException(path, $"'{AlignmentKey}' is {a}; expected a power of two");
            alignment = (int)a;
        }

        var tensors = new GgufTensorInfo[tensorCount];
        var names = new HashSet<string>(StringComparer.Ordinal);
        for (ulong i = 0; i < tensorCount; i++)
        {
            long at = r.Position;
            string name = r.String($"tensor {i} name");
            if (Encoding.UTF8.GetByteCount(name) > MaxNameBytes)
                throw new GgufFormatException(path, $"tensor {i} name at byte {at} is longer than {MaxNameBytes} bytes");
            if (!names.Add(name)) throw new GgufFormatException(path, $"duplicate tensor name '{name}'");
            uint nDims = r.U32($"tensor '{name}' n_dims");
            if (nDims is 0 or > MaxDims)
                throw new GgufFormatException(path, $"tensor '{name}' has {nDims} dimensions; expected 1 to {MaxDims}");
            var dims = new long[nDims];
            for (int d = 0; d < nDims; d++)
            {
                ulong size = r.U64($"tensor '{name}' ne[{d}]");
                if (size > long.MaxValue)
                    throw new GgufFormatException(path, $"tensor '{name}' ne[{d}] is {size}; expected at most {long.MaxValue}");
                dims[d] = (long)size;
            }
            uint type = r.U32($"tensor '{name}' type");
            if (!GgmlTypes.TryGetSize(type, out int block, out int blockBytes))
                throw new GgufFormatException(path, $"tensor '{name}' has unknown ggml type {type}");
            if (dims[0] % block != 0)
                throw new GgufFormatException(path,
                    $"tensor '{name}' ne[0] = {dims[0]} is not a multiple of its type's block size {block}");
            long bytes = dims[0] / block * blockBytes;
            for (int d = 1; d < nDims; d++)
            {
                if (dims[d] != 0 && bytes > long.MaxValue / dims[d])
                    throw new GgufFormatException(path, $"tensor '{name}' dims [{string.Join(", ", dims)}] overflow the byte count");
                bytes *= dims[d];
            }
            ulong offset = r.U64($"tensor '{name}' offset");
            if (offset % (ulong)alignment != 0)
                throw new GgufFormatException(path, $"tensor '{name}' offset {offset} is not a multiple of the alignment {alignment}");
            if (offset > long.MaxValue)
                throw new GgufFormatException(path, $"tensor '{name}' offset {offset} is out of range");
            tensors[i] = new GgufTensorInfo(name, dims, type, (long)offset, bytes);
        }

        long dataStart = AlignUp(r.Position, alignment);
        long dataLength = r.Length - dataStart;
        if (dataLength < 0)
            throw new GgufFormatException(path, $"the data section would start at byte {dataStart}, past the end ({r.Length})");
        var sorted = (GgufTensorInfo[])tensors.Clone();
        Array.Sort(sorted, static (a, b) => a.Offset.CompareTo(b.Offset));
        GgufTensorInfo? previous = null;
        foreach (var t in sorted)
        {
            if (t.Offset > dataLength || t.ByteCount > dataLength - t.Offset)
                throw new GgufFormatException(path,
                    $"tensor '{t.Name}' spans [{t.Offset}, {t.Offset + t.ByteCount}) of the data section; it has only {dataLength} bytes");
            if (t.ByteCount == 0) continue;
            if (previous is not null && t.Offset < previous.Offset + previous.ByteCount)
                throw new GgufFormatException(path, $"tensors '{previous.Name}' and '{t.Name}' overlap at data offset {t.Offset}");
            previous = t;
        }
        return (version, metadata, tensors, alignment, dataStart);
    }

    internal static long AlignUp(long position, int alignment) => (position + alignment - 1) / alignment * alignment;

    private static GgufValue ReadValue(ref Reader r, string key, GgufValueType type)
    {
        if (type == GgufValueType.Array)
        {
            var elementType = (GgufValueType)r.U32($"'{key}' element type");
            if (elementType == GgufValueType.Array)
                throw new GgufFormatException(r.Path, $"metadata '{key}' is an array of arrays; expected scalars");
            if (!Enum.IsDefined(elementType))
                throw new GgufFormatException(r.Path, $"metadata '{key}' has unknown element type {(uint)elementType}");
            ulong count = r.U64($"'{key}' length");
            int minSize = elementType == GgufValueType.String ? 8 : ScalarSize(elementType);
            if (count > (ulong)r.Remaining / (ulong)minSize || count > (ulong)System.Array.MaxLength)
                throw new GgufFormatException(r.Path,
                    $"metadata '{key}' claims {count} {elementType} elements; only {r.Remaining} bytes are left");
            return GgufValue.Array(elementType, ReadArray(ref r, key, elementType, (int)count));
        }
        if (!Enum.IsDefined(type))
            throw new GgufFormatException(r.Path, $"metadata '{key}' has unknown value type {(uint)type}");
        return new GgufValue(type, ReadScalar(ref r, key, type));
    }

    private static Array ReadArray(ref Reader r, string key, GgufValueType type, int count)
    {
        switch (type)
        {
            case GgufValueType.String:
                var strings = new string[count];
                for (int i = 0; i < count; i++) strings[i] = r.String($"'{key}'[{i}]");
                return strings;
            case GgufValueType.Bool:
                var bools = new bool[count];
                for (int i = 0; i < count; i++) bools[i] = (bool)ReadScalar(ref r, key, type);
                return bools;
            default:
                var items = System.Array.CreateInstance(ClrType(type), count);
                int size = ScalarSize(type);
                r.Bytes($"'{key}' elements", (long)count * size).CopyTo(
                    new Span<byte>(Unsafe.AsPointer(ref System.Runtime.InteropServices.MemoryMarshal.GetArrayDataReference(items)), count * size));
                return items;
        }
    }

    private static object ReadScalar(ref Reader r, string key, GgufValueType type) => type switch
    {
        GgufValueType.UInt8 => r.Bytes(key, 1)[0],
        GgufValueType.Int8 => (sbyte)r.Bytes(key, 1)[0],
        GgufValueType.UInt16 => BitConverter.ToUInt16(r.Bytes(key, 2)),
        GgufValueType.Int16 => BitConverter.ToInt16(r.Bytes(key, 2)),
        GgufValueType.UInt32 => r.U32(key),
        GgufValueType.Int32 => BitConverter.ToInt32(r.Bytes(key, 4)),
        GgufValueType.Float32 => BitConverter.ToSingle(r.Bytes(key, 4)),
        GgufValueType.UInt64 => r.U64(key),
        GgufValueType.Int64 => BitConverter.ToInt64(r.Bytes(key, 8)),
        GgufValueType.Float64 => BitConverter.ToDouble(r.Bytes(key, 8)),
        GgufValueType.String => r.String(key),
        GgufValueType.Bool => r.Bytes(key, 1)[0] switch
        {
            0 => false,
            1 => true,
            var b => throw new GgufFormatException(r.Path, $"metadata '{key}' bool is {b}; expected 0 or 1"),
        },
        _ => throw new GgufFormatException(r.Path, $"metadata '{key}' has unknown value type {(uint)type}"),
    };

    internal static int ScalarSize(GgufValueType type) => type switch
    {
        GgufValueType.UInt8 or GgufValueType.Int8 or GgufValueType.Bool => 1,
        GgufValueType.UInt16 or GgufValueType.Int16 => 2,
        GgufValueType.UInt32 or GgufValueType.Int32 or GgufValueType.Float32 => 4,
        _ => 8,
    };

    internal static Type ClrType(GgufValueType type) => type switch
    {
        GgufValueType.UInt8 => typeof(byte),
        GgufValueType.Int8 => typeof(sbyte),
        GgufValueType.UInt16 => typeof(ushort),
        GgufValueType.Int16 => typeof(short),
        GgufValueType.UInt32 => typeof(uint),
        GgufValueType.Int32 => typeof(int),
        GgufValueType.Float32 => typeof(float),
        GgufValueType.Bool => typeof(bool),
        GgufValueType.String => typeof(string),
        GgufValueType.UInt64 => typeof(ulong),
        GgufValueType.Int64 => typeof(long),
        GgufValueType.Float64 => typeof(double),
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "not a scalar GGUF type"),
    };

    /// <summary>A bounds-checked little-endian cursor over the mapped header; every read names what it reads.</summary>
    private struct Reader(string path, byte* start, long length)
    {
        public readonly string Path = path;
        public readonly long Length = length;
        public long Position;

        public readonly long Remaining => Length - Position;

        public ReadOnlySpan<byte> Bytes(string what, long count)
        {
            if (count > Remaining)
                throw new GgufFormatException(Path,
                    $"{what} needs {count} bytes at byte {Position}; the file ends {Remaining} bytes later");
            var span = new ReadOnlySpan<byte>(start + Position, checked((int)count));
            Position += count;
            return span;
        }

        public uint U32(string what) => BitConverter.ToUInt32(Bytes(what, 4));

        public ulong U64(string what) => BitConverter.ToUInt64(Bytes(what, 8));

        public string String(string what)
        {
            long at = Position;
            ulong length = U64(what);
            if (length > (ulong)Remaining || length > int.MaxValue)
                throw new GgufFormatException(Path,
                    $"{what} at byte {at} claims {length} bytes; the file ends {Remaining} bytes later");
            var bytes = Bytes(what, (long)length);
            if (!Utf8.IsValid(bytes))
                throw new GgufFormatException(Path, $"{what} at byte {at} is not valid UTF-8");
            return Encoding.UTF8.GetString(bytes);
        }
    }
}
