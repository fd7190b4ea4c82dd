using MoeSharp.Experts;
using MoeSharp.Formats;
using MoeSharp.Tests.IO;

namespace MoeSharp.Tests.Experts;

/// <summary>
/// The expert cache on a scripted file: 2 layers × 4 experts, each expert one F32 [1, 8] matrix (32 bytes, a 64-byte
/// aligned slot) whose floats are layer·100 + expert·10 + column, so every slot's bytes can be checked against the file.
/// </summary>
public sealed class ExpertCacheTests : TempFolderTest
{
    private const int Layers = 2, Experts = 4, Cols = 8, MatrixBytes = Cols * sizeof(float), Slot = 64;

    private string WriteFile(long truncateTo = -1)
    {
        var bytes = new byte[Layers * Experts * MatrixBytes];
        for (int l = 0; l < Layers; l++)
            for (int e = 0; e < Experts; e++)
                for (int c = 0; c < Cols; c++)
                    BitConverter.TryWriteBytes(bytes.AsSpan(((l * Experts + e) * Cols + c) * sizeof(float)), l * 100f + e * 10f + c);
        return Write("experts.bin", truncateTo < 0 ? bytes : bytes[..(int)truncateTo]);
    }

    private static ExpertCache Cache(string path, long budget, ExpertCachePolicy policy = ExpertCachePolicy.Lru)
    {
        var layers = new List<(string, FileMatrix[][])>();
        for (int l = 0; l < Layers; l++)
        {
            var experts = new FileMatrix[Experts][];
            for (int e = 0; e < Experts; e++) experts[e] = [new FileMatrix(path, (l * Experts + e) * (long)MatrixBytes, WeightFormat.F32, 1, Cols)];
            layers.Add(($"layer{l}", experts));
        }
        return new ExpertCache(path, budget, layers, policy);
    }

    private static void Touch(ExpertCache cache, int layer, int expert)
    {
        using var lease = cache.Layers[layer].Acquire(expert);
        var row = new float[Cols];
        lease.W1.DequantizeRow(0, row);
        for (int c = 0; c < Cols; c++) Assert.Equal(layer * 100f + expert * 10f + c, row[c]);
    }

    /// <summary>
    /// Three slots; the sequence (0,0) (0,1) (0,2) (0,0) (0,3) (0,1) (1,0) (0,0) by hand under LRU: three cold misses;
    /// (0,0) hits; (0,3) evicts (0,1), the least recent; (0,1) evicts (0,2); (1,0) evicts (0,0) (used at step 4,
    /// before (0,3) at 5 and (0,1) at 6); (0,0) evicts (0,3). Held, least recent first: (0,1) (1,0) (0,0).
    /// </summary>
    [Fact]
    public void EvictsTheLeastRecentlyUsedExpertOnAScriptedSequence()
    {
        using var cache = Cache(WriteFile(), 3 * Slot);
        Assert.Equal(3, cache.Capacity);
        (int, int)[] script = [(0, 0), (0, 1), (0, 2), (0, 0), (0, 3), (0, 1), (1, 0), (0, 0)];
        foreach (var (l, e) in script) Touch(cache, l, e);
        Assert.Equal([(0, 1), (1, 0), (0, 0)], cache.Resident());
        var stats = cache.Stats();
        Assert.Equal(new ExpertCacheStats("layer0", 1, 6, 6 * MatrixBytes), stats[0]);
        Assert.Equal(new ExpertCacheStats("layer1", 0, 1, MatrixBytes), stats[1]);
        Assert.Equal(new ExpertCacheStats("total", 1, 7, 7 * MatrixBytes), cache.Total());
        Assert.Equal(1.0 / 8, cache.Total().HitRate, 12); // 1 hit in 8 lookups
        Assert.True(cache.BytesHeld <= cache.BudgetBytes, $"{cache.BytesHeld} bytes held over a {cache.BudgetBytes}-byte budget");
    }

    /// <summary>
    /// LFU on (0,0) (0,0) (0,1) (0,2) (0,3) (0,1), by hand, three slots: uses after step 4 are (0,0) 2, (0,1) 1,
    /// (0,2) 1; (0,3) evicts the least used, the older of (0,1) and (0,2): (0,1) (LRU would evict (0,0), used last at
    /// step 2). (0,1) comes back with 2 uses, its count kept while out, and evicts (0,2) (1 use, older than (0,3)).
    /// Held, least recent first: (0,0) (0,3) (0,1).
    /// </summary>
    [Fact]
    public void LfuEvictsTheLeastOftenUsedExpertOnAScriptedSequence()
    {
        using var cache = Cache(WriteFile(), 3 * Slot, ExpertCachePolicy.Lfu);
        foreach (var (l, e) in new[] { (0, 0), (0, 0), (0, 1), (0, 2), (0, 3), (0, 1) }) Touch(cache, l, e);
        Assert.Equal([(0, 0), (0, 3), (0, 1)], cache.Resident());
        Assert.Equal(new ExpertCacheStats("layer0", 1, 5, 5 * MatrixBytes), cache.Stats()[0]);
    }

    /// <summary>A held expert is older than every other yet survives the misses that fill and cycle the other two slots.</summary>
    [Fact]
    public void AnExpertInUseIsNeverEvicted()
    {
        using var cache = Cache(WriteFile(), 3 * Slot);
        using (var held = cache.Layers[0].Acquire(0))
        {
            foreach (var (l, e) in new[] { (0, 1), (0, 2), (0, 3), (1, 0), (1, 1) }) Touch(cache, l, e);
            Assert.Contains((0, 0), cache.Resident());
            Assert.Equal(0f, held.W1.Data.Span[0]);
        }
        Touch(cache, 1, 2);
        Assert.DoesNotContain((0, 0), cache.Resident());
    }

    [Fact]
    public void EverySlotInUseIsOneClearError()
    {
        using var cache = Cache(WriteFile(), Slot);
        using var held = cache.Layers[0].Acquire(0);
        var ex = Assert.Throws<InvalidOperationException>(() => cache.Layers[1].Acquire(3));
        Assert.Equal("Expert cache: all 1 slots are in use; cannot load expert 3 of layer1.", ex.Message);
    }

    [Fact]
    public void ABudgetBelowOneExpertIsOneClearError()
    {
        string path = WriteFile();
        var ex = Assert.Throws<ArgumentException>(() => Cache(path, Slot - 1));
        Assert.Contains($"one expert takes 0.0 MB ({Slot} bytes)", ex.Message);
        Assert.DoesNotContain('\n', ex.Message);
    }

    /// <summary>The file ends 4 bytes into layer 1's expert 3 (the last one): every other expert reads, that one names file, expert and sizes.</summary>
    [Fact]
    public void ATruncatedFileIsOneLineNamingTheExpert()
    {
        long length = (Layers * Experts - 1) * MatrixBytes + 4;
        string path = WriteFile(length);
        using var cache = Cache(path, 3 * Slot);
        Touch(cache, 1, 2);
        var ex = Assert.Throws<InvalidDataException>(() => cache.Layers[1].Acquire(3));
        Assert.Equal($"{path}: expert 3 of layer1 ends at byte {Layers * Experts * MatrixBytes:N0}, past the end of the file ({length:N0} bytes); the file is truncated.", ex.Message);
    }
}
