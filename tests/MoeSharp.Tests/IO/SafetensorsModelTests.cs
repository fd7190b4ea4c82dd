using MoeSharp.IO;

namespace MoeSharp.Tests.IO;

public sealed class SafetensorsModelTests : TempFolderTest
{
    private const string Shard1 = "model-00001-of-00002.safetensors";
    private const string Shard2 = "model-00002-of-00002.safetensors";

    private static readonly float[] A = [1f, 2f, 3f, 4f, 5f, 6f];
    private static readonly float[] B = [-1f];
    private static readonly float[] C = [0.5f, 0.25f];

    [Fact]
    public void ReadsShardedFolderThroughIndex()
    {
        WriteShards();
        File.WriteAllText(Path.Combine(Folder, SafetensorsModel.IndexFileName), $$$"""
            {"metadata":{"total_size":36},
             "weight_map":{"c":"{{{Shard2}}}","a":"{{{Shard1}}}","b":"{{{Shard1}}}"}}
            """);

        foreach (string open in new[] { Folder, Path.Combine(Folder, SafetensorsModel.IndexFileName) })
        {
            using var model = SafetensorsModel.Open(open);
            Assert.Equal(["c", "a", "b"], model.Names);
            Assert.True(model.Contains("b"));
            Assert.False(model.Contains("d"));
            Assert.Equal([2, 3], model.Entry("a").Shape);
            Assert.Equal([2], model.Entry("c").Shape);
            Assert.Equal(A, model.ReadFloat32("a"));
            Assert.Equal(B, model.ReadFloat32("b"));
            var c = new float[2];
            model.ReadFloat32("c", c);
            Assert.Equal(C, c);
            var e = Assert.Throws<KeyNotFoundException>(() => model.Entry("d"));
            Assert.Contains("'d'", e.Message);
        }
    }

    [Fact]
    public void ReadsSingleFileFolder()
    {
        string path = Path.Combine(Folder, SafetensorsModel.SingleFileName);
        SafetensorsWriter.Write(path, [new("a", [2, 3], A), new("b", [1], B)]);

        foreach (string open in new[] { Folder, path })
        {
            using var model = SafetensorsModel.Open(open);
            Assert.Equal(["a", "b"], model.Names);
            Assert.Equal([2, 3], model.Entry("a").Shape);
            Assert.Equal(A, model.ReadFloat32("a"));
            Assert.Equal(B, model.ReadFloat32("b"));
            Assert.Throws<KeyNotFoundException>(() => model.ReadFloat32("c"));
        }
    }

    [Fact]
    public void MissingShardNamesIndexShardAndTensor()
    {
        WriteShards();
        File.Delete(Path.Combine(Folder, Shard2));
        string index = WriteIndex("a", Shard1, "c", Shard2);

        var e = Assert.Throws<FileNotFoundException>(() => SafetensorsModel.Open(Folder));
        Assert.Contains(index, e.Message);
        Assert.Contains($"shard '{Shard2}' (holding tensor 'c') not found", e.Message);
    }

    [Fact]
    public void TensorAbsentFromItsShardIsAFormatError()
    {
        WriteShards();
        string index = WriteIndex("a", Shard2);

        var e = Assert.Throws<SafetensorsFormatException>(() => SafetensorsModel.Open(Folder));
        Assert.Equal(index, e.FilePath);
        Assert.Contains($"tensor 'a' in shard '{Shard2}', which has no such tensor", e.Message);
    }

    [Theory]
    [InlineData("""{"weight_map":[]}""", "expected a JSON object with a 'weight_map' object")]
    [InlineData("""{"metadata":{}}""", "expected a JSON object with a 'weight_map' object")]
    [InlineData("""{"weight_map":{"a":"../model.safetensors"}}""", "weight_map entry 'a' is \"../model.safetensors\"; expected a shard file name")]
    [InlineData("""{"weight_map":{"a":3}}""", "weight_map entry 'a' is 3")]
    [InlineData("""{"weight_map":""", "index is not valid JSON")]
    [InlineData("""{"weight_map":{"\uD800":"x.safetensors"}}""", "a JSON string is not valid UTF-16 text")]
    public void MalformedIndex(string json, string expected)
    {
        string index = Path.Combine(Folder, SafetensorsModel.IndexFileName);
        File.WriteAllText(index, json);

        var e = Assert.Throws<SafetensorsFormatException>(() => SafetensorsModel.Open(Folder));
        Assert.Equal(index, e.FilePath);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void EmptyFolderIsNotFound()
    {
        var e = Assert.Throws<FileNotFoundException>(() => SafetensorsModel.Open(Folder));
        Assert.Contains($"neither {SafetensorsModel.IndexFileName} nor {SafetensorsModel.SingleFileName}", e.Message);
    }

    private void WriteShards()
    {
        SafetensorsWriter.Write(Path.Combine(Folder, Shard1), [new("a", [2, 3], A), new("b", [1], B)]);
        SafetensorsWriter.Write(Path.Combine(Folder, Shard2), [new("c", [2], C)]);
    }

    private string WriteIndex(params string[] nameShardPairs)
    {
        var pairs = nameShardPairs.Chunk(2).Select(p => $"\"{p[0]}\":\"{p[1]}\"");
        string index = Path.Combine(Folder, SafetensorsModel.IndexFileName);
        File.WriteAllText(index, "{\"weight_map\":{" + string.Join(",", pairs) + "}}");
        return index;
    }
}
