using System.Buffers;
using System.Buffers.Binary;
using System.IO.MemoryMappedFiles;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Unicode;
using Microsoft.Win32.SafeHandles;

namespace MoeSharp.IO;

/// <summary>
/// A safetensors file opened for reading: the header is parsed and validated by <see cref="Open"/>, tensor data is
/// read on demand with <see cref="RandomAccess"/>, so files of many GB cost only their header in memory.
/// Reads are position-free and may run concurrently. <see cref="Matrix"/> maps the file (on first use) and gives a
/// float tensor's bytes in place, for a model that computes with them directly.
/// </summary>
/// <remarks>
/// Layout: an 8-byte little-endian header length N, N bytes of UTF-8 JSON (an object mapping each tensor name to
/// <c>{"dtype", "shape", "data_offsets": [begin, end]}</c>, plus an optional <c>"__metadata__"</c> string map),
/// then the data section, with offsets relative to its start.
/// </remarks>
public sealed unsafe class SafetensorsFile : IDisposable, IMappedFile
{
    /// <summary>Upper bound on the header length, so a corrupt length cannot cause a huge allocation.</summary>
    public const long MaxHeaderBytes = 100L << 20;

    private const string MetadataKey = "__metadata__";
    private const int ChunkBytes = 1 << 20;

    private readonly SafeFileHandle _handle;
    private readonly long _dataStart;
    private readonly Dictionary<string, SafetensorsEntry> _byName;
    private readonly Lock _mapLock = new();
    private MemoryMappedFile? _map;
    private MemoryMappedViewAccessor? _view;
    private byte* _base; // the mapped file's first byte, null until Matrix maps it
    private bool _disposed;

    bool IMappedFile.IsDisposed => _disposed;

    private SafetensorsFile(string path, SafeFileHandle handle, long dataStart,
        Dictionary<string, SafetensorsEntry> byName, SafetensorsEntry[] entries, Dictionary<string, string> metadata)
    {
        Path = path;
        _handle = handle;
        _dataStart = dataStart;
        _byName = byName;
        Entries = entries;
        Metadata = metadata;
    }

    /// <summary>The path the file was opened from, as given; messages name it.</summary>
    public string Path { get; }

    /// <summary>The <c>"__metadata__"</c> map; empty if the header has none.</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>All tensors, ordered by their data offsets.</summary>
    public IReadOnlyList<SafetensorsEntry> Entries { get; }

    /// <summary>Maps <paramref name="path"/> and validates its header; throws <see cref="SafetensorsFormatException"/> naming the file and the bad entry.</summary>
    public static SafetensorsFile Open(string path)
    {
        // FileShare.Delete lets SafetensorsWriter replace the file while it is open (the open handle keeps the old data).
        SafeFileHandle handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete);
        try
        {
            long fileLength = RandomAccess.GetLength(handle);
            if (fileLength < 8)
                throw new SafetensorsFormatException(path,
                    $"file is {fileLength} bytes; expected at least 8 (the header length)");
            Span<byte> prefix = stackalloc byte[8];
            ReadExactly(handle, path, prefix, 0);
            ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(prefix);
            if (headerLength == 0)
                throw new SafetensorsFormatException(path, "header length is 0; expected a JSON object");
            if (headerLength > MaxHeaderBytes)
                throw new SafetensorsFormatException(path,
                    $"header length {headerLength} exceeds the {MaxHeaderBytes >> 20} MiB bound");
            if ((long)headerLength > fileLength - 8)
                throw new SafetensorsFormatException(path,
                    $"header length {headerLength} is larger than the {fileLength - 8} bytes after the length field");

            byte[] header = new byte[headerLength];
            ReadExactly(handle, path, header, 8);
            long dataStart = 8 + (long)headerLength;
            var (byName, entries, metadata) = ParseHeader(path, header, fileLength - dataStart);
            return new SafetensorsFile(path, handle, dataStart, byName, entries, metadata);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>Whether the file holds a tensor named <paramref name="name"/>.</summary>
    public bool Contains(string name) => _byName.ContainsKey(name);

    /// <exception cref="KeyNotFoundException">No tensor of that name; the message names the file and tensor.</exception>
    public SafetensorsEntry this[string name] =>
        _byName.TryGetValue(name, out var entry)
            ? entry
            : throw new KeyNotFoundException($"{Path}: no tensor named '{name}'");

    /// <summary>Reads a floating-point tensor as float32: F32 as stored; F16 and BF16 exactly; F64 rounded.</summary>
    public float[] ReadFloat32(string name)
    {
        var entry = FloatEntry(name);
        var result = new float[ArrayLength(entry)];
        ReadFloat32(entry, result);
        return result;
    }

    /// <inheritdoc cref="ReadFloat32(string)"/>
    /// <param name="name">The tensor.</param>
    /// <param name="destination">Receives the elements; its length must equal the tensor's element count.</param>
    public void ReadFloat32(string name, Span<float> destination) => ReadFloat32(FloatEntry(name), destination);

    /// <summary>Reads an integer tensor as int32: I32 as stored; I64 checked to fit.</summary>
    public int[] ReadInt32(string name)
    {
        var entry = this[name];
        if (entry.DType is not (SafetensorsDType.I32 or SafetensorsDType.I64))
            throw new SafetensorsFormatException(Path,
                $"tensor '{name}' has dtype {entry.DType}; ReadInt32 expects I32 or I64");
        var result = new int[ArrayLength(entry)];
        if (entry.DType == SafetensorsDType.I64)
        {
            ReadDecoded<Int64Decoder, int>(entry, result);
            return result;
        }
        ReadRaw(entry, MemoryMarshal.AsBytes(result.AsSpan()));
        if (!BitConverter.IsLittleEndian) BinaryPrimitives.ReverseEndianness(result, result);
        return result;
    }

    /// <summary>Reads a one-byte tensor (U8, I8, BOOL) as its raw bytes: packed blocks such as MXFP4's.</summary>
    public byte[] ReadBytes(string name)
    {
        var entry = this[name];
        if (entry.DType is not (SafetensorsDType.U8 or SafetensorsDType.I8 or SafetensorsDType.BOOL))
            throw new SafetensorsFormatException(Path, $"tensor '{name}' has dtype {entry.DType}; ReadBytes expects U8, I8 or BOOL");
        var result = new byte[ArrayLength(entry)];
        ReadRaw(entry, result);
        return result;
    }

    /// <summary>Where tensor <paramref name="name"/>'s bytes start in the file, for reading them without the map.</summary>
    public long FileOffset(string name) => _dataStart + this[name].Begin;

    /// <summary>
    /// The F32, F16 or BF16 tensor <paramref name="name"/> as a [<paramref name="rows"/>, <paramref name="cols"/>]
    /// matrix over the file's mapped bytes, used in place (no copy); null when its dtype is another or its element
    /// count is not rows × cols. The matrix must not be used after the file is disposed.
    /// </summary>
    public Formats.QuantizedMatrix? Matrix(string name, int rows, int cols)
    {
        var entry = this[name];
        Formats.WeightFormat format;
        switch (entry.DType)
        {
            case SafetensorsDType.F32: format = Formats.WeightFormat.F32; break;
            case SafetensorsDType.F16: format = Formats.WeightFormat.F16; break;
            case SafetensorsDType.BF16: format = Formats.WeightFormat.BF16; break;
            default: return null;
        }
        // The formats' kernels read little-endian values, as the file stores them.
        if (!BitConverter.IsLittleEndian || entry.ElementCount != (long)rows * cols || entry.End - entry.Begin > int.MaxValue) return null;
        byte* start = Mapped() + _dataStart + entry.Begin;
        return new Formats.QuantizedMatrix(new MappedMemory(this, start, (int)(entry.End - entry.Begin)).Memory, format, rows, cols);
    }

    /// <summary>The mapping's base pointer; the whole file is mapped read-only once, on first use.</summary>
    private byte* Mapped()
    {
        lock (_mapLock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_base != null) return _base;
            _map = MemoryMappedFile.CreateFromFile(_handle, null, 0, MemoryMappedFileAccess.Read, HandleInheritability.None, leaveOpen: true);
            _view = _map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
            byte* pointer = null;
            _view.SafeMemoryMappedViewHandle.AcquirePointer(ref pointer);
            _base = pointer + _view.PointerOffset;
            return _base;
        }
    }

    /// <summary>Unmaps the file and closes it; matrices taken from it must not be used afterwards.</summary>
    public void Dispose()
    {
        lock (_mapLock)
        {
            if (_disposed) return;
            _disposed = true;
            if (_base != null) _view!.SafeMemoryMappedViewHandle.ReleasePointer();
            _view?.Dispose();
            _map?.Dispose();
            _handle.Dispose();
        }
    }

    private SafetensorsEntry FloatEntry(string name)
    {
        var entry = this[name];
        return entry.DType is SafetensorsDType.F32 or SafetensorsDType.F16 or SafetensorsDType.BF16 or SafetensorsDType.F64
            ? entry
            : throw new SafetensorsFormatException(Path,
                $"tensor '{name}' has dtype {entry.DType}; ReadFloat32 expects F32, F16, BF16 or F64");
    }

    private void ReadFloat32(SafetensorsEntry entry, Span<float> destination)
    {
        if (destination.Length != entry.ElementCount)
            throw new ArgumentException(
                $"{Path}: tensor '{entry.Name}' has {entry.ElementCount} elements; destination has {destination.Length}",
                nameof(destination));
        switch (entry.DType)
        {
            case SafetensorsDType.F32:
                ReadRaw(entry, MemoryMarshal.AsBytes(destination));
                if (!BitConverter.IsLittleEndian)
                {
                    var bits = MemoryMarshal.Cast<float, int>(destination);
                    BinaryPrimitives.ReverseEndianness(bits, bits);
                }
                break;
            case SafetensorsDType.F16: ReadDecoded<HalfDecoder, float>(entry, destination); break;
            case SafetensorsDType.BF16: ReadDecoded<BFloat16Decoder, float>(entry, destination); break;
            case SafetensorsDType.F64: ReadDecoded<DoubleDecoder, float>(entry, destination); break;
        }
    }

    private int ArrayLength(SafetensorsEntry entry) =>
        entry.ElementCount <= Array.MaxLength
            ? (int)entry.ElementCount
            : throw new NotSupportedException(
                $"{Path}: tensor '{entry.Name}' has {entry.ElementCount} elements, more than one array can hold");

    private void ReadRaw(SafetensorsEntry entry, Span<byte> destination)
    {
        ObjectDisposedException.ThrowIf(_handle.IsClosed, this);
        ReadExactly(_handle, Path, destination, _dataStart + entry.Begin);
    }

    // Converting dtypes are read through one pooled chunk buffer, so memory stays bounded by ChunkBytes whatever
    // the tensor size; the decoder is a struct type argument, so the JIT specialises and inlines it per dtype.
    private void ReadDecoded<TDecoder, T>(SafetensorsEntry entry, Span<T> destination)
        where TDecoder : struct, IElementDecoder<T>
    {
        ObjectDisposedException.ThrowIf(_handle.IsClosed, this);
        int size = TDecoder.Size;
        byte[] buffer = ArrayPool<byte>.Shared.Rent((int)Math.Min(entry.End - entry.Begin, ChunkBytes));
        try
        {
            int perChunk = Math.Max(1, buffer.Length / size); // an empty tensor rents an empty buffer
            long offset = _dataStart + entry.Begin;
            for (int start = 0; start < destination.Length; start += perChunk)
            {
                int count = Math.Min(perChunk, destination.Length - start);
                Span<byte> bytes = buffer.AsSpan(0, count * size);
                ReadExactly(_handle, Path, bytes, offset);
                offset += bytes.Length;
                Span<T> chunk = destination.Slice(start, count);
                for (int i = 0; i < chunk.Length; i++)
                {
                    if (!TDecoder.TryDecode(bytes.Slice(i * size, size), out chunk[i]))
                        throw new SafetensorsFormatException(Path,
                            $"tensor '{entry.Name}' element {start + i} ({entry.DType}) is out of range for {typeof(T).Name}");
                }
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static void ReadExactly(SafeFileHandle handle, string path, Span<byte> destination, long fileOffset)
    {
        while (!destination.IsEmpty)
        {
            int read = RandomAccess.Read(handle, destination, fileOffset);
            // Only possible if the file shrank after Open validated the offsets against its length.
            if (read == 0)
                throw new SafetensorsFormatException(path, $"unexpected end of file at byte {fileOffset}");
            destination = destination[read..];
            fileOffset += read;
        }
    }

    private static (Dictionary<string, SafetensorsEntry>, SafetensorsEntry[], Dictionary<string, string>) ParseHeader(
        string path, byte[] header, long dataLength)
    {
        // Checked up front so that invalid UTF-8 anywhere in the header gets one clear message.
        if (!Utf8.IsValid(header))
            throw new SafetensorsFormatException(path, "header is not valid UTF-8");
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(header);
        }
        catch (JsonException e)
        {
            throw new SafetensorsFormatException(path, $"header is not valid JSON: {e.Message}", e);
        }

        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object)
                throw new SafetensorsFormatException(path,
                    $"header is a JSON {document.RootElement.ValueKind}; expected an object");

            var byName = new Dictionary<string, SafetensorsEntry>(StringComparer.Ordinal);
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            bool seenMetadata = false;
            foreach (var property in document.RootElement.EnumerateObject())
            {
                string name = JsonText.Name(property, path);
                if (name == MetadataKey)
                {
                    if (seenMetadata)
                        throw new SafetensorsFormatException(path, $"duplicate '{MetadataKey}' entry");
                    seenMetadata = true;
                    ParseMetadata(path, property.Value, metadata);
                    continue;
                }
                var entry = ParseEntry(path, name, property.Value, dataLength);
                if (!byName.TryAdd(entry.Name, entry))
                    throw new SafetensorsFormatException(path, $"duplicate tensor name '{entry.Name}'");
            }

            var entries = byName.Values.ToArray();
            Array.Sort(entries, static (a, b) =>
                a.Begin != b.Begin ? a.Begin.CompareTo(b.Begin)
                : a.End != b.End ? a.End.CompareTo(b.End)
                : string.CompareOrdinal(a.Name, b.Name));
            // After sorting by begin, spans are disjoint iff each starts at or after the furthest end so far.
            // Empty spans hold no bytes and so cannot overlap anything.
            SafetensorsEntry? furthest = null;
            foreach (var entry in entries)
            {
                if (entry.Begin == entry.End) continue;
                if (furthest is not null && entry.Begin < furthest.End)
                    throw new SafetensorsFormatException(path,
                        $"tensors '{furthest.Name}' [{furthest.Begin}, {furthest.End}) and '{entry.Name}' " +
                        $"[{entry.Begin}, {entry.End}) overlap; expected disjoint byte spans");
                furthest = entry;
            }
            return (byName, entries, metadata);
        }
    }

    private static void ParseMetadata(string path, JsonElement value, Dictionary<string, string> metadata)
    {
        if (value.ValueKind != JsonValueKind.Object)
            throw new SafetensorsFormatException(path,
                $"'{MetadataKey}' is a JSON {value.ValueKind}; expected an object of strings");
        foreach (var item in value.EnumerateObject())
        {
            string key = JsonText.Name(item, path);
            if (item.Value.ValueKind != JsonValueKind.String)
                throw new SafetensorsFormatException(path,
                    $"'{MetadataKey}' field '{key}' is a JSON {item.Value.ValueKind}; expected a string");
            if (!metadata.TryAdd(key, JsonText.String(item.Value, path)))
                throw new SafetensorsFormatException(path, $"'{MetadataKey}' has duplicate field '{key}'");
        }
    }

    private static SafetensorsEntry ParseEntry(string path, string name, JsonElement value, long dataLength)
    {
        if (value.ValueKind != JsonValueKind.Object)
            throw new SafetensorsFormatException(path,
                $"tensor '{name}' is a JSON {value.ValueKind}; expected an object with dtype, shape and data_offsets");

        var dtypeElement = Field(path, name, value, "dtype", JsonValueKind.String, "a string");
        string dtypeText = JsonText.String(dtypeElement, path);
        if (!SafetensorsDTypes.TryParse(dtypeText, out var dtype))
            throw new SafetensorsFormatException(path,
                $"tensor '{name}' has unknown dtype '{dtypeText}'; expected one of {SafetensorsDTypes.Names}");

        var shapeElement = Field(path, name, value, "shape", JsonValueKind.Array, "an array of integers");
        var shape = new int[shapeElement.GetArrayLength()];
        int axis = 0;
        bool hasZero = false;
        foreach (var dim in shapeElement.EnumerateArray())
        {
            if (dim.ValueKind != JsonValueKind.Number || !dim.TryGetInt64(out long size))
                throw new SafetensorsFormatException(path,
                    $"tensor '{name}' shape[{axis}] is {dim.GetRawText()}; expected an integer");
            if (size < 0)
                throw new SafetensorsFormatException(path,
                    $"tensor '{name}' has negative dimension {size} at shape[{axis}]; expected >= 0");
            if (size > int.MaxValue)
                throw new SafetensorsFormatException(path,
                    $"tensor '{name}' dimension {size} at shape[{axis}] exceeds {int.MaxValue}");
            shape[axis++] = (int)size;
            hasZero |= size == 0;
        }

        // Any zero dimension makes the count 0 whatever the others are; otherwise multiply with an overflow
        // check, counting bytes too so that (end - begin) below compares against an exact value.
        long bytes = 0;
        if (!hasZero)
        {
            bytes = dtype.Size();
            foreach (int dim in shape)
            {
                if (bytes > long.MaxValue / dim)
                    throw new SafetensorsFormatException(path,
                        $"tensor '{name}' shape [{string.Join(", ", shape)}] overflows the element count");
                bytes *= dim;
            }
        }

        var offsetsElement = Field(path, name, value, "data_offsets", JsonValueKind.Array, "[begin, end]");
        if (offsetsElement.GetArrayLength() != 2
            || !TryGetOffset(offsetsElement[0], out long begin) || !TryGetOffset(offsetsElement[1], out long end))
            throw new SafetensorsFormatException(path,
                $"tensor '{name}' data_offsets is {offsetsElement.GetRawText()}; expected [begin, end] integers");
        if (begin < 0 || begin > end || end > dataLength)
            throw new SafetensorsFormatException(path,
                $"tensor '{name}' data_offsets [{begin}, {end}]; expected 0 <= begin <= end <= {dataLength} (data section length)");
        if (end - begin != bytes)
            throw new SafetensorsFormatException(path,
                $"tensor '{name}' spans {end - begin} bytes; expected {bytes} for {dtype} with shape [{string.Join(", ", shape)}]");

        return new SafetensorsEntry(name, dtype, shape, begin, end);
    }

    private static bool TryGetOffset(JsonElement element, out long value)
    {
        value = 0;
        return element.ValueKind == JsonValueKind.Number && element.TryGetInt64(out value);
    }

    private static JsonElement Field(string path, string name, JsonElement entry, string field, JsonValueKind kind,
        string expected)
    {
        if (!entry.TryGetProperty(field, out var value))
            throw new SafetensorsFormatException(path, $"tensor '{name}' is missing '{field}'; expected {expected}");
        if (value.ValueKind != kind)
            throw new SafetensorsFormatException(path,
                $"tensor '{name}' field '{field}' is a JSON {value.ValueKind}; expected {expected}");
        return value;
    }

    private interface IElementDecoder<T>
    {
        static abstract int Size { get; }

        /// <summary>Decodes one little-endian element; false if it cannot be represented as <typeparamref name="T"/>.</summary>
        static abstract bool TryDecode(ReadOnlySpan<byte> source, out T value);
    }

    private readonly struct HalfDecoder : IElementDecoder<float>
    {
        public static int Size => 2;

        // Every binary16 value, subnormals included, is exactly representable in binary32.
        public static bool TryDecode(ReadOnlySpan<byte> source, out float value)
        {
            value = (float)BinaryPrimitives.ReadHalfLittleEndian(source);
            return true;
        }
    }

    private readonly struct BFloat16Decoder : IElementDecoder<float>
    {
        public static int Size => 2;

        // bfloat16 is the upper half of a binary32, so widening is a 16-bit shift and exact.
        public static bool TryDecode(ReadOnlySpan<byte> source, out float value)
        {
            value = BitConverter.Int32BitsToSingle(BinaryPrimitives.ReadUInt16LittleEndian(source) << 16);
            return true;
        }
    }

    private readonly struct DoubleDecoder : IElementDecoder<float>
    {
        public static int Size => 8;

        public static bool TryDecode(ReadOnlySpan<byte> source, out float value)
        {
            value = (float)BinaryPrimitives.ReadDoubleLittleEndian(source);
            return true;
        }
    }

    private readonly struct Int64Decoder : IElementDecoder<int>
    {
        public static int Size => 8;

        public static bool TryDecode(ReadOnlySpan<byte> source, out int value)
        {
            long wide = BinaryPrimitives.ReadInt64LittleEndian(source);
            value = (int)wide;
            return value == wide;
        }
    }
}
