using System.CommandLine;
using MoeSharp.Data;
using MoeSharp.Diagnostics;
using MoeSharp.IO;

namespace MoeSharp.Cli.Commands;

/// <summary>
/// <c>moe eval</c>: loss and perplexity over every full window of a validation stream; on the built-in corpus also
/// the domain × expert routing table per layer and the mutual information between domain and expert. With
/// <c>--against fp32 --quantize F</c>: format F's quality against fp32 instead (<see cref="EvalAgainst"/>).
/// </summary>
internal static class EvalCommand
{
    public static Command Create()
    {
        var model = new Option<DirectoryInfo>("--model") { Description = "A run folder.", Required = true };
        var data = new Option<FileInfo?>("--data") { Description = "Evaluate on the last 10% of this text file instead of the run's own validation split." };
        var maxTokens = CliOptions.Int("--max-tokens", LmEvalOptions.Default.MaxTokens, 1, "Evaluate at most this many tokens.");
        var threads = CliOptions.Threads(LmEvalOptions.Default.Threads);
        var quantize = CliOptions.Quantize();
        var against = EvalAgainst.AgainstOption();
        var ids = EvalAgainst.IdsOption();
        var maxMemory = CliOptions.MaxMemory();
        var command = new Command("eval", "Evaluate a trained model.") { model, data, maxTokens, threads, quantize, against, ids, maxMemory };
        command.SetAction(p =>
        {
            if (p.GetValue(against) is not null)
                return EvalAgainst.Run(p.GetValue(model)!.FullName, p.GetValue(quantize), p.GetValue(data), p.GetValue(ids),
                    p.GetResult(maxTokens) is { Implicit: false } ? p.GetValue(maxTokens) : null, p.GetValue(threads));
            var folder = new RunFolder(p.GetValue(model)!.FullName);
            var run = folder.ReadConfig();
            using var lm = ModelStore.Open(folder.Path, CliOptions.Inference(null, p.GetValue(quantize), p.GetValue(maxMemory)));
            var source = p.GetValue(data) is { } file ? new DataSource { Kind = "file", Path = file.FullName } : run.Data;
            var lmData = LmData.Load(source, run.Alphabet);
            var result = LmEvaluator.Evaluate(lm, lmData, new LmEvalOptions { MaxTokens = p.GetValue(maxTokens), Threads = p.GetValue(threads) });
            Console.WriteLine($"validation: {result.Tokens:N0} tokens, loss {result.Loss:F4}, perplexity {result.Perplexity:F3}");
            if (result.Domains is { } table)
            {
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
                File.WriteAllText(folder.DomainsPath, DomainRouting.ToJson(table));
            }
            return 0;
        });
        return command;
    }
}
