using System.Diagnostics;
using MoeSharp.Retrieval.Data;
using MoeSharp.Retrieval.Evaluation;
using MoeSharp.Retrieval.Experts;
using MoeSharp.Retrieval.Gating;
using MoeSharp.Retrieval.Storage;
using MoeSharp.Routing;

namespace MoeSharp.Retrieval;

/// <summary>One query's answer: the fused list, and what each expert and the gate contributed.</summary>
/// <param name="Fused">The final list, best first.</param>
/// <param name="ExpertHits">Each expert's own hits, null for an expert that was not queried. [E]</param>
/// <param name="Weights">The gate's weight per expert, or null for single experts and RRF. [E]</param>
public sealed record RetrievalResult(ScoredDoc[] Fused, ScoredDoc[]?[] ExpertHits, float[]? Weights);

/// <summary>Training settings of the gates.</summary>
public sealed class GateTrainingOptions
{
    /// <summary>Epochs of phase 2 (gates alone on which expert finds each query's relevant documents).</summary>
    public int GateEpochs { get; init; } = 60;

    /// <summary>Epochs of phase 3 (the dense gate on the listwise ranking loss of the fused list).</summary>
    public int JointEpochs { get; init; } = 30;

    /// <summary>Adam step size.</summary>
    public float LearningRate { get; init; } = 0.01f;

    /// <summary>Hidden units of each gate.</summary>
    public int Hidden { get; init; } = 16;

    /// <summary>Candidates each expert contributes per query.</summary>
    public int Candidates { get; init; } = 50;

    /// <summary>Sharpness τ of the listwise softmax over fused scores in [0, 1].</summary>
    public float ListwiseTemperature { get; init; } = 10f;

    /// <summary>Seed of the initial weights and the shuffles.</summary>
    public ulong Seed { get; init; } = 1;
}

/// <summary>One row of an evaluation: a fusion mode on one query kind.</summary>
/// <param name="Mode">The fusion mode.</param>
/// <param name="Kind">The query kind, or "all".</param>
/// <param name="Queries">How many queries.</param>
/// <param name="Ndcg10">Mean nDCG@10.</param>
/// <param name="Recall20">Mean recall@20.</param>
/// <param name="P50Ms">Median latency per query in milliseconds.</param>
/// <param name="P95Ms">95th-percentile latency per query in milliseconds.</param>
public sealed record EvaluationRow(FusionMode Mode, string Kind, int Queries, double Ndcg10, double Recall20, double P50Ms, double P95Ms);

/// <summary>
/// The mixture of retrieval experts (vector, keyword, graph) under two gates: a dense gate on every feature,
/// including the query embedding and each expert's score distribution, that weighs all three experts' normalised
/// scores; and a sparse gate on the features that cost nothing to compute (lexical and entity statistics), which
/// picks the expert(s) to query at all.
/// </summary>
public sealed class HybridRetriever
{
    /// <summary>Number of cheap features (<see cref="CheapFeatures"/>).</summary>
    public const int CheapCount = 12;

    private readonly IRetrievalStore _store;
    private readonly ITextEncoder _encoder;

    /// <summary>The experts, in gate order: vector, keyword, graph.</summary>
    public IReadOnlyList<IRetrievalExpert> Experts { get; }

    /// <summary>The dense gate, once trained or loaded.</summary>
    public RetrievalGate? DenseGate { get; private set; }

    /// <summary>The sparse gate, once trained or loaded.</summary>
    public RetrievalGate? SparseGate { get; private set; }

    /// <summary>A retriever over <paramref name="store"/>; loads the gates stored there, if any.</summary>
    public HybridRetriever(IRetrievalStore store, ITextEncoder encoder)
    {
        if (store.EncoderName.Length > 0 && store.EncoderName != encoder.Name)
            throw new InvalidDataException($"{store.Location}: indexed with encoder '{store.EncoderName}', but '{encoder.Name}' was given");
        if (store.Vectors.Dimension != encoder.Dimension)
            throw new InvalidDataException($"{store.Location}: vectors have {store.Vectors.Dimension} dimensions, the encoder makes {encoder.Dimension}");
        _store = store;
        _encoder = encoder;
        Experts = [new VectorExpert(store), new KeywordExpert(store), new GraphExpert(store)];
        if (store.GetMeta("gate.dense") is { } dense) DenseGate = RetrievalGate.FromJson(dense, store.Location);
        if (store.GetMeta("gate.sparse") is { } sparse) SparseGate = RetrievalGate.FromJson(sparse, store.Location);
    }

    /// <summary>Analyses a query against this retriever's store and encoder.</summary>
    public AnalyzedQuery Analyze(string text) => new(text, _store, _encoder);

    /// <summary>Lexical and entity features, cheap enough to route on before any expert runs. [<see cref="CheapCount"/>]</summary>
    public static float[] CheapFeatures(AnalyzedQuery q)
    {
        var f = new float[CheapCount];
        int stop = 0, chars = 0, digits = 0;
        foreach (var t in q.Tokens)
        {
            if (TextNormalizer.StopWords.Contains(t)) stop++;
            chars += t.Length;
            foreach (char c in t) if (char.IsDigit(c)) { digits = 1; break; }
        }
        var seeds = q.Seeds;
        f[0] = q.Tokens.Count / 10f;
        f[1] = q.Terms.Count / 10f;
        f[2] = stop / (float)q.Tokens.Count;
        f[3] = chars / (float)q.Tokens.Count / 10f;
        f[4] = digits;
        f[5] = q.IsExactName ? 1 : 0;
        f[6] = q.LinkedCoverage;
        f[7] = seeds.Count / 5f;
        f[8] = seeds.Count > 0 ? seeds[0].Score : 0;
        f[9] = q.RelationTypes.Count;
        f[10] = q.RelationTypes.Count > 0 ? 1 : 0;
        f[11] = q.Text.Length / 100f;
        return f;
    }

    /// <summary>Every feature: cheap ones, the embedding, then each expert's score features. [12 + D + 4E]</summary>
    public float[] DenseFeatures(AnalyzedQuery q, IReadOnlyList<ExpertResult> results)
    {
        var cheap = CheapFeatures(q);
        var emb = q.Embedding;
        var f = new float[CheapCount + emb.Length + ScoreFeatures.Count * Experts.Count];
        cheap.CopyTo(f, 0);
        emb.CopyTo(f, CheapCount);
        for (int e = 0; e < Experts.Count; e++) results[e].Features.CopyTo(f, CheapCount + emb.Length + e * ScoreFeatures.Count);
        return f;
    }

    /// <summary>Retrieves the top <paramref name="k"/> for <paramref name="text"/> in the given mode.</summary>
    public RetrievalResult Retrieve(string text, int k, FusionMode mode) => Retrieve(Analyze(text), k, mode);

    /// <summary>Retrieves the top <paramref name="k"/> for an analysed query in the given mode.</summary>
    public RetrievalResult Retrieve(AnalyzedQuery q, int k, FusionMode mode)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(k, 1);
        var hits = new ScoredDoc[]?[Experts.Count];
        int depth = Math.Max(k, 50);
        switch (mode)
        {
            case FusionMode.Vector or FusionMode.Keyword or FusionMode.Graph:
            {
                int e = (int)mode;
                hits[e] = Experts[e].Search(q, k).Hits;
                return new RetrievalResult(hits[e]!, hits, null);
            }
            case FusionMode.Rrf:
                for (int e = 0; e < Experts.Count; e++) hits[e] = Experts[e].Search(q, depth).Hits;
                return new RetrievalResult(Fusion.Rrf(hits, k), hits, null);
            case FusionMode.Dense:
            {
                var gate = DenseGate ?? throw new InvalidDataException($"{_store.Location}: no trained gate; run 'moe rag train' first");
                var results = new ExpertResult[Experts.Count];
                for (int e = 0; e < Experts.Count; e++) { results[e] = Experts[e].Search(q, depth); hits[e] = results[e].Hits; }
                var w = gate.Forward(DenseFeatures(q, results));
                return new RetrievalResult(Fusion.Weighted(hits, w, k), hits, w);
            }
            default:
            {
                var gate = SparseGate ?? throw new InvalidDataException($"{_store.Location}: no trained gate; run 'moe rag train' first");
                var w = gate.Forward(CheapFeatures(q));
                int first = ArgMax(w, -1), second = mode == FusionMode.Top2 ? ArgMax(w, first) : -1;
                var used = new float[Experts.Count];
                used[first] = w[first];
                if (second >= 0) used[second] = w[second];
                float total = used[first] + (second >= 0 ? used[second] : 0);
                for (int e = 0; e < used.Length; e++) used[e] /= total;
                hits[first] = Experts[first].Search(q, second >= 0 ? depth : k).Hits;
                if (second >= 0) hits[second] = Experts[second].Search(q, depth).Hits;
                var fused = second >= 0 ? Fusion.Weighted(hits, used, k) : hits[first]!;
                return new RetrievalResult(fused.Length > k ? fused[..k] : fused, hits, w);
            }
        }
    }

    private static int ArgMax(ReadOnlySpan<float> w, int skip)
    {
        int best = -1;
        for (int e = 0; e < w.Length; e++)
            if (e != skip && (best < 0 || w[e] > w[best])) best = e;
        return best;
    }

    /// <summary>A training query with everything the gates learn from, computed once (the experts stay fixed).</summary>
    private sealed record Example(float[] Cheap, float[] Dense, ExpertResult[] Results, HashSet<int> Relevant, float[] Target);

    /// <summary>
    /// Phases 2 and 3 of the seeds' schedule (phase 1, the experts, is the index): both gates learn, by cross-entropy,
    /// which expert ranks each training query's relevant documents best (their nDCG@10s, normalised, are the
    /// target); then the dense gate learns on the ListNet loss of the fused candidate list. The gates are stored.
    /// Returns the routing statistics of the dense gate on the training queries.
    /// </summary>
    public RoutingStats Train(GateTrainingOptions? options = null, Action<string>? log = null)
    {
        options ??= new GateTrainingOptions();
        var train = _store.Queries().Where(q => q.Split == "train").ToList();
        if (train.Count == 0) throw new InvalidDataException($"{_store.Location}: no training queries stored (index WordNet, or a corpus with queries)");
        var examples = Prepare(train, options.Candidates);
        if (examples.Count == 0) throw new InvalidDataException($"{_store.Location}: no training query has a relevant document among any expert's candidates");
        var rng = new Random(unchecked((int)options.Seed));
        var sparse = new RetrievalGate(CheapCount, options.Hidden, Experts.Count, options.Seed);
        var dense = new RetrievalGate(examples[0].Dense.Length, options.Hidden, Experts.Count, options.Seed + 1);
        sparse.Standardize(examples.Select(x => x.Cheap).ToList());
        dense.Standardize(examples.Select(x => x.Dense).ToList());
        var order = Enumerable.Range(0, examples.Count).ToArray();

        // Minibatches of 32 in a fresh shuffled order each epoch; returns the last epoch's mean loss (NaN for none).
        double Epochs(RetrievalGate gate, float learningRate, int epochs, Func<Example, RetrievalGate.Activations, float[], double> lossAndGradient)
        {
            var adam = new Adam(gate.Parameters.Length, learningRate);
            var act = new RetrievalGate.Activations(gate.Features, gate.Hidden, gate.Experts);
            var d = new float[Experts.Count]; // [E]
            double loss = double.NaN;
            for (int epoch = 0; epoch < epochs; epoch++)
            {
                rng.Shuffle(order);
                loss = 0;
                for (int start = 0; start < order.Length; start += 32)
                {
                    int end = Math.Min(order.Length, start + 32);
                    for (int i = start; i < end; i++)
                    {
                        loss += lossAndGradient(examples[order[i]], act, d);
                        gate.Backward(act, d);
                    }
                    adam.Step(gate.Parameters, gate.Gradients, end - start);
                }
            }
            return loss / order.Length;
        }

        foreach (var (gate, dense_) in new[] { (sparse, false), (dense, true) })
        {
            double loss = Epochs(gate, options.LearningRate, options.GateEpochs,
                (x, act, d) => CrossEntropy(gate.Forward(dense_ ? x.Dense : x.Cheap, act), x.Target, d));
            if (options.GateEpochs > 0) log?.Invoke($"phase 2 ({(dense_ ? "dense" : "sparse")} gate): cross-entropy {loss:F4}");
        }
        double joint = Epochs(dense, options.LearningRate * 0.5f, options.JointEpochs,
            (x, act, d) => Listwise(x.Results, dense.Forward(x.Dense, act), x.Relevant, options.ListwiseTemperature, d));
        if (options.JointEpochs > 0) log?.Invoke($"phase 3 (dense gate, listwise): loss {joint:F4}");
        DenseGate = dense;
        SparseGate = sparse;
        _store.SetMeta("gate.dense", dense.ToJson());
        _store.SetMeta("gate.sparse", sparse.ToJson());
        var weights = new List<float[]>();
        foreach (var x in examples) weights.Add((float[])dense.Forward(x.Dense).Clone());
        return Stats("train", weights);
    }

    private List<Example> Prepare(List<LabeledQuery> queries, int candidates)
    {
        var emb = _encoder.Encode(queries.Select(q => q.Text).ToList());
        var list = new List<Example>();
        for (int i = 0; i < queries.Count; i++)
        {
            var q = Analyze(queries[i].Text);
            q.SetEmbedding(emb.AsSpan(i * _encoder.Dimension, _encoder.Dimension).ToArray());
            var results = new ExpertResult[Experts.Count];
            var rel = new HashSet<int>(queries[i].Relevant);
            var target = new float[Experts.Count];
            float sum = 0;
            for (int e = 0; e < Experts.Count; e++)
            {
                results[e] = Experts[e].Search(q, candidates);
                target[e] = (float)RankingMetrics.Ndcg(results[e].Hits, rel, 10);
                sum += target[e];
            }
            if (sum <= 0) continue;
            for (int e = 0; e < target.Length; e++) target[e] /= sum;
            list.Add(new Example(CheapFeatures(q), DenseFeatures(q, results), results, rel, target));
        }
        return list;
    }

    /// <summary>−Σ t log w; writes dLoss/dw into <paramref name="d"/>.</summary>
    internal static double CrossEntropy(ReadOnlySpan<float> w, ReadOnlySpan<float> target, Span<float> d)
    {
        double loss = 0;
        for (int e = 0; e < w.Length; e++)
        {
            float p = Math.Max(w[e], 1e-7f);
            loss -= target[e] * Math.Log(p);
            d[e] = -target[e] / p;
        }
        return loss;
    }

    /// <summary>
    /// ListNet: over the union of the experts' candidates, P = softmax(τ · Σ_e w_e n_e(d)) against the uniform
    /// distribution on the relevant candidates; returns −Σ t log P and writes dLoss/dw = τ Σ_d (P_d − t_d) n_e(d).
    /// </summary>
    internal static double Listwise(IReadOnlyList<ExpertResult> results, ReadOnlySpan<float> w, HashSet<int> relevant, float tau, Span<float> d)
    {
        var norm = new Dictionary<int, float>[results.Count];
        var docs = new List<int>();
        var seen = new HashSet<int>();
        for (int e = 0; e < results.Count; e++)
        {
            norm[e] = new Dictionary<int, float>();
            Fusion.Normalize(results[e].Hits, norm[e]);
            foreach (var h in results[e].Hits) if (seen.Add(h.Doc)) docs.Add(h.Doc);
        }
        d.Clear();
        int hits = 0;
        foreach (int doc in docs) if (relevant.Contains(doc)) hits++;
        if (hits == 0) return 0;
        var s = new float[docs.Count]; // [C] fused scores, then probabilities
        for (int i = 0; i < docs.Count; i++)
            for (int e = 0; e < results.Count; e++) s[i] += tau * w[e] * norm[e].GetValueOrDefault(docs[i]);
        TensorPrimitives.SoftMax(s, s);
        double loss = 0;
        for (int i = 0; i < docs.Count; i++)
        {
            float t = relevant.Contains(docs[i]) ? 1f / hits : 0f;
            if (t > 0) loss -= t * Math.Log(Math.Max(s[i], 1e-12f));
            for (int e = 0; e < results.Count; e++) d[e] += tau * (s[i] - t) * norm[e].GetValueOrDefault(docs[i]);
        }
        return loss;
    }

    /// <summary>The core's routing statistics over gate weights [queries][E]: top-1 counts, mean weights, entropy, load CV.</summary>
    public RoutingStats Stats(string name, IReadOnlyList<float[]> weights)
    {
        var counts = new int[Experts.Count];
        var importance = new float[Experts.Count];
        double entropy = 0;
        foreach (var w in weights)
        {
            counts[ArgMax(w, -1)]++;
            for (int e = 0; e < w.Length; e++)
            {
                importance[e] += w[e] / weights.Count;
                if (w[e] > 0) entropy -= w[e] * Math.Log(w[e]) / weights.Count;
            }
        }
        return new RoutingStats { Layer = name, Tokens = weights.Count, TokensPerExpert = counts, Importance = importance, Entropy = (float)entropy, LoadCv = RoutingStats.Cv(counts) };
    }

    /// <summary>The sparse gate's routing statistics per query kind (Layer = the kind) over one split's queries.</summary>
    public List<RoutingStats> SparseRouting(string split = "test")
    {
        var gate = SparseGate ?? throw new InvalidDataException($"{_store.Location}: no trained gate; run 'moe rag train' first");
        var byKind = new SortedDictionary<string, List<float[]>>(StringComparer.Ordinal);
        foreach (var q in _store.Queries())
        {
            if (q.Split != split) continue;
            if (!byKind.TryGetValue(q.Kind, out var list)) byKind[q.Kind] = list = [];
            list.Add((float[])gate.Forward(CheapFeatures(Analyze(q.Text))).Clone());
        }
        var stats = new List<RoutingStats>();
        foreach (var (kind, weights) in byKind) stats.Add(Stats(kind, weights));
        return stats;
    }

    /// <summary>
    /// Runs every test query through each mode, timing each whole retrieval (analysis, encoding, expert searches,
    /// gate, fusion), and reports nDCG@10 and recall@20 per query kind and overall.
    /// </summary>
    public List<EvaluationRow> Evaluate(IReadOnlyList<FusionMode> modes, string split = "test", int limit = int.MaxValue)
    {
        var queries = _store.Queries().Where(q => q.Split == split).Take(limit).ToList();
        if (queries.Count == 0) throw new InvalidDataException($"{_store.Location}: no '{split}' queries stored");
        var rows = new List<EvaluationRow>();
        var kinds = queries.Select(q => q.Kind).Distinct().Order(StringComparer.Ordinal).ToList();
        foreach (var mode in modes)
        {
            var ndcg = new double[queries.Count];
            var recall = new double[queries.Count];
            var ms = new double[queries.Count];
            for (int i = 0; i < queries.Count; i++)
            {
                var rel = new HashSet<int>(queries[i].Relevant);
                long t0 = Stopwatch.GetTimestamp();
                var r = Retrieve(queries[i].Text, 20, mode);
                ms[i] = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
                ndcg[i] = RankingMetrics.Ndcg(r.Fused, rel, 10);
                recall[i] = RankingMetrics.Recall(r.Fused, rel, 20);
            }
            foreach (var kind in kinds.Append("all"))
            {
                var idx = Enumerable.Range(0, queries.Count).Where(i => kind == "all" || queries[i].Kind == kind).ToArray();
                var lat = idx.Select(i => ms[i]).Order().ToArray();
                rows.Add(new EvaluationRow(mode, kind, idx.Length, idx.Average(i => ndcg[i]), idx.Average(i => recall[i]),
                    Percentile(lat, 0.5), Percentile(lat, 0.95)));
            }
        }
        return rows;
    }

    private static double Percentile(double[] sorted, double p) =>
        sorted.Length == 0 ? 0 : sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(p * sorted.Length) - 1)];
}
