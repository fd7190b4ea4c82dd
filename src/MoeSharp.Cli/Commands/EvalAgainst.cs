using System.CommandLine;
using System.Globalization;
using MoeSharp.Data;
using MoeSharp.Diagnostics;
using MoeSharp.Formats;
using MoeSharp.IO;

namespace MoeSharp.Cli.Commands;

/// <summary>
/// <c>moe eval --against fp32 --quantize F</c>: the model quantized to F on load, measured against the same
/// checkpoint in fp32 (<see cref="FormatQuality"/>). It lives in <c>eval</c> rather than the bench project because it
/// is a measurement of a model a user holds (a run folder, an HF folder or a GGUF file), tested like the other commands.
/// The held-out ids are a run's validation split (or the last 10% of <c>--data</c>), or <c>--ids FILE</c> for a
/// checkpoint without a tokenizer.
/// </summary>
internal static class EvalAgainst
{
    public static Option<string?> AgainstOption() => new("--against")
    {
        Description = "Measure --quantize's format against this one on the same checkpoint (fp32 only): perplexity, KL divergence, top-1 and greedy agreement.",
        CustomParser = r =>
        {
            string token = r.Tokens.Count == 0 ? "" : r.Tokens[^1].Value;
            if (token.Equals("fp32", StringComparison.OrdinalIgnoreCase) || token.Equals("f32", StringComparison.OrdinalIgnoreCase)) return "fp32";
            r.AddError($"--against: expected fp32, got '{token}'");
            return null;
        },
    };

    public static Option<FileInfo?> IdsOption() => new("--ids")
    {
        Description = "With --against: held-out token ids (comma- or whitespace-separated) instead of the run's validation split.",
    };

    public static int Run(string path, WeightFormat? format, FileInfo? data, FileInfo? idsFile, int? maxTokens, int threads)
    {
        if (format is not { } f) throw new ArgumentException("--against fp32 needs --quantize FORMAT: the format to measure.");
        int[] ids = idsFile is not null ? ReadIds(idsFile) : Validation(path, data);
        var options = FormatQualityOptions.Default with { Threads = threads };
        if (maxTokens is { } m) options = options with { MaxTokens = m };
        using var reference = ModelStore.Open(path, CliOptions.Inference(null, WeightFormat.F32));
        using var candidate = ModelStore.Open(path, CliOptions.Inference(null, f));
        var r = FormatQuality.Measure(reference, candidate, ids, options);
        var inv = CultureInfo.InvariantCulture;
        Console.WriteLine(string.Create(inv,
            $"quality format={f} against=fp32 tokens={r.Tokens} ppl_fp32={r.ReferencePerplexity:F4} ppl={r.Perplexity:F4} " +
            $"kl={r.MeanKl:E3} top1={r.Top1Agreement:F4} greedy_first_diff_mean={r.GreedyFirstDifference.Average():F1} " +
            $"greedy_first_diff_min={r.GreedyFirstDifference.Min()} greedy_identical={r.GreedyIdentical}/{r.GreedyFirstDifference.Count} " +
            $"greedy_tokens={r.GreedyTokens}"));
        return 0;
    }

    /// <summary>A run folder's validation split, or the last 10% of <paramref name="data"/> in the run's alphabet.</summary>
    private static int[] Validation(string path, FileInfo? data)
    {
        var folder = new RunFolder(path);
        if (!File.Exists(folder.CheckpointPath))
            throw new ArgumentException($"--model '{path}' is not a run folder (no {RunFolder.CheckpointFile}); give the held-out tokens with --ids FILE.");
        var run = folder.ReadConfig();
        var source = data is not null ? new DataSource { Kind = "file", Path = data.FullName } : run.Data;
        return LmData.Load(source, run.Alphabet).Dataset.Validation;
    }

    private static int[] ReadIds(FileInfo file)
    {
        if (!file.Exists) throw new FileNotFoundException($"--ids: file '{file.FullName}' does not exist.");
        var parts = File.ReadAllText(file.FullName).Split([',', ' ', '\n', '\r', '\t'], StringSplitOptions.RemoveEmptyEntries);
        var ids = new int[parts.Length];
        for (int i = 0; i < parts.Length; i++)
            if (!int.TryParse(parts[i], NumberStyles.None, CultureInfo.InvariantCulture, out ids[i]))
                throw new InvalidDataException($"{file.FullName}: token {i} is '{parts[i]}'; expected a non-negative integer id.");
        return ids;
    }
}
