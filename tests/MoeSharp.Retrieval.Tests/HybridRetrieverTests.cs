using MoeSharp.Retrieval.Gating;
using MoeSharp.Retrieval.Storage;

namespace MoeSharp.Retrieval.Tests;

public sealed class HybridRetrieverTests
{
    [Fact]
    public void EachExpertFindsItsKindOfQuery()
    {
        using var tmp = new TempDir();
        using var store = SqliteStore.Open(TestCorpus.WriteSqlite(tmp.Path));
        var r = new HybridRetriever(store, new HashEncoder());
        var graph = r.Retrieve("a part of a car", 3, FusionMode.Graph).Fused.Select(h => store.DocumentId(h.Doc));
        Assert.Equal(["brake", "engine", "wheel"], graph.Order());
        Assert.Equal("sea_anemone", store.DocumentId(r.Retrieve("sea anemone", 1, FusionMode.Keyword).Fused[0].Doc));
        var q = r.Analyze("a part of a sea anemone");
        Assert.Equal(["part_meronym"], q.RelationTypes);
        Assert.Equal(["sea_anemone"], q.Seeds.Select(s => store.DocumentId(s.Doc)));
        Assert.Throws<ArgumentException>(() => r.Analyze("  ?! "));
    }

    [Fact]
    public void TrainedGatesAreStoredAndTop1QueriesOnlyOneExpert()
    {
        using var tmp = new TempDir();
        string path = TestCorpus.WriteSqlite(tmp.Path);
        using (var store = SqliteStore.Open(path))
        {
            var stats = new HybridRetriever(store, new HashEncoder()).Train(new GateTrainingOptions { GateEpochs = 20, JointEpochs = 5 });
            Assert.Equal(3, stats.TokensPerExpert.Length);
            Assert.Equal(1f, stats.Importance.Sum(), 1e-5f);
        }
        using (var store = SqliteStore.Open(path))
        {
            var r = new HybridRetriever(store, new HashEncoder());
            Assert.NotNull(r.DenseGate);
            var top1 = r.Retrieve("taximeter", 5, FusionMode.Top1);
            Assert.Equal(1, top1.ExpertHits.Count(h => h is not null));
            var dense = r.Retrieve("taximeter", 5, FusionMode.Dense);
            Assert.Equal(3, dense.ExpertHits.Count(h => h is not null));
            Assert.Equal(1f, dense.Weights!.Sum(), 1e-5f);
            var rows = r.Evaluate([FusionMode.Keyword, FusionMode.Dense, FusionMode.Top1]);
            Assert.Equal(1.0, rows.Single(x => x.Mode == FusionMode.Keyword && x.Kind == "keyword").Ndcg10, 1e-12);
        }
    }
}
