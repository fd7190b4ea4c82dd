using System.Buffers.Binary;
using CsCheck;
using MoeSharp.Formats;
using MoeSharp.IO;
using MoeSharp.Tests.Formats;

namespace MoeSharp.Tests.IO;

public sealed class GgufTests : TempFolderTest
{
    /// <summary>Every metadata value type, arrays included, and tensors in several formats; one 3-D (stacked experts).</summary>
    private static GgufWriter Sample(out Dictionary<string, byte[]> data)
    {
        data = new()
        {
            ["blk.0.ffn_gate_exps.weight"] = Stack(WeightFormat.Q4_K, 3, 5, 256),
            ["blk.0.ffn_down_exps.weight"] = Stack(WeightFormat.MXFP4, 2, 3, 64),
            ["blk.0.attn_q.weight"] = Stack(WeightFormat.Q8_0, 1, 4, 64),
            ["output.weight"] = Stack(WeightFormat.Q6_K, 1, 3, 256),
            ["token_embd.weight"] = Stack(WeightFormat.BF16, 1, 2, 7),
            ["norm.weight"] = Stack(WeightFormat.F32, 1, 1, 5),
            ["h.weight"] = Stack(WeightFormat.F16, 1, 3, 3),
        };
        return new GgufWriter()
            .Add("general.architecture", GgufValue.Of("mixtral"))
            .Add("general.alignment", GgufValue.Of(64u))
            .Add("u8", new GgufValue(GgufValueType.UInt8, (byte)200))
            .Add("i8", new GgufValue(GgufValueType.Int8, (sbyte)-3))
            .Add("u16", new GgufValue(GgufValueType.UInt16, (ushort)60000))
            .Add("i16", new GgufValue(GgufValueType.Int16, (short)-30000))
            .Add("i32", GgufValue.Of(-7))
            .Add("f32", GgufValue.Of(0.25f))
            .Add("flag", GgufValue.Of(true))
            .Add("u64", GgufValue.Of(ulong.MaxValue))
            .Add("i64", new GgufValue(GgufValueType.Int64, long.MinValue))
            .Add("f64", new GgufValue(GgufValueType.Float64, Math.PI))
            .Add("tokens", GgufValue.Array(GgufValueType.String, new[] { "<s>", "é", "" }))
            .Add("scores", GgufValue.Array(GgufValueType.Float32, new[] { 1f, -2f }))
            .Add("bools", GgufValue.Array(GgufValueType.Bool, new[] { true, false }))
            .Add("empty", GgufValue.Array(GgufValueType.Int64, Array.Empty<long>()))
            .AddTensor("blk.0.ffn_gate_exps.weight", WeightFormat.Q4_K, [256, 5, 3], data["blk.0.ffn_gate_exps.weight"])
            .AddTensor("blk.0.ffn_down_exps.weight", WeightFormat.MXFP4, [64, 3, 2], data["blk.0.ffn_down_exps.weight"])
            .AddTensor("blk.0.attn_q.weight", WeightFormat.Q8_0, [64, 4], data["blk.0.attn_q.weight"])
            .AddTensor("output.weight", WeightFormat.Q6_K, [256, 3], data["output.weight"])
            .AddTensor("token_embd.weight", WeightFormat.BF16, [7, 2], data["token_embd.weight"])
            .AddTensor("norm.weight", WeightFormat.F32, [5], data["norm.weight"])
            .AddTensor("h.weight", WeightFormat.F16, [3, 3], data["h.weight"]);
    }

    private static byte[] Stack(WeightFormat format, int count, int rows, int cols)
    {
        var parts = new List<byte>();
        for (int e = 0; e < count; e++) parts.AddRange(RowKernelTests.RandomMatrix(format, rows, cols, (ulong)(e + 1)).Data.ToArray());
        return [.. parts];
    }

    [Fact]
    public void WriteThenReadRoundTrips()
    {
        string path = Path.Combine(Folder, "m.gguf");
        Sample(out var data).Write(path);
        using var file = GgufFile.Open(path);
        Assert.Equal(3u, file.Version);
        Assert.Equal(64, file.Alignment);
        Assert.Equal("mixtral", file.Metadata["general.architecture"].Value);
        Assert.Equal((byte)200, file.Metadata["u8"].Value);
        Assert.Equal((sbyte)-3, file.Metadata["i8"].Value);
        Assert.Equal((ushort)60000, file.Metadata["u16"].Value);
        Assert.Equal((short)-30000, file.Metadata["i16"].Value);
        Assert.Equal(-7, file.Metadata["i32"].Value);
        Assert.Equal(0.25f, file.Metadata["f32"].Value);
        Assert.Equal(true, file.Metadata["flag"].Value);
        Assert.Equal(ulong.MaxValue, file.Metadata["u64"].Value);
        Assert.Equal(long.MinValue, file.Metadata["i64"].Value);
        Assert.Equal(Math.PI, file.Metadata["f64"].Value);
        Assert.Equal(new[] { "<s>", "é", "" }, file.Metadata["tokens"].Value);
        Assert.Equal(new[] { 1f, -2f }, file.Metadata["scores"].Value);
        Assert.Equal(new[] { true, false }, file.Metadata["bools"].Value);
        Assert.Empty((long[])file.Metadata["empty"].Value);

        Assert.Equal(data.Count, file.Tensors.Count);
        Assert.Equal("blk.0.ffn_gate_exps.weight", file.Tensors[0].Name); // file order kept
        foreach (var t in file.Tensors)
        {
            Assert.Equal(0, t.Offset % 64);
            Assert.Equal(data[t.Name], file.TensorBytes(t).ToArray());
        }
        Assert.Equal(new long[] { 256, 5, 3 }, file["blk.0.ffn_gate_exps.weight"].Dims);

        // Expert 2 of the stacked tensor, used in place: its rows are the third [5, 256] slice of the bytes.
        var expert = file.Matrix("blk.0.ffn_gate_exps.weight", 2);
        Assert.Equal((5, 256, WeightFormat.Q4_K), (expert.Rows, expert.Cols, expert.Format));
        var direct = RowKernelTests.RandomMatrix(WeightFormat.Q4_K, 5, 256, 3);
        float[] x = Numerics.Random(256, 9, 1f);
        float[] y = new float[5], expected = new float[5];
        expert.MatVec(x, y);
        direct.MatVec(x, expected);
        Numerics.BitwiseEqual(expected, y, "expert 2");
        Assert.Throws<ArgumentOutOfRangeException>(() => file.Matrix("blk.0.ffn_gate_exps.weight", 3));
    }

    [Fact]
    public void RewriteWhileOpenReplacesAtomically()
    {
        string path = Path.Combine(Folder, "m.gguf");
        Sample(out _).Write(path);
        using var file = GgufFile.Open(path);
        new GgufWriter().Add("general.architecture", GgufValue.Of("other")).Write(path);
        Assert.Equal("mixtral", file.Metadata["general.architecture"].Value); // the open mapping keeps the old bytes
        using var reopened = GgufFile.Open(path);
        Assert.Empty(reopened.Tensors);
        Assert.Empty(Directory.GetFiles(Folder, "*.tmp"));
    }

    [Theory]
    [InlineData(0, 0x48, "magic is 0x46554748")]
    [InlineData(4, 2, "version is 2; expected 3")]
    public void HeaderErrorsAreOneLineNamingTheFile(int at, byte value, string expected)
    {
        string path = Path.Combine(Folder, "m.gguf");
        Sample(out _).Write(path);
        byte[] bytes = File.ReadAllBytes(path);
        bytes[at] = value;
        File.WriteAllBytes(path, bytes);
        var e = Assert.Throws<GgufFormatException>(() => GgufFile.Open(path));
        Assert.StartsWith(path + ": ", e.Message);
        Assert.Contains(expected, e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void MisalignedOrTruncatedTensorsAreNamed()
    {
        string path = Path.Combine(Folder, "m.gguf");
        new GgufWriter().AddTensor("w", WeightFormat.F32, [4], new byte[16]).AddTensor("v", WeightFormat.F32, [4], new byte[16]).Write(path);
        byte[] bytes = File.ReadAllBytes(path);
        // The second tensor's offset is the last u64 of the infos; its data starts at 32 (aligned to 32).
        int offsetAt = IndexOfU64(bytes, 32);
        BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(offsetAt), 8);
        File.WriteAllBytes(path, bytes);
        Assert.Contains("tensor 'v' offset 8 is not a multiple of the alignment 32",
            Assert.Throws<GgufFormatException>(() => GgufFile.Open(path)).Message);
        BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(offsetAt), 32);
        File.WriteAllBytes(path, bytes[..^20]);
        Assert.Contains("tensor 'v' spans [32, 48)", Assert.Throws<GgufFormatException>(() => GgufFile.Open(path)).Message);
    }

    private static int IndexOfU64(byte[] bytes, ulong value)
    {
        for (int i = bytes.Length - 8; i >= 0; i--)
            if (BinaryPrimitives.ReadUInt64LittleEndian(bytes.AsSpan(i)) == value) return i;
        throw new InvalidOperationException("not found");
    }

    [Fact(Timeout = 60_000)]
    public async Task MutatedFilesFailOnlyWithFormatErrors()
    {
        string basePath = Path.Combine(Folder, "base.gguf");
        Sample(out _).Write(basePath);
        byte[] valid = File.ReadAllBytes(basePath);
        using (var file = GgufFile.Open(basePath)) Assert.Equal(7, file.Tensors.Count);
        int headerEnd;
        using (var file = GgufFile.Open(basePath)) headerEnd = (int)(valid.Length - file.Tensors.Sum(t => GgufFile.AlignUp(t.ByteCount, 64)));

        // Mutations land mostly in the header (counts, lengths, types, dims, offsets), with small and extreme values.
        var position = Gen.Frequency((4, Gen.Int[0, headerEnd - 1]), (1, Gen.Int[0, valid.Length - 1]));
        byte[] special = [0, 1, 2, 3, 4, 9, 12, 13, 39, 40, 0x7F, 0x80, 0xFF];
        var value = Gen.Frequency((3, Gen.Byte), (1, Gen.Int[0, special.Length - 1].Select(i => special[i])));
        var length = Gen.Frequency((6, Gen.Const(valid.Length)), (1, Gen.Int[0, valid.Length]));
        var mutant = FileMutants.Of(valid, position, value, length);
        await Task.Run(() => mutant.Sample(ReadEverything, iter: 600), TestContext.Current.CancellationToken);
    }

    private void ReadEverything(byte[] bytes)
    {
        string path = Write($"{Guid.NewGuid():N}.gguf", bytes);
        try
        {
            using var file = GgufFile.Open(path);
            foreach (var t in file.Tensors)
            {
                _ = file.TensorBytes(t).Length;
                try
                {
                    var m = file.Matrix(t.Name);
                    if (m.Rows > 0 && m.Cols <= 1 << 16) m.MatVec(new float[m.Cols], new float[m.Rows]);
                }
                catch (GgufFormatException) { }
                catch (ArgumentException) { } // a 2-D index on a 3-D tensor is the caller's error, not the file's
            }
        }
        catch (GgufFormatException)
        {
        }
        finally
        {
            File.Delete(path);
        }
    }
}
