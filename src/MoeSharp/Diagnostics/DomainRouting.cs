using System.Text.Json;
using MoeSharp.Autograd;
using MoeSharp.Data;
using MoeSharp.Models;

namespace MoeSharp.Diagnostics;

/// <summary>One layer's domain × expert assignment counts and the mutual information between the two.</summary>
public sealed record DomainRoutingLayer(string Layer, int[][] Counts, double MutualInformation);

/// <summary>
/// Which experts serve which domain of the built-in corpus: every validation token is run through the model
/// (windows of the context length), and each (domain of the token, expert it was routed to) pair is counted per
/// MoE layer. The mutual information I(domain; expert) in bits measures specialisation: 0 when routing ignores the
/// domain, up to log2(domains) when each domain has experts of its own.
/// </summary>
public static class DomainRouting
{
    /// <summary>Routes up to <paramref name="maxTokens"/> tokens of <paramref name="corpus"/> through <paramref name="model"/> and returns, per MoE layer, the [domains, experts] counts and their mutual information.</summary>
    public static IReadOnlyList<DomainRoutingLayer> Measure(MoeTransformer model, ITextTokenizer tokenizer, MultiDomainCorpus corpus, int maxTokens = 20000)
    {
        var layers = model.MoeLayers;
        int domains = MultiDomainCorpus.DomainNames.Count, ctx = model.Config.Context;
        var counts = layers.Select(l => Enumerable.Range(0, domains).Select(_ => new int[l.Options.Experts]).ToArray()).ToArray();
        var ids = tokenizer.Encode(corpus.Text);
        int n = Math.Min(maxTokens, ids.Length) / ctx * ctx;
        var tape = new Tape();
        for (int start = 0; start < n; start += ctx)
        {
            var window = ids[start..(start + ctx)];
            using (tape.NoGrad())
            {
                var output = model.Forward(tape, window, batch: 1);
                for (int l = 0; l < layers.Count; l++)
                {
                    var r = output.Moe[l].Routing;
                    if (r is null) continue;
                    for (int t = 0; t < ctx; t++)
                    {
                        int d = (int)corpus.CharDomains[start + t];
                        for (int p = r.TokenOffsets[t]; p < r.TokenOffsets[t + 1]; p++) counts[l][d][r.PairExpert[p]]++;
                    }
                }
            }
            tape.Reset();
        }
        return layers.Select((l, i) => new DomainRoutingLayer(l.Name, counts[i], MutualInformation(counts[i]))).ToArray();
    }

    /// <summary>I(D;X) = Σ p(d,x)·log2(p(d,x) / (p(d)·p(x))) over the count table.</summary>
    public static double MutualInformation(int[][] counts)
    {
        double total = counts.Sum(r => r.Sum(c => (double)c));
        if (total == 0) return 0;
        var pd = counts.Select(r => r.Sum(c => (double)c) / total).ToArray();
        int e = counts[0].Length;
        var px = Enumerable.Range(0, e).Select(x => counts.Sum(r => (double)r[x]) / total).ToArray();
        double mi = 0;
        for (int d = 0; d < counts.Length; d++)
            for (int x = 0; x < e; x++)
            {
                double p = counts[d][x] / total;
                if (p > 0) mi += p * Math.Log2(p / (pd[d] * px[x]));
            }
        return mi;
    }

    /// <summary>Writes domains.json in the run folder's format.</summary>
    public static string ToJson(IReadOnlyList<DomainRoutingLayer> layers) => JsonSerializer.Serialize(new
    {
        domains = MultiDomainCorpus.DomainNames,
        layers = layers.Select(l => new { layer = l.Layer, counts = l.Counts, mutual_information = l.MutualInformation }),
    });
}
