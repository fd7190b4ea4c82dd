using System.Diagnostics;
using MoeSharp.Data;
using MoeSharp.Kernels;
using MoeSharp.Models;
using MoeSharp.Tensors;
using MoeSharp.Training;

namespace MoeSharp.Diagnostics;

/// <summary>The settings of one <see cref="SpeedBench.Run"/>; the defaults are <c>moe bench</c>'s.</summary>
public sealed record SpeedBenchOptions
{
    /// <summary>The defaults.</summary>
    public static SpeedBenchOptions Default { get; } = new();

    /// <summary>Sequences per training step.</summary>
    public int Batch { get; init; } = LmTrainOptions.Default.Batch;

    /// <summary>Timed training steps, after <see cref="WarmupSeconds"/> of untimed ones.</summary>
    public int Steps { get; init; } = 50;

    /// <summary>Tokens to generate greedily, after a prompt of up to 16 tokens.</summary>
    public int Tokens { get; init; } = 200;

    /// <summary>Threads of every measurement.</summary>
    public int Threads { get; init; } = LmTrainOptions.Default.Threads;

    /// <summary>Untimed training before the timed steps (at least three steps), so the JIT has optimised the hot methods.</summary>
    public double WarmupSeconds { get; init; } = 2;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first field out of range.</summary>
    public void Validate()
    {
        static void Positive(int value, string field)
        {
            if (value < 1) throw new ArgumentException($"SpeedBenchOptions.{field}: must be at least 1, got {value}.", field);
        }
        Positive(Batch, nameof(Batch));
        Positive(Steps, nameof(Steps));
        Positive(Tokens, nameof(Tokens));
        Positive(Threads, nameof(Threads));
        if (!(WarmupSeconds >= 0 && double.IsFinite(WarmupSeconds)))
            throw new ArgumentException($"SpeedBenchOptions.WarmupSeconds: must be a non-negative number, got {WarmupSeconds}.", nameof(WarmupSeconds));
    }
}

/// <summary>What <see cref="SpeedBench.Run"/> measured, with the settings it used.</summary>
/// <param name="Options">The settings of the run.</param>
/// <param name="TrainTokensPerSecond">Training tokens per second: batch × context per step.</param>
/// <param name="SecondsPerStep">Mean seconds of one timed training step.</param>
/// <param name="TokensPerStep">Tokens of one training step (batch × context).</param>
/// <param name="GenerateTokensPerSecond">Greedy generation tokens per second, batch 1, through the KV cache.</param>
/// <param name="PromptTokens">Length of the generation prompt.</param>
/// <param name="GemmGflops">The fp32 GEMM rate in GFLOP/s (2·n³ per product).</param>
/// <param name="GemmSize">n of the n × n × n GEMM.</param>
/// <param name="VectorBits">Width of the SIMD vectors the GEMM ran on.</param>
public sealed record SpeedBenchResult(
    SpeedBenchOptions Options, double TrainTokensPerSecond, double SecondsPerStep, int TokensPerStep,
    double GenerateTokensPerSecond, int PromptTokens, double GemmGflops, int GemmSize, int VectorBits);

/// <summary>
/// How fast this machine trains and runs a model, measured the way <see cref="LmTrainer"/> and
/// <see cref="Generator"/> run it (forward, backward, clipping and AdamW per step; greedy decoding through the KV
/// cache), with the GEMM rate beside it for scale. Token ids are random: speed does not depend on them. This is
/// <c>moe bench</c>; side-by-side comparisons with other frameworks live in bench/.
/// </summary>
public static class SpeedBench
{
    private const int GemmSize = 512;

    /// <summary>Measures <paramref name="model"/> (whose weights it trains) under <paramref name="options"/>, validated first.</summary>
    public static SpeedBenchResult Run(MoeTransformer model, SpeedBenchOptions? options = null)
    {
        var o = options ?? SpeedBenchOptions.Default;
        o.Validate();
        var config = model.Config;
        var rng = new Rng(1);
        // Enough tokens that the 90 % training split holds a batch of windows several times over.
        var ids = new int[Math.Max(10 * (o.Batch + 1) * (config.Context + 1), 4096)];
        for (int i = 0; i < ids.Length; i++) ids[i] = rng.NextInt(config.Vocab);
        var trainer = new LmTrainer(model, new TextDataset(ids), new LmTrainOptions { Batch = o.Batch, Steps = int.MaxValue, WarmupSteps = 0, Threads = o.Threads });
        // The JIT recompiles hot methods at full optimisation, with profile data, only after they have run a while.
        var clock = Stopwatch.StartNew();
        for (int i = 0; i < 3 || clock.Elapsed.TotalSeconds < o.WarmupSeconds; i++) trainer.TrainStep();
        clock.Restart();
        for (int i = 0; i < o.Steps; i++) trainer.TrainStep();
        double perStep = clock.Elapsed.TotalSeconds / o.Steps;
        int tokensPerStep = o.Batch * config.Context;

        var prompt = ids[..Math.Min(16, config.Context)];
        Generator.Greedy(model, prompt, Math.Min(o.Tokens, 64), o.Threads);
        clock.Restart();
        Generator.Greedy(model, prompt, o.Tokens, o.Threads);
        double generate = o.Tokens / clock.Elapsed.TotalSeconds;

        return new SpeedBenchResult(o, tokensPerStep / perStep, perStep, tokensPerStep, generate, prompt.Length,
            GemmGflops(rng, o.Threads), GemmSize, Gemm.VectorBits);
    }

    /// <summary>One warm-up product, then products for at least half a second (and at least three).</summary>
    private static double GemmGflops(Rng rng, int threads)
    {
        var a = new float[GemmSize * GemmSize]; // [n, n]
        var c = new float[GemmSize * GemmSize]; // [n, n]
        rng.FillNormal(a, 0, 1);
        using var limit = Workers.Limit(threads);
        Gemm.Multiply(a, a, c, GemmSize, GemmSize, GemmSize);
        int repeats = 0;
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed.TotalSeconds < 0.5 || repeats < 3)
        {
            Gemm.Multiply(a, a, c, GemmSize, GemmSize, GemmSize);
            repeats++;
        }
        return 2.0 * GemmSize * GemmSize * GemmSize * repeats / clock.Elapsed.TotalSeconds / 1e9;
    }
}
