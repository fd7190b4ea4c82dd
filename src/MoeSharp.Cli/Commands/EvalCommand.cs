using System.CommandLine;
using MoeSharp.Autograd;
using MoeSharp.Data;
using MoeSharp.Diagnostics;
using MoeSharp.IO;
using MoeSharp.Kernels;
using MoeSharp.Models;

namespace MoeSharp.Cli.Commands;

/// <summary>
/// <c>moe eval</c>: loss and perplexity over every full window of a validation stream; on the built-in corpus also
/// the domain × expert routing table per layer and the mutual information between domain and expert.
/// </summary>
internal static class EvalCommand
{
    public static Command Create()
    {
        var model = new Option<DirectoryInfo>("--model") { Description = "A run folder.", Required = true };
        var data = new Option<FileInfo?>("--data") { Description = "Evaluate on the last 10% of this text file instead of the run's own validation split." };
        var maxTokens = CliOptions.Int("--max-tokens", 50_000, 1, "Evaluate at most this many tokens.");
        var threads = CliOptions.Threads(Environment.ProcessorCount);
        var command = new Command("eval", "Evaluate a trained model.") { model, data, maxTokens, threads };
        command.SetAction(p =>
        {
            Workers.Threads = p.GetValue(threads);
            var folder = new RunFolder(p.GetValue(model)!.FullName);
            var run = folder.ReadConfig();
            var lm = ModelStore.Open(folder.Path);
            var source = p.GetValue(data) is { } file ? new DataSource { Kind = "file", Path = file.FullName } : run.Data;
            var lmData = LmData.Load(source, run.Alphabet);
            var (loss, tokens) = Evaluate(lm, lmData.Dataset.Validation, p.GetValue(maxTokens));
            Console.WriteLine($"validation: {tokens:N0} tokens, loss {loss:F4}, perplexity {Math.Exp(loss):F3}");
            if (lmData.Validation is not null && lm.MoeLayers.Count > 0)
            {
                var table = DomainRouting.Measure(lm, lmData.Tokenizer, lmData.Validation, p.GetValue(maxTokens));
                foreach (var layer in table)
                {
                    Console.WriteLine($"{layer.Layer}  I(domain; expert) = {layer.MutualInformation:F3} bits");
                    Console.WriteLine("  " + "domain".PadRight(12) + string.Concat(Enumerable.Range(0, layer.Counts[0].Length).Select(e => $"e{e}".PadLeft(7))));
                    for (int d = 0; d < layer.Counts.Length; d++)
                    {
                        double total = Math.Max(1, layer.Counts[d].Sum());
                        Console.WriteLine("  " + MultiDomainCorpus.DomainNames[d].PadRight(12) + string.Concat(layer.Counts[d].Select(c => $"{c / total,7:P0}")));
                    }
                }
                File.WriteAllText(folder.File("domains.json"), DomainRouting.ToJson(table));
            }
            return 0;
        });
        return command;
    }

    /// <summary>Mean cross-entropy over consecutive full context windows of <paramref name="ids"/>.</summary>
    private static (double Loss, long Tokens) Evaluate(MoeTransformer model, int[] ids, int maxTokens)
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
