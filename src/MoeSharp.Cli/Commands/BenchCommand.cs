using System.CommandLine;
using System.Diagnostics;
using MoeSharp.Data;
using MoeSharp.IO;
using MoeSharp.Kernels;
using MoeSharp.Models;
using MoeSharp.Tensors;
using MoeSharp.Training;

namespace MoeSharp.Cli.Commands;

/// <summary>
/// <c>moe bench</c>: how fast this machine trains and runs a model, measured the way <c>moe train</c> and
/// <c>moe generate</c> run it (forward, backward, clipping and AdamW per step; greedy decoding through the KV cache),
/// with the GEMM rate beside it for scale. Token ids are random: speed does not depend on them. The side-by-side
/// comparisons with PyTorch live in bench/, not here.
/// </summary>
internal static class BenchCommand
{
    public static Command Create()
    {
        var model = new Option<DirectoryInfo?>("--model") { Description = "A run folder or a Hugging Face model folder; without it, a fresh --preset model." };
        var preset = new Option<string>("--preset") { Description = "dense, mixtral, qwen-moe, deepseek or switch.", DefaultValueFactory = _ => "mixtral" };
        var batch = CliOptions.Int("--batch", LmTrainOptions.Default.Batch, 1, "Sequences per training step.");
        var steps = CliOptions.Int("--steps", 50, 1, "Timed training steps, after two seconds of untimed ones.");
        var tokens = CliOptions.Int("--tokens", 200, 1, "Tokens to generate, after a 16-token prompt.");
        var threads = CliOptions.Threads(LmTrainOptions.Default.Threads);
        var command = new Command("bench", "Measure training and generation speed on this machine.") { model, preset, batch, steps, tokens, threads };
        command.SetAction(p =>
        {
            int t = p.GetValue(threads), b = p.GetValue(batch), n = p.GetValue(steps), generated = p.GetValue(tokens);
            var lm = p.GetValue(model) is { } dir ? ModelStore.Open(dir.FullName) : new MoeTransformer(Presets.Get(p.GetValue(preset)!, MultiDomainCorpus.Alphabet.Length));
            var config = lm.Config;
            Console.WriteLine($"model: {config.Preset}, {config.Layers} layers, d_model {config.DModel}, context {config.Context}, " +
                (config.Moe is { } moe ? $"{moe.Experts} experts, top-{moe.TopK}" : "dense") +
                $"; {lm.Arena.Length:N0} parameters, {lm.ActiveParameters:N0} active; {t} threads");

            var rng = new Rng(1);
            // Enough tokens that the 90 % training split holds a batch of windows several times over.
            var ids = new int[Math.Max(10 * (b + 1) * (config.Context + 1), 4096)];
            for (int i = 0; i < ids.Length; i++) ids[i] = rng.NextInt(config.Vocab);
            var trainer = new LmTrainer(lm, new TextDataset(ids), new LmTrainOptions { Batch = b, Steps = int.MaxValue, WarmupSteps = 0, Threads = t });
            // Untimed steps for at least two seconds: the JIT recompiles hot methods at full optimisation, with profile data, only after they have run a while.
            var clock = Stopwatch.StartNew();
            for (int i = 0; i < 3 || clock.Elapsed.TotalSeconds < 2; i++) trainer.TrainStep();
            clock.Restart();
            for (int i = 0; i < n; i++) trainer.TrainStep();
            double perStep = clock.Elapsed.TotalSeconds / n;
            Console.WriteLine($"train:    {b * config.Context / perStep,9:N0} tok/s  ({perStep * 1e3:F1} ms per step of {b} × {config.Context} tokens)");

            var prompt = ids[..Math.Min(16, config.Context)];
            Generator.Greedy(lm, prompt, Math.Min(generated, 64), t);
            clock.Restart();
            Generator.Greedy(lm, prompt, generated, t);
            Console.WriteLine($"generate: {generated / clock.Elapsed.TotalSeconds,9:N0} tok/s  (greedy, batch 1, {generated} tokens after a {prompt.Length}-token prompt)");

            const int size = 512;
            var a = new float[size * size];
            var c = new float[size * size];
            rng.FillNormal(a, 0, 1);
            using var limit = Workers.Limit(t);
            Gemm.Multiply(a, a, c, size, size, size);
            int repeats = 0;
            clock.Restart();
            while (clock.Elapsed.TotalSeconds < 0.5 || repeats < 3)
            {
                Gemm.Multiply(a, a, c, size, size, size);
                repeats++;
            }
            Console.WriteLine($"gemm:     {2.0 * size * size * size * repeats / clock.Elapsed.TotalSeconds / 1e9,9:F1} GFLOP/s ({size}³ fp32, {Gemm.VectorBits}-bit vectors)");
            return 0;
        });
        return command;
    }
}
