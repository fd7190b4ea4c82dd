using MoeSharp.Autograd;
using MoeSharp.Nn;
using MoeSharp.Tensors;

namespace MoeSharp.Models;

/// <summary>
/// How the next token is picked. Temperature 0 is greedy (ties to the lower id). These defaults are
/// <c>moe generate</c>'s defaults: the CLI reads them from <see cref="Default"/>.
/// </summary>
public sealed record SamplingOptions
{
    /// <summary>The defaults, shared with <c>moe generate</c>.</summary>
    public static SamplingOptions Default { get; } = new();

    /// <summary>Divides the logits before the softmax; 0 picks the most likely token, above 1 flattens the distribution.</summary>
    public float Temperature { get; init; } = 0.8f;

    /// <summary>Keep only the k most likely tokens; 0 keeps all.</summary>
    public int TopK { get; init; }

    /// <summary>Keep the smallest set of tokens whose probability reaches p (nucleus); 1 keeps all.</summary>
    public float TopP { get; init; } = 1f;

    /// <summary>Seeds the sampler, so a (prompt, options) pair always generates the same text.</summary>
    public ulong Seed { get; init; }

    /// <summary>Worker threads for the forward passes (scoped to each call, like <see cref="Kernels.Parallelism.Limit"/>).</summary>
    public int Threads { get; init; } = Environment.ProcessorCount;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first field out of range.</summary>
    public void Validate()
    {
        if (Threads < 1) throw new ArgumentException($"Threads must be at least 1, got {Threads}.", nameof(Threads));
        if (!(Temperature >= 0) || !float.IsFinite(Temperature)) throw new ArgumentException($"Temperature must be a non-negative number, got {Temperature}.", nameof(Temperature));
        if (TopK < 0) throw new ArgumentException($"top-k must be non-negative, got {TopK}.", nameof(TopK));
        if (!(TopP > 0 && TopP <= 1)) throw new ArgumentException($"top-p must be in (0, 1], got {TopP}.", nameof(TopP));
    }
}

/// <summary>A generated token and, per MoE layer, the experts it was routed to.</summary>
public sealed record GeneratedToken(int Id, IReadOnlyList<int[]> Experts);

/// <summary>
/// Autoregressive generation through the KV cache: the prompt in one pass, then one token per step. When the
/// cache reaches the model's context, the last three quarters of the text are re-encoded from position 0 (a
/// sliding window), so generation can run past the context the model was trained with.
/// </summary>
public static class Generator
{
    /// <summary>Streams up to <paramref name="maxTokens"/> new tokens after <paramref name="prompt"/>.</summary>
    public static IEnumerable<GeneratedToken> Stream(MoeTransformer model, int[] prompt, int maxTokens, SamplingOptions sampling)
    {
        Check(model, prompt, maxTokens, sampling);
        return Run(model, prompt, maxTokens, sampling);
    }

    /// <summary>Throws <see cref="ArgumentException"/> naming what is wrong with a request.</summary>
    internal static void Check(MoeTransformer model, int[] prompt, int maxTokens, SamplingOptions sampling)
    {
        sampling.Validate();
        if (prompt.Length == 0) throw new ArgumentException("The prompt is empty; generation needs at least one token.", nameof(prompt));
        if (maxTokens < 0) throw new ArgumentOutOfRangeException(nameof(maxTokens), $"The number of tokens to generate must be non-negative, got {maxTokens}.");
        foreach (int id in prompt)
            if ((uint)id >= (uint)model.Config.Vocab)
                throw new ArgumentException($"Prompt token id {id} is outside the vocabulary [0, {model.Config.Vocab}).", nameof(prompt));
        if (prompt.Length > model.Config.Context)
            throw new ArgumentException($"The prompt has {prompt.Length} tokens; the model's context is {model.Config.Context}.", nameof(prompt));
    }

    private static IEnumerable<GeneratedToken> Run(MoeTransformer model, int[] prompt, int maxTokens, SamplingOptions sampling)
    {
        var cache = model.NewCache(CacheCapacity(model, prompt.Length, maxTokens));
        var history = new List<int>(prompt);
        var tape = new Tape();
        var rng = new Rng(sampling.Seed);
        var probs = new float[model.Config.Vocab];
        int[][] input = [prompt];
        KvCache[] caches = [cache];
        for (int i = 0; i < maxTokens; i++)
        {
            int next;
            IReadOnlyList<int[]> experts;
            // The limit is scoped to the forward pass, never held across a yield into the caller's code.
            using (Kernels.Workers.Limit(sampling.Threads))
            using (tape.NoGrad())
            {
                Kernels.DecodeProfile.Mark();
                // Only the last row's logits are computed: a prompt of n tokens costs one row of the LM head, not n.
                var output = model.ForwardBatch(tape, input, caches);
                next = Pick(output.Logits.Span, sampling, rng, probs);
                experts = output.Experts[0];
                Kernels.DecodeProfile.Charge(Kernels.DecodeProfile.Op.Sampling);
            }
            tape.Reset();
            Kernels.DecodeProfile.Charge(Kernels.DecodeProfile.Op.TapeReset);
            yield return new GeneratedToken(next, experts);
            history.Add(next);
            if (i == maxTokens - 1) break;
            input[0] = NextInput(cache, history, next);
        }
    }

    /// <summary>Positions a request's cache needs: the prompt and every generated token but the last, within the context.</summary>
    internal static int CacheCapacity(MoeTransformer model, int prompt, int maxTokens) =>
        Math.Min(model.Config.Context, prompt + Math.Max(0, maxTokens - 1));

    /// <summary>
    /// The ids of the next step after <paramref name="next"/>: that token alone, or, once the cache is full (only when
    /// generating past the context), the last three quarters of the text re-encoded from position 0 into the
    /// cleared cache, at the positions the model was trained on.
    /// </summary>
    internal static int[] NextInput(KvCache cache, List<int> history, int next)
    {
        if (cache.Length < cache.Capacity) return [next];
        cache.Clear();
        int keep = cache.Capacity * 3 / 4;
        return history.GetRange(history.Count - keep, keep).ToArray();
    }

    /// <summary>The greedy continuation as token ids.</summary>
    public static int[] Greedy(MoeTransformer model, int[] prompt, int maxTokens, int? threads = null) =>
        Stream(model, prompt, maxTokens, new SamplingOptions { Temperature = 0, Threads = threads ?? Environment.ProcessorCount }).Select(t => t.Id).ToArray();

    /// <summary>Samples from logits [V] after temperature, top-k and top-p.</summary>
    internal static int Pick(ReadOnlySpan<float> logits, SamplingOptions o, Rng rng, float[] probs)
    {
        if (o.Temperature == 0) return TensorPrimitives.IndexOfMax(logits);
        int v = logits.Length;
        TensorPrimitives.Divide(logits, o.Temperature, probs);
        if (o.TopK > 0 && o.TopK < v)
        {
            // Everything below the k-th largest logit is excluded.
            var sorted = probs.ToArray();
            Array.Sort(sorted);
            float kth = sorted[v - o.TopK];
            for (int j = 0; j < v; j++) if (probs[j] < kth) probs[j] = float.NegativeInfinity;
        }
        Kernels.Softmax.Rows(probs, probs, v);
        if (o.TopP < 1)
        {
            var order = Enumerable.Range(0, v).OrderByDescending(j => probs[j]).ThenBy(j => j).ToArray();
            float mass = 0;
            int keep = 0;
            while (keep < v && mass < o.TopP) mass += probs[order[keep++]];
            for (int i = keep; i < v; i++) probs[order[i]] = 0;
            TensorPrimitives.Divide(probs, mass, probs);
        }
        float u = rng.NextFloat(), acc = 0;
        for (int j = 0; j < v; j++)
        {
            acc += probs[j];
            if (u < acc) return j;
        }
        return TensorPrimitives.IndexOfMax(probs);
    }
}
