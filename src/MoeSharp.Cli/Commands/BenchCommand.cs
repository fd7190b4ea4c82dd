using System.CommandLine;
using MoeSharp.Data;
using MoeSharp.Diagnostics;
using MoeSharp.IO;
using MoeSharp.Models;

namespace MoeSharp.Cli.Commands;

/// <summary><c>moe bench</c>: <see cref="SpeedBench"/> on a saved model or a fresh preset, printed.</summary>
internal static class BenchCommand
{
    public static Command Create()
    {
        var d = SpeedBenchOptions.Default;
        var model = new Option<DirectoryInfo?>("--model") { Description = "A run folder or a Hugging Face model folder; without it, a fresh --preset model." };
        var preset = new Option<string>("--preset") { Description = "dense, mixtral, qwen-moe, deepseek or switch.", DefaultValueFactory = _ => "mixtral" };
        var batch = CliOptions.Int("--batch", d.Batch, 1, "Sequences per training step.");
        var steps = CliOptions.Int("--steps", d.Steps, 1, "Timed training steps, after two seconds of untimed ones.");
        var tokens = CliOptions.Int("--tokens", d.Tokens, 1, "Tokens to generate, after a 16-token prompt.");
        var threads = CliOptions.Threads(d.Threads);
        var quantize = CliOptions.Quantize();
        var command = new Command("bench", "Measure training and generation speed on this machine.") { model, preset, batch, steps, tokens, threads, quantize };
        command.SetAction(p =>
        {
            var options = d with { Batch = p.GetValue(batch), Steps = p.GetValue(steps), Tokens = p.GetValue(tokens), Threads = p.GetValue(threads) };
            var format = p.GetValue(quantize);
            var clock = System.Diagnostics.Stopwatch.StartNew();
            // Quantized weights are for inference only, so with --quantize the training measurement is left out.
            using var lm = p.GetValue(model) is { } dir
                ? format is null ? ModelStore.Open(dir.FullName) : ModelStore.Open(dir.FullName, CliOptions.Inference(null, format))
                : format is null ? new MoeTransformer(Presets.Get(p.GetValue(preset)!, MultiDomainCorpus.Alphabet.Length))
                : throw new ArgumentException("--quantize needs --model: a fresh preset has no checkpoint to quantize.");
            double load = clock.Elapsed.TotalSeconds;
            var config = lm.Config;
            Console.WriteLine($"model: {config.Preset}, {config.Layers} layers, d_model {config.DModel}, context {config.Context}, " +
                (config.Moe is { } moe ? $"{moe.Experts} experts, top-{moe.TopK}" : "dense") +
                $"; {lm.Arena.TotalElements:N0} parameters, {lm.ActiveParameters:N0} active; {options.Threads} threads");
            if (format is not null)
            {
                Console.WriteLine($"weights:  {ModelStore.Describe(lm)}, loaded in {load:F2} s");
                int[] prompt = [.. Enumerable.Range(0, 16).Select(i => i % config.Vocab)];
                Generator.Greedy(lm, prompt, 4, options.Threads); // warm-up: the JIT's final tier
                clock.Restart();
                Generator.Greedy(lm, prompt, options.Tokens, options.Threads);
                Console.WriteLine($"generate: {options.Tokens / clock.Elapsed.TotalSeconds,9:N1} tok/s  (greedy, batch 1, {options.Tokens} tokens after a 16-token prompt, prompt included)");
                return 0;
            }
            var r = SpeedBench.Run(lm, options);
            Console.WriteLine($"train:    {r.TrainTokensPerSecond,9:N0} tok/s  ({r.SecondsPerStep * 1e3:F1} ms per step of {options.Batch} × {config.Context} tokens)");
            Console.WriteLine($"generate: {r.GenerateTokensPerSecond,9:N0} tok/s  (greedy, batch 1, {options.Tokens} tokens after a {r.PromptTokens}-token prompt)");
            Console.WriteLine($"gemm:     {r.GemmGflops,9:F1} GFLOP/s ({r.GemmSize}³ fp32, {r.VectorBits}-bit vectors)");
            return 0;
        });
        return command;
    }
}
