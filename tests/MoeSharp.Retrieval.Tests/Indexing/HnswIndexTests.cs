using MoeSharp.Retrieval.Indexing;

namespace MoeSharp.Retrieval.Tests.Indexing;

public sealed class HnswIndexTests
{
    /// <summary>[N, D] unit vectors around 20 random centres, the kind of clustering sentence embeddings show.</summary>
    private static float[] Clustered(int n, int d, int seed)
    {
        var rng = new Random(seed);
        var centres = new float[20 * d];
        for (int i = 0; i < centres.Length; i++) centres[i] = (float)(rng.NextDouble() * 2 - 1);
        var v = new float[n * d];
        for (int i = 0; i < n; i++)
        {
            var row = v.AsSpan(i * d, d);
            int c = rng.Next(20);
            for (int j = 0; j < d; j++) row[j] = centres[c * d + j] + 0.6f * (float)(rng.NextDouble() * 2 - 1);
            System.Numerics.Tensors.TensorPrimitives.Divide(row, System.Numerics.Tensors.TensorPrimitives.Norm(row), row);
        }
        return v;
    }

    [Fact]
    public void RecallAt10AgainstBruteForceIsAtLeast95Percent()
    {
        const int n = 3000, d = 32, queries = 200;
        using var index = HnswIndex.Build(Clustered(n, d, 1), d);
        var q = Clustered(queries, d, 2);
        int found = 0;
        for (int i = 0; i < queries; i++)
        {
            var exact = index.BruteForce(q.AsSpan(i * d, d), 10).Select(h => h.Doc).ToHashSet();
            found += index.Search(q.AsSpan(i * d, d), 10, ef: 64).Count(h => exact.Contains(h.Doc));
        }
        double recall = found / (double)(queries * 10);
        Assert.True(recall >= 0.95, $"recall@10 = {recall:F3}, expected at least 0.95");
    }

    [Fact]
    public void SearchScoresAreExactDotProductsBestFirst()
    {
        const int d = 16;
        var v = Clustered(500, d, 3);
        using var index = HnswIndex.Build(v, d);
        var hits = index.Search(v.AsSpan(7 * d, d), 5);
        Assert.Equal(7, hits[0].Doc);
        for (int i = 0; i < hits.Length; i++)
        {
            float dot = System.Numerics.Tensors.TensorPrimitives.Dot(v.AsSpan(7 * d, d), v.AsSpan(hits[i].Doc * d, d));
            Assert.Equal(dot, hits[i].Score, 1e-6f);
            if (i > 0) Assert.True(hits[i].Score <= hits[i - 1].Score);
        }
    }

    [Fact]
    public void SavedIndexMemoryMapsToTheSameResults()
    {
        using var tmp = new TempDir();
        const int d = 24;
        var v = Clustered(800, d, 4);
        string path = Path.Combine(tmp.Path, "x.hnsw");
        using var built = HnswIndex.Build(v, d);
        built.Save(path);
        using var mapped = HnswIndex.Open(path);
        using var copied = HnswIndex.FromBytes(File.ReadAllBytes(path));
        for (int i = 0; i < 50; i++)
        {
            var a = built.Search(v.AsSpan(i * d, d), 10);
            Assert.Equal(a, mapped.Search(v.AsSpan(i * d, d), 10));
            Assert.Equal(a, copied.Search(v.AsSpan(i * d, d), 10));
        }
    }

    [Fact]
    public void CorruptedOrTruncatedIndexIsRefusedWithItsPath()
    {
        using var tmp = new TempDir();
        const int d = 8;
        string path = Path.Combine(tmp.Path, "x.hnsw");
        using (var built = HnswIndex.Build(Clustered(100, d, 5), d)) built.Save(path);
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..(bytes.Length - 4)]);
        Assert.Contains("x.hnsw", Assert.Throws<InvalidDataException>(() => HnswIndex.Open(path)).Message);
        bytes[0] ^= 0xFF;
        File.WriteAllBytes(path, bytes);
        Assert.Contains("bad header", Assert.Throws<InvalidDataException>(() => HnswIndex.Open(path)).Message);
    }
}
