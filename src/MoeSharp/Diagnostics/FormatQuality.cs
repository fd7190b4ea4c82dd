using MoeSharp.Autograd;
using MoeSharp.Kernels;
using MoeSharp.Models;

namespace MoeSharp.Diagnostics;

/// <summary>What <see cref="FormatQuality.Measure"/> compares. These defaults are <c>moe eval --against</c>'s defaults.</summary>
public sealed record FormatQualityOptions
{
    /// <summary>The defaults, shared; derive others with <c>with</c>.</summary>
    public static FormatQualityOptions Default { get; } = new();

    /// <summary>Score at most this many tokens of the held-out ids (whole context windows).</summary>
    public int MaxTokens { get; init; } = 8192;

    /// <summary>Longest teacher-forced window; shorter ones when the model's context is shorter. Long contexts
    /// would hold [window, V] logits twice and cost attention for little more information per token.</summary>
    public int Window { get; init; } = 256;

    /// <summary>Greedy continuations compared; each starts at a different place of the held-out ids.</summary>
    public int Prompts { get; init; } = 8;

    /// <summary>Tokens of each prompt, taken from the held-out ids.</summary>
    public int PromptTokens { get; init; } = 16;

    /// <summary>Length of each greedy continuation.</summary>
    public int GreedyTokens { get; init; } = 64;

    /// <summary>Worker threads for this measurement only.</summary>
    public int Threads { get; init; } = Environment.ProcessorCount;

    /// <summary>Throws, naming the field and value, unless every option is in range.</summary>
    public void Validate()
    {
        if (MaxTokens <= 0) throw new ArgumentException($"Quality options: MaxTokens must be positive, got {MaxTokens}.", nameof(MaxTokens));
        if (Window < 1) throw new ArgumentException($"Quality options: Window must be at least 1, got {Window}.", nameof(Window));
        if (Prompts < 0) throw new ArgumentException($"Quality options: Prompts must be non-negative, got {Prompts}.", nameof(Prompts));
        if (PromptTokens < 1) throw new ArgumentException($"Quality options: PromptTokens must be at least 1, got {PromptTokens}.", nameof(PromptTokens));
        if (GreedyTokens < 1) throw new ArgumentException($"Quality options: GreedyTokens must be at least 1, got {GreedyTokens}.", nameof(GreedyTokens));
        if (Threads < 1) throw new ArgumentException($"Quality options: Threads must be at least 1, got {Threads}.", nameof(Threads));
    }
}

/// <summary>
/// A model in one weight format against the same model in fp32, over <see cref="Tokens"/> held-out tokens: both
/// perplexities, the mean KL(p_fp32 ‖ p_format) in nats per token, the fraction of tokens whose top-1 token agrees,
/// and per prompt the first position where the greedy continuations differ (the length when they never do).
/// </summary>
public sealed record FormatQualityReport(long Tokens, double ReferencePerplexity, double Perplexity, double MeanKl, double Top1Agreement,
    IReadOnlyList<int> GreedyFirstDifference, int GreedyTokens)
{
    /// <summary>Prompts whose whole greedy continuation is the same in both formats.</summary>
    public int GreedyIdentical => GreedyFirstDifference.Count(d => d == GreedyTokens);
}

/// <summary>
/// The quality of a weight format measured against fp32 on the same checkpoint (issue 10, item 6): teacher-forced
/// windows of held-out ids through both models, then free-running greedy continuations, where small logit errors
/// compound.
/// </summary>
public static class FormatQuality
{
    /// <summary>Compares <paramref name="candidate"/> with <paramref name="reference"/> (the same model in fp32) on <paramref name="ids"/>.</summary>
    /// <exception cref="ArgumentException">The models' vocabularies differ, or <paramref name="ids"/> is shorter than one window plus its target.</exception>
    public static FormatQualityReport Measure(MoeTransformer reference, MoeTransformer candidate, int[] ids, FormatQualityOptions? options = null)
    {
        options ??= FormatQualityOptions.Default;
        options.Validate();
        if (candidate.Config.Vocab != reference.Config.Vocab)
            throw new ArgumentException($"The models' vocabularies differ: {reference.Config.Vocab} against {candidate.Config.Vocab}.");
        int ctx = Math.Min(reference.Config.Context, options.Window);
        int windows = Math.Min(options.MaxTokens, ids.Length - 1) / ctx;
        if (windows == 0) throw new ArgumentException($"The held-out ids are {ids.Length} tokens; at least {ctx + 1} are needed.");
        using var limit = Workers.Limit(options.Threads);
        var tape = new Tape();
        var sums = new TokenScores();
        for (int w = 0; w < windows; w++)
        {
            int[] input = ids[(w * ctx)..((w + 1) * ctx)];
            float[] p, q; // [ctx, V] each
            using (tape.NoGrad())
            {
                p = reference.Forward(tape, input, batch: 1).Logits.Span.ToArray();
                q = candidate.Forward(tape, input, batch: 1).Logits.Span.ToArray();
            }
            tape.Reset();
            sums.Add(p, q, ids.AsSpan(w * ctx + 1, ctx));
        }
        var firstDifference = new int[options.Prompts];
        // prompts spread evenly over the held-out ids, so they are not all the same passage
        int stride = Math.Max(1, (ids.Length - options.PromptTokens) / Math.Max(1, options.Prompts));
        for (int i = 0; i < options.Prompts; i++)
        {
            int start = Math.Min(i * stride, Math.Max(0, ids.Length - options.PromptTokens));
            int[] prompt = ids[start..Math.Min(ids.Length, start + options.PromptTokens)];
            firstDifference[i] = FirstDifference(
                Generator.Greedy(reference, prompt, options.GreedyTokens, options.Threads),
                Generator.Greedy(candidate, prompt, options.GreedyTokens, options.Threads));
        }
        return new FormatQualityReport(sums.Tokens, sums.ReferencePerplexity, sums.Perplexity, sums.MeanKl, sums.Top1Agreement,
            firstDifference, options.GreedyTokens);
    }

    /// <summary>
    /// KL(softmax(<paramref name="referenceLogits"/>) ‖ softmax(<paramref name="logits"/>)) in nats, in double
    /// precision: Σ p (log p − log q). Exactly 0 for identical logits, since every term's difference is then 0.
    /// </summary>
    public static double KlDivergence(ReadOnlySpan<float> referenceLogits, ReadOnlySpan<float> logits)
    {
        if (referenceLogits.Length != logits.Length || logits.Length == 0)
            throw new ArgumentException($"KL divergence needs two non-empty distributions of one length, got {referenceLogits.Length} and {logits.Length}.");
        double zp = LogSumExp(referenceLogits), zq = LogSumExp(logits);
        double kl = 0;
        for (int i = 0; i < logits.Length; i++)
        {
            double lp = referenceLogits[i] - zp, lq = logits[i] - zq;
            kl += Math.Exp(lp) * (lp - lq);
        }
        return kl;
    }

    /// <summary>−log softmax(<paramref name="logits"/>)[<paramref name="target"/>] in nats; the mean over tokens is the log of the perplexity.</summary>
    public static double NegativeLogLikelihood(ReadOnlySpan<float> logits, int target)
    {
        if ((uint)target >= (uint)logits.Length)
            throw new ArgumentOutOfRangeException(nameof(target), $"Target token {target} is outside a vocabulary of {logits.Length}.");
        return LogSumExp(logits) - logits[target];
    }

    /// <summary>The first index where the two sequences differ; the shorter length when one is a prefix of the other.</summary>
    public static int FirstDifference(ReadOnlySpan<int> a, ReadOnlySpan<int> b)
    {
        int n = Math.Min(a.Length, b.Length);
        for (int i = 0; i < n; i++)
            if (a[i] != b[i]) return i;
        return n;
    }

    /// <summary>Running sums over scored tokens: both models' negative log-likelihoods, KL and top-1 agreement.</summary>
    internal sealed class TokenScores
    {
        private double _nllReference, _nll, _kl;
        private long _agree;

        public long Tokens { get; private set; }
        public double ReferencePerplexity => Math.Exp(_nllReference / Tokens);
        public double Perplexity => Math.Exp(_nll / Tokens);
        public double MeanKl => _kl / Tokens;
        public double Top1Agreement => (double)_agree / Tokens;

        /// <summary>Scores logits [T, V] of both models against the next tokens <paramref name="targets"/> [T].</summary>
        public void Add(ReadOnlySpan<float> reference, ReadOnlySpan<float> candidate, ReadOnlySpan<int> targets)
        {
            int vocab = reference.Length / targets.Length;
            if (vocab * targets.Length != reference.Length || candidate.Length != reference.Length)
                throw new ArgumentException($"Logits of {reference.Length} and {candidate.Length} values do not split into {targets.Length} rows of one vocabulary.");
            for (int t = 0; t < targets.Length; t++)
            {
                var pt = reference.Slice(t * vocab, vocab);
                var qt = candidate.Slice(t * vocab, vocab);
                _nllReference += NegativeLogLikelihood(pt, targets[t]);
                _nll += NegativeLogLikelihood(qt, targets[t]);
                _kl += KlDivergence(pt, qt);
                if (ArgMax(pt) == ArgMax(qt)) _agree++;
            }
            Tokens += targets.Length;
        }
    }

    private static double LogSumExp(ReadOnlySpan<float> x)
    {
        double max = double.NegativeInfinity;
        foreach (float v in x) max = Math.Max(max, v);
        double sum = 0;
        foreach (float v in x) sum += Math.Exp(v - max);
        return max + Math.Log(sum);
    }

    private static int ArgMax(ReadOnlySpan<float> x)
    {
        int best = 0;
        for (int i = 1; i < x.Length; i++)
            if (x[i] > x[best]) best = i;
        return best;
    }
}
