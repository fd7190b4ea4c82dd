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
        var maxMemory = CliOptions.MaxMemory();
        var policy = new Option<MoeSharp.Experts.ExpertCachePolicy>("--cache-policy") { Description = "With --max-memory: which expert the cache evicts, lfu or lru.", DefaultValueFactory = _ => MoeSharp.Experts.ExpertCachePolicy.Lfu };
        var command = new Command("bench", "Measure training and generation speed on this machine.") { model, preset, batch, steps, tokens, threads, quantize, maxMemory, policy };
        command.SetAction(p =>
        {
            var options = d with { Batch = p.GetValue(batch), Steps = p.GetValue(steps), Tokens = p.GetValue(tokens), Threads = p.GetValue(threads) };
            var format = p.GetValue(quantize);
            var budget = p.GetValue(maxMemory);
            bool inference = format is not null || budget is not null;
            var clock = System.Diagnostics.Stopwatch.StartNew();
            // Stored and paged weights are for inference only, so with --quantize or --max-memory the training measurement is left out.
            using var lm = p.GetValue(model) is { } dir
                ? inference ? ModelStore.Open(dir.FullName, CliOptions.Inference(null, format, budget, p.GetValue(policy))) : ModelStore.Open(dir.FullName)
                : !inference ? new MoeTransformer(Presets.Get(p.GetValue(preset)!, MultiDomainCorpus.Alphabet.Length))
                : throw new ArgumentException($"{(format is null ? "--max-memory" : "--quantize")} needs --model: a fresh preset has no checkpoint to read.");
            double load = clock.Elapsed.TotalSeconds;
            var config = lm.Config;
            Console.WriteLine($"model: {config.Preset}, {config.Layers} layers, d_model {config.DModel}, context {config.Context}, " +
                (config.Moe is { } moe ? $"{moe.Experts} experts, top-{moe.TopK}" : "dense") +
                $"; {lm.Arena.TotalElements:N0} parameters, {lm.ActiveParameters:N0} active; {options.Threads} threads");
            if (inference)
            {
                Console.WriteLine($"weights:  {ModelStore.Describe(lm)}, loaded in {load:F2} s");
                int[] prompt = [.. Enumerable.Range(0, 16).Select(i => i % config.Vocab)];
                Generator.Greedy(lm, prompt, 4, options.Threads); // warm-up: the JIT's final tier
                lm.ExpertCache?.ResetStats();
                clock.Restart();
                Generator.Greedy(lm, prompt, options.Tokens, options.Threads);
                Console.WriteLine($"generate: {options.Tokens / clock.Elapsed.TotalSeconds,9:N1} tok/s  (greedy, batch 1, {options.Tokens} tokens after a 16-token prompt, prompt included)");
                if (lm.ExpertCache is { } cache) PrintCache(cache);
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

    /// <summary>The expert cache's budget and, per MoE layer and in total, its hits, misses, hit rate and bytes read during the timed run.</summary>
    private static void PrintCache(MoeSharp.Experts.ExpertCache cache)
    {
        Console.WriteLine($"experts:  paged from {cache.Source} ({cache.Policy}): {cache.Capacity} slots for {cache.Experts} experts, {cache.SlotBytes:N0} bytes each; " +
            $"{cache.BytesHeld:N0} bytes held of a {cache.BudgetBytes:N0}-byte budget beside {cache.ResidentBytes:N0} resident bytes (weights, KV cache)");
        Console.WriteLine($"  {"layer",-40} {"hits",10} {"misses",10} {"hit rate",9} {"MB read",10}");
        foreach (var s in cache.Stats()) Console.WriteLine(Row(s));
        Console.WriteLine(Row(cache.Total()));
    }

    private static string Row(MoeSharp.Experts.ExpertCacheStats s) =>
        $"  {s.Layer,-40} {s.Hits,10:N0} {s.Misses,10:N0} {s.HitRate,9:P1} {s.BytesRead / 1e6,10:F1}";
}
