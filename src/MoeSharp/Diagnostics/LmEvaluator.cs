using MoeSharp.Autograd;
using MoeSharp.Data;
using MoeSharp.Kernels;
using MoeSharp.Models;

namespace MoeSharp.Diagnostics;

/// <summary>What <see cref="LmEvaluator.Evaluate"/> measures. These defaults are <c>moe eval</c>'s defaults.</summary>
public sealed record LmEvalOptions
{
    /// <summary>The defaults, shared; records are immutable, so derive others with <c>with</c>.</summary>
    public static LmEvalOptions Default { get; } = new();

    /// <summary>Evaluate at most this many tokens (whole context windows).</summary>
    public int MaxTokens { get; init; } = 50_000;

    /// <summary>Worker threads for this evaluation only (scoped to the call; results are bitwise the same for any count).</summary>
    public int Threads { get; init; } = Environment.ProcessorCount;

    /// <summary>Throws, naming the field and value, unless every option is in range.</summary>
    public void Validate()
    {
        if (MaxTokens <= 0) throw new ArgumentException($"Evaluation options: MaxTokens must be positive, got {MaxTokens}.", nameof(MaxTokens));
        if (Threads < 1) throw new ArgumentException($"Evaluation options: Threads must be at least 1, got {Threads}.", nameof(Threads));
    }
}

/// <summary>Validation loss over <see cref="Tokens"/> tokens, and on the built-in corpus the domain × expert table of every MoE layer.</summary>
public sealed record LmEvaluation(double Loss, long Tokens, IReadOnlyList<DomainRoutingLayer>? Domains)
{
    /// <summary>exp(<see cref="Loss"/>), with the loss in nats per token.</summary>
    public double Perplexity => Math.Exp(Loss);
}

/// <summary>
/// <c>moe eval</c>'s measurement: mean cross-entropy over consecutive full context windows of the validation
/// split, and which experts serve which domain when the data is the built-in corpus.
/// </summary>
public static class LmEvaluator
{
    /// <summary>Mean validation cross-entropy of <paramref name="model"/> over at most <see cref="LmEvalOptions.MaxTokens"/> tokens of <paramref name="data"/>, with the domain routing tables on the built-in corpus.</summary>
    public static LmEvaluation Evaluate(MoeTransformer model, LmData data, LmEvalOptions? options = null)
    {
        options ??= LmEvalOptions.Default;
        options.Validate();
        using var limit = Workers.Limit(options.Threads);
        var (loss, tokens) = Loss(model, data.Dataset.Validation, options.MaxTokens);
        var domains = data.Validation is not null && model.MoeLayers.Count > 0
            ? DomainRouting.Measure(model, data.Tokenizer, data.Validation, options.MaxTokens)
            : null;
        return new LmEvaluation(loss, tokens, domains);
    }

    /// <summary>Mean cross-entropy over consecutive full context windows of <paramref name="ids"/>.</summary>
    public static (double Loss, long Tokens) Loss(MoeTransformer model, int[] ids, int maxTokens)
    {
        int ctx = model.Config.Context;
        int windows = Math.Min(maxTokens, ids.Length - 1) / ctx;
        if (windows == 0) throw new ArgumentException($"The validation split has {ids.Length} tokens; at least {ctx + 1} are needed.");
        var tape = new Tape();
        double total = 0;
        for (int w = 0; w < windows; w++)
        {
            using (tape.NoGrad())
                total += model.Loss(tape, ids[(w * ctx)..((w + 1) * ctx)], ids[(w * ctx + 1)..((w + 1) * ctx + 1)], batch: 1).CrossEntropy[0];
            tape.Reset();
        }
        return (total / windows, (long)windows * ctx);
    }
}
