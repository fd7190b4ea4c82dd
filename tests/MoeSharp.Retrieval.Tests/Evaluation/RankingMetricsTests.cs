using MoeSharp.Retrieval.Evaluation;
using MoeSharp.Retrieval.Gating;

namespace MoeSharp.Retrieval.Tests.Evaluation;

public sealed class RankingMetricsTests
{
    private static ScoredDoc[] List(params int[] docs) => docs.Select((d, i) => new ScoredDoc(d, 1f / (i + 1))).ToArray();

    [Fact]
    public void NdcgAndRecallMatchHandDerivedValues()
    {
        var rel = new HashSet<int> { 1, 4 };
        // Hits at ranks 2 and 3: (1/log2 3 + 1/log2 4) / (1 + 1/log2 3) = (0.63093 + 0.5) / 1.63093 = 0.693426.
        Assert.Equal(0.693426, RankingMetrics.Ndcg(List(9, 1, 4), rel, 10), 1e-6);
        Assert.Equal(1.0, RankingMetrics.Ndcg(List(4, 1, 9), rel, 10), 1e-12);
        Assert.Equal(0.5, RankingMetrics.Recall(List(9, 1, 7), rel, 20), 1e-12);
        Assert.Equal(0.0, RankingMetrics.Ndcg(List(9, 1, 4), rel, 1), 1e-12);
    }

    [Fact]
    public void RrfAndWeightedFusionMatchHandDerivedValues()
    {
        ScoredDoc[] a = [new(1, 10f), new(2, 5f)];
        ScoredDoc[] b = [new(2, 0.8f), new(3, 0.4f)];
        var rrf = Fusion.Rrf([a, b, null], 10);
        // doc 2: 1/62 + 1/61; doc 1: 1/61; doc 3: 1/62.
        Assert.Equal([2, 1, 3], rrf.Select(h => h.Doc));
        Assert.Equal(1f / 62 + 1f / 61, rrf[0].Score, 1e-7f);
        var w = Fusion.Weighted([a, b, null], [0.25f, 0.75f, 0f], 10);
        // doc 2: 0.25·0.5 + 0.75·1 = 0.875; doc 3: 0.75·0.5 = 0.375; doc 1: 0.25.
        Assert.Equal([2, 3, 1], w.Select(h => h.Doc));
        Assert.Equal(0.875f, w[0].Score, 1e-6f);
        Assert.Equal(0.375f, w[1].Score, 1e-6f);
        Assert.Equal(0.25f, w[2].Score, 1e-6f);
    }
}
