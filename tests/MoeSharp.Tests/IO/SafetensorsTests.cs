using System.Buffers;
using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using MoeSharp.IO;

namespace MoeSharp.Tests.IO;

public sealed class SafetensorsTests : TempFolderTest
{
    // ---- writer round trip ----

    [Fact]
    public void RoundTripIsBitwiseIdentical()
    {
        float[] special =
        [
            BitConverter.Int32BitsToSingle(0x7FC00001), // NaN with a payload
            -0f, float.Epsilon, float.PositiveInfinity, float.NegativeInfinity, float.MaxValue,
        ];
        SafetensorsWriter.Tensor[] tensors =
        [
            new("w", [2, 3], special),
            new("empty", [0, 4], Array.Empty<float>()),
            new("scalar", [], new[] { 3.25f }),
            new("layers.0.vec", [5], new[] { 1f, -2f, 0.1f, 1e-38f, 7f }),
        ];
        var metadata = new Dictionary<string, string> { ["T"] = "40", ["note"] = "quote \" slash \\ ü + <tag>" };
        string path = Path.Combine(Folder, "rt.safetensors");

        SafetensorsWriter.Write(path, tensors, metadata);

        using var file = SafetensorsFile.Open(path);
        Assert.Equal(metadata, file.Metadata);
        Assert.Equal(tensors.Select(t => t.Name), file.Entries.Select(e => e.Name));
        long offset = 0;
        foreach (var tensor in tensors)
        {
            var entry = file[tensor.Name];
            Assert.Equal(SafetensorsDType.F32, entry.DType);
            Assert.Equal(tensor.Shape, entry.Shape);
            Assert.Equal(offset, entry.Begin); // contiguous, in the given order
            offset = entry.End;
            Assert.Equal(Bits(tensor.Data.Span), Bits(file.ReadFloat32(tensor.Name)));
        }
        Assert.Equal(8 + HeaderLength(path) + offset, new FileInfo(path).Length);
    }

    [Fact]
    public void ReadIntoSpanMatchesArrayAndChecksLength()
    {
        string path = Path.Combine(Folder, "span.safetensors");
        SafetensorsWriter.Write(path, [new("a", [2, 2], new[] { 1f, 2f, 3f, 4f })]);
        using var file = SafetensorsFile.Open(path);

        Span<float> destination = stackalloc float[4];
        file.ReadFloat32("a", destination);
        Assert.Equal([1f, 2f, 3f, 4f], destination.ToArray());

        var e = Assert.Throws<ArgumentException>(() => file.ReadFloat32("a", new float[3]));
        Assert.Contains("'a' has 4 elements; destination has 3", e.Message);
    }

    [Fact]
    public void HeaderIsPaddedWithSpacesTo8Bytes()
    {
        // Names of every length mod 8 make the unpadded header length take every residue.
        for (int n = 1; n <= 8; n++)
        {
            string path = Path.Combine(Folder, $"pad{n}.safetensors");
            SafetensorsWriter.Write(path, [new(new string('n', n), [1], new[] { 1f })]);
            byte[] bytes = File.ReadAllBytes(path);
            long headerLength = HeaderLength(path);

            Assert.Equal(0, headerLength % 8);
            string header = Encoding.UTF8.GetString(bytes, 8, (int)headerLength);
            string json = header.TrimEnd(' ');
            Assert.EndsWith("}", json);
            Assert.InRange(header.Length - json.Length, 0, 7); // only the padding is spaces
            Assert.Equal(8 + headerLength + 4, bytes.Length);
            using var file = SafetensorsFile.Open(path);
            Assert.Equal([1f], file.ReadFloat32(new string('n', n)));
        }
    }

    [Fact]
    public void OverwriteReplacesFileAndLeavesNoTempFile()
    {
        string path = Path.Combine(Folder, "model.safetensors");
        SafetensorsWriter.Write(path, [new("old", [3], new[] { 1f, 2f, 3f })]);
        SafetensorsWriter.Write(path, [new("new", [2], new[] { 5f, 6f })]);

        using (var file = SafetensorsFile.Open(path))
        {
            Assert.Equal(["new"], file.Entries.Select(e => e.Name));
            Assert.Equal([5f, 6f], file.ReadFloat32("new"));
        }
        Assert.Equal([path], Directory.GetFiles(Folder));
    }

    [Fact]
    public void OverwriteWhileOpenLeavesOpenReaderOnOldData()
    {
        string path = Path.Combine(Folder, "model.safetensors");
        SafetensorsWriter.Write(path, [new("w", [2], new[] { 1f, 2f })]);
        using var before = SafetensorsFile.Open(path);

        SafetensorsWriter.Write(path, [new("w", [2], new[] { 3f, 4f })]);

        Assert.Equal([1f, 2f], before.ReadFloat32("w"));
        using var after = SafetensorsFile.Open(path);
        Assert.Equal([3f, 4f], after.ReadFloat32("w"));
    }

    [Fact]
    public void FailedWriteKeepsOldFileAndLeavesNoTempFile()
    {
        string path = Path.Combine(Folder, "model.safetensors");
        SafetensorsWriter.Write(path, [new("old", [3], new[] { 1f, 2f, 3f })]);
        byte[] before = File.ReadAllBytes(path);

        // Fails after the header and the first tensor are already in the temporary file.
        var failing = new FailingMemory(2).Memory;
        Assert.Throws<IOException>(() => SafetensorsWriter.Write(path,
            [new("a", [1], new[] { 1f }), new("b", [2], failing)]));
        // Fails validation before any file is created.
        Assert.Throws<ArgumentException>(() => SafetensorsWriter.Write(path, [new("a", [2], new[] { 1f })]));
        Assert.Throws<ArgumentException>(() => SafetensorsWriter.Write(path,
            [new("a", [1], new[] { 1f }), new("a", [1], new[] { 1f })]));

        Assert.Equal(before, File.ReadAllBytes(path));
        Assert.Equal([path], Directory.GetFiles(Folder));
    }

    // ---- malformed files ----

    [Fact]
    public void FileShorterThan8Bytes()
    {
        string path = Write("short.safetensors", [1, 2, 3, 4, 5]);
        AssertFormatError(path, "file is 5 bytes; expected at least 8");
    }

    [Fact]
    public void HeaderLengthZero()
    {
        string path = Write("zero.safetensors", SafetensorsBytes.WithLength(0, "{}"u8));
        AssertFormatError(path, "header length is 0");
    }

    [Fact]
    public void HeaderLengthLargerThanFile()
    {
        string path = Write("long.safetensors", SafetensorsBytes.WithLength(3, "{}"u8));
        AssertFormatError(path, "header length 3 is larger than the 2 bytes");
    }

    [Fact]
    public void HeaderLengthAboveBound()
    {
        // The bound is checked before the file length, so a small file shows it; no 100 MiB buffer is allocated.
        string path = Write("huge.safetensors", SafetensorsBytes.WithLength(ulong.MaxValue, "{}"u8));
        AssertFormatError(path, $"header length {ulong.MaxValue} exceeds the 100 MiB bound");
    }

    [Fact]
    public void HeaderNotUtf8()
    {
        string path = Write("utf8.safetensors", SafetensorsBytes.WithLength(8, [(byte)'{', (byte)'"', 0xC3, 0x28, (byte)'"', (byte)':', (byte)'1', (byte)'}']));
        AssertFormatError(path, "header is not valid UTF-8");
    }

    [Theory]
    [InlineData("""{"a":""", 0, "header is not valid JSON")]
    [InlineData("""[1,2]""", 0, "header is a JSON Array; expected an object")]
    [InlineData("""{"a":3}""", 0, "tensor 'a' is a JSON Number; expected an object")]
    [InlineData("""{"a":{"shape":[1],"data_offsets":[0,4]}}""", 4, "tensor 'a' is missing 'dtype'")]
    [InlineData("""{"a":{"dtype":4,"shape":[1],"data_offsets":[0,4]}}""", 4, "tensor 'a' field 'dtype' is a JSON Number; expected a string")]
    [InlineData("""{"a":{"dtype":"F32","data_offsets":[0,4]}}""", 4, "tensor 'a' is missing 'shape'")]
    [InlineData("""{"a":{"dtype":"F32","shape":"1","data_offsets":[0,4]}}""", 4, "tensor 'a' field 'shape' is a JSON String")]
    [InlineData("""{"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}""", 4, "tensor 'a' shape[0] is 1.5; expected an integer")]
    [InlineData("""{"a":{"dtype":"F32","shape":[1]}}""", 4, "tensor 'a' is missing 'data_offsets'")]
    [InlineData("""{"a":{"dtype":"F32","shape":[1],"data_offsets":{"begin":0}}}""", 4, "tensor 'a' field 'data_offsets' is a JSON Object")]
    [InlineData("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[0]}}""", 4, "tensor 'a' data_offsets is [0]; expected [begin, end]")]
    [InlineData("""{"a":{"dtype":"F32","shape":[1],"data_offsets":["0","4"]}}""", 4, "tensor 'a' data_offsets is [\"0\",\"4\"]")]
    [InlineData("""{"a":{"dtype":"F8_E4M3","shape":[1],"data_offsets":[0,1]}}""", 4, "tensor 'a' has unknown dtype 'F8_E4M3'")]
    [InlineData("""{"a":{"dtype":"f32","shape":[1],"data_offsets":[0,4]}}""", 4, "tensor 'a' has unknown dtype 'f32'")]
    [InlineData("""{"a":{"dtype":"F32","shape":[2,-1],"data_offsets":[0,4]}}""", 4, "tensor 'a' has negative dimension -1 at shape[1]")]
    [InlineData("""{"a":{"dtype":"F32","shape":[2147483648],"data_offsets":[0,4]}}""", 4, "tensor 'a' dimension 2147483648 at shape[0] exceeds")]
    [InlineData("""{"a":{"dtype":"F32","shape":[2147483647,2147483647,2147483647],"data_offsets":[0,4]}}""", 4, "tensor 'a' shape [2147483647, 2147483647, 2147483647] overflows the element count")]
    [InlineData("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}}""", 16, "tensor 'a' data_offsets [8, 4]; expected 0 <= begin <= end <= 16")]
    [InlineData("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}}""", 16, "tensor 'a' data_offsets [-4, 0]")]
    [InlineData("""{"a":{"dtype":"F32","shape":[5],"data_offsets":[0,20]}}""", 16, "tensor 'a' data_offsets [0, 20]; expected 0 <= begin <= end <= 16")]
    [InlineData("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}""", 16, "tensor 'a' spans 4 bytes; expected 8 for F32 with shape [2]")]
    [InlineData("""{"a":{"dtype":"BF16","shape":[2,2],"data_offsets":[0,16]}}""", 16, "tensor 'a' spans 16 bytes; expected 8 for BF16")]
    [InlineData("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}""", 16, "tensors 'a' [0, 8) and 'b' [4, 12) overlap")]
    [InlineData("""{"b":{"dtype":"I8","shape":[16],"data_offsets":[0,16]},"a":{"dtype":"F32","shape":[1],"data_offsets":[12,16]}}""", 16, "tensors 'b' [0, 16) and 'a' [12, 16) overlap")]
    [InlineData("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}""", 8, "duplicate tensor name 'a'")]
    [InlineData("""{"__metadata__":[1]}""", 0, "'__metadata__' is a JSON Array; expected an object of strings")]
    [InlineData("""{"__metadata__":{"T":40}}""", 0, "'__metadata__' field 'T' is a JSON Number; expected a string")]
    [InlineData("""{"\uD800":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}}""", 0, "a JSON string is not valid UTF-16 text")]
    [InlineData("""{"a":{"dtype":"F3\uDC00","shape":[0],"data_offsets":[0,0]}}""", 0, "a JSON string is not valid UTF-16 text")]
    [InlineData("""{"__metadata__":{"k":"\uD800x"}}""", 0, "a JSON string is not valid UTF-16 text")]
    public void MalformedHeader(string header, int dataLength, string expected)
    {
        string path = Write("bad.safetensors", SafetensorsBytes.Build(header, new byte[dataLength]));
        AssertFormatError(path, expected);
    }

    [Fact]
    public void EmptySpansDoNotOverlapAnything()
    {
        string header = """{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"e":{"dtype":"F32","shape":[0,3],"data_offsets":[4,4]}}""";
        using var file = SafetensorsFile.Open(Write("empty.safetensors", SafetensorsBytes.Build(header, new byte[8])));
        Assert.Equal(["a", "e"], file.Entries.Select(e => e.Name));
        Assert.Empty(file.ReadFloat32("e"));
    }

    [Fact]
    public void WrongReadForDtypeIsAFormatError()
    {
        string header = """{"f":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"i":{"dtype":"I32","shape":[1],"data_offsets":[4,8]},"u":{"dtype":"U8","shape":[1],"data_offsets":[8,9]}}""";
        string path = Write("types.safetensors", SafetensorsBytes.Build(header, new byte[9]));
        using var file = SafetensorsFile.Open(path);

        Assert.Contains("tensor 'f' has dtype F32; ReadInt32 expects I32 or I64",
            Assert.Throws<SafetensorsFormatException>(() => file.ReadInt32("f")).Message);
        Assert.Contains("tensor 'i' has dtype I32; ReadFloat32 expects F32, F16, BF16 or F64",
            Assert.Throws<SafetensorsFormatException>(() => file.ReadFloat32("i")).Message);
        Assert.Contains("tensor 'u' has dtype U8",
            Assert.Throws<SafetensorsFormatException>(() => file.ReadFloat32("u", new float[1])).Message);
    }

    [Fact]
    public void MissingTensorNamesFileAndTensor()
    {
        string path = Path.Combine(Folder, "m.safetensors");
        SafetensorsWriter.Write(path, [new("a", [1], new[] { 1f })]);
        using var file = SafetensorsFile.Open(path);

        Assert.False(file.Contains("nope"));
        foreach (var read in new Action[] { () => _ = file["nope"], () => file.ReadFloat32("nope"), () => file.ReadInt32("nope") })
        {
            var e = Assert.Throws<KeyNotFoundException>(read);
            Assert.Contains(path, e.Message);
            Assert.Contains("'nope'", e.Message);
        }
    }

    [Fact]
    public void ReadAfterDisposeThrows()
    {
        string path = Path.Combine(Folder, "d.safetensors");
        SafetensorsWriter.Write(path, [new("a", [1], new[] { 1f })]);
        var file = SafetensorsFile.Open(path);
        file.Dispose();
        Assert.Throws<ObjectDisposedException>(() => file.ReadFloat32("a"));
    }

    // ---- conversions ----

    [Fact]
    public void ConvertsKnownF16Bf16F64AndI64Values()
    {
        // F16: 0x3C00 = 1.0, 0xC000 = -2.0, 0x7BFF = 65504 (largest finite), 0x0001 = 2^-24 (smallest subnormal),
        // 0x7C00 = +inf. BF16 is the top half of a float: 0x3F80 = 1.0, 0x4049 = 3.140625 (0x40490000),
        // 0xC2F7 = -123.5 (0xC2F70000). F64 0.1 rounds to the float nearest 0.1; 1e300 overflows to +inf.
        var data = new List<byte>();
        foreach (ushort h in new ushort[] { 0x3C00, 0xC000, 0x7BFF, 0x0001, 0x7C00 }) AddLE(data, h, 2);
        foreach (ushort b in new ushort[] { 0x3F80, 0x4049, 0xC2F7 }) AddLE(data, b, 2);
        foreach (double d in new[] { 0.1, 1e300 }) AddLE(data, (ulong)BitConverter.DoubleToInt64Bits(d), 8);
        foreach (long v in new long[] { -1, int.MaxValue, int.MinValue }) AddLE(data, (ulong)v, 8);
        foreach (long v in new long[] { 0, 1L << 31 }) AddLE(data, (ulong)v, 8);
        foreach (int v in new[] { 7, -9 }) AddLE(data, (uint)v, 4);
        string header = """
            {"h":{"dtype":"F16","shape":[5],"data_offsets":[0,10]},
             "b":{"dtype":"BF16","shape":[3],"data_offsets":[10,16]},
             "d":{"dtype":"F64","shape":[2],"data_offsets":[16,32]},
             "l":{"dtype":"I64","shape":[3],"data_offsets":[32,56]},
             "big":{"dtype":"I64","shape":[2],"data_offsets":[56,72]},
             "i":{"dtype":"I32","shape":[2,1],"data_offsets":[72,80]}}
            """;
        string path = Write("conv.safetensors", SafetensorsBytes.Build(header, data.ToArray()));
        using var file = SafetensorsFile.Open(path);

        Assert.Equal([1f, -2f, 65504f, BitConverter.Int32BitsToSingle(0x33800000), float.PositiveInfinity], file.ReadFloat32("h"));
        Assert.Equal([1f, 3.140625f, -123.5f], file.ReadFloat32("b"));
        Assert.Equal([0.1f, float.PositiveInfinity], file.ReadFloat32("d"));
        Assert.Equal([-1, int.MaxValue, int.MinValue], file.ReadInt32("l"));
        Assert.Equal([7, -9], file.ReadInt32("i"));
        Assert.Contains("tensor 'big' element 1 (I64) is out of range for Int32",
            Assert.Throws<SafetensorsFormatException>(() => file.ReadInt32("big")).Message);
    }

    [Fact]
    public void LargeF16TensorIsConvertedAcrossChunks()
    {
        // 1.5M elements = 3 MiB of F16, more than one 1 MiB read chunk; element i holds the half with bits i % 0x7C00.
        const int count = 1_500_000;
        var data = new byte[2 * count];
        for (int i = 0; i < count; i++)
            BinaryPrimitives.WriteUInt16LittleEndian(data.AsSpan(2 * i), (ushort)(i % 0x7C00));
        string header = $$$"""{"h":{"dtype":"F16","shape":[{{{count}}}],"data_offsets":[0,{{{data.Length}}}]}}""";
        using var file = SafetensorsFile.Open(Write("big.safetensors", SafetensorsBytes.Build(header, data)));

        float[] values = file.ReadFloat32("h");
        for (int i = 0; i < count; i++)
        {
            if (values[i] != (float)BitConverter.UInt16BitsToHalf((ushort)(i % 0x7C00)))
                Assert.Fail($"element {i}: {values[i]}");
        }
    }

    // ---- the shared golden fixture ----

    [Fact]
    public void ReadsGoldenMoeLayerFixture()
    {
        const string relative = "golden/moe-layer/moe_layer.safetensors";
        string? path = TestPaths.Shared(relative);
        if (path is null)
            Assert.Skip($"shared golden fixtures not found at {Path.Combine(TestPaths.SharedRoot, relative)}");

        using var file = SafetensorsFile.Open(path);
        foreach (var (key, value) in new[] { ("T", "40"), ("D", "32"), ("H", "48"), ("E", "6"), ("K", "2") })
            Assert.Equal(value, file.Metadata[key]);
        Assert.Equal([40, 32], file["x"].Shape);
        float[] x = file.ReadFloat32("x");
        Assert.Equal(40 * 32, x.Length);
        Assert.All(x, v => Assert.True(float.IsFinite(v)));
        Assert.Contains(x, v => v != 0);
    }

    private static void AssertFormatError(string path, string expected)
    {
        var e = Assert.Throws<SafetensorsFormatException>(() => SafetensorsFile.Open(path).Dispose());
        Assert.StartsWith(path + ": ", e.Message);
        Assert.Contains(expected, e.Message);
        Assert.Equal(path, e.FilePath);
    }

    private static long HeaderLength(string path)
    {
        Span<byte> prefix = stackalloc byte[8];
        using var stream = File.OpenRead(path);
        stream.ReadExactly(prefix);
        return (long)BinaryPrimitives.ReadUInt64LittleEndian(prefix);
    }

    private static int[] Bits(ReadOnlySpan<float> values) => MemoryMarshal.Cast<float, int>(values).ToArray();

    private static void AddLE(List<byte> bytes, ulong value, int size)
    {
        for (int i = 0; i < size; i++)
            bytes.Add((byte)(value >> (8 * i)));
    }

    /// <summary>Memory whose span cannot be taken, to make the writer fail after it has started writing.</summary>
    private sealed class FailingMemory(int length) : MemoryManager<float>
    {
        public override Span<float> GetSpan() => throw new IOException("simulated failure while writing");
        public override MemoryHandle Pin(int elementIndex = 0) => throw new NotSupportedException();
        public override void Unpin() { }
        protected override void Dispose(bool disposing) { }
        public override Memory<float> Memory => CreateMemory(length);
    }
}
