using System.CommandLine;
using MoeSharp.Data;
using MoeSharp.IO;
using MoeSharp.Models;

namespace MoeSharp.Cli.Commands;

/// <summary><c>moe generate</c>: streams a continuation from a run folder or a Hugging Face model folder (any <see cref="MoeSharp.IO.HfArchitecture"/>).</summary>
internal static class GenerateCommand
{
    public static Command Create()
    {
        var model = new Option<DirectoryInfo>("--model") { Description = "A run folder, a Hugging Face folder (config.json + safetensors; model_type mixtral, qwen2_moe, qwen3_moe or olmoe), or a GGUF file (llama for Mixtral, qwen2moe, qwen3moe, olmoe).", Required = true };
        var prompt = new Option<string?>("--prompt") { Description = "Prompt text (needs the run's character vocabulary)." };
        var promptIds = new Option<string?>("--prompt-ids") { Description = "Prompt as comma-separated token ids, e.g. 3,14,15." };
        var maxTokens = CliOptions.Int("--max-tokens", 200, 1, "Tokens to generate.");
        var temperature = CliOptions.Number("--temperature", SamplingOptions.Default.Temperature, 0f, float.MaxValue, description: "0 for greedy.");
        var topK = CliOptions.Int("--top-k", SamplingOptions.Default.TopK, 0, "Sample from the k most likely tokens (0: all).");
        var topP = CliOptions.Number("--top-p", SamplingOptions.Default.TopP, 0f, 1f, minExcluded: true, "Sample from the smallest set of tokens whose probability reaches p (1: all).");
        var seed = CliOptions.Seed(SamplingOptions.Default.Seed);
        var printIds = new Option<bool>("--print-ids") { Description = "Print the generated token ids, comma-separated, instead of text." };
        var chat = new Option<string?>("--chat") { Description = "A question, answered as one chat turn with the model folder's tokenizer and chat template." };
        var showRouting = new Option<bool>("--show-routing") { Description = "Print each generated token with the experts it went to in each layer." };
        var threads = CliOptions.Threads(SamplingOptions.Default.Threads);
        var quantize = CliOptions.Quantize();
        var maxMemory = CliOptions.MaxMemory();
        var cluster = ClusterCli.Option();
        var command = new Command("generate", "Generate text with the KV cache.")
        {
            model, prompt, promptIds, maxTokens, temperature, topK, topP, seed, printIds, showRouting, threads, chat, quantize, maxMemory, cluster,
        };
        command.SetAction(p =>
        {
            var dir = p.GetValue(model)!.FullName;
            int max = p.GetValue(maxTokens);
            var sampling = new SamplingOptions { Temperature = p.GetValue(temperature), TopK = p.GetValue(topK), TopP = p.GetValue(topP), Seed = p.GetValue(seed), Threads = p.GetValue(threads) };
            if (p.GetValue(chat) is not null && p.GetValue(cluster) is not null)
                throw new ArgumentException("--cluster does not combine with --chat yet; give the prompt with --prompt or --prompt-ids.");
            if (p.GetValue(chat) is { } question)
                return ChatCommand.Answer(dir, question, new ChatOptions { MaxTokens = max, Sampling = sampling }, p.GetValue(showRouting), p.GetValue(quantize), p.GetValue(maxMemory));
            var folder = new RunFolder(dir);
            ITextTokenizer? tokenizer = null;
            int? context = null;
            if (folder.IsRun)
            {
                var run = folder.ReadConfig();
                tokenizer = LmData.TokenizerFor(run.Data, run.Alphabet);
            }
            else
            {
                context = Math.Max(64, PromptLength(p.GetValue(promptIds), p.GetValue(prompt)) + max + 1);
            }
            using var lm = ModelStore.Open(dir, CliOptions.Inference(context, p.GetValue(quantize), p.GetValue(maxMemory)));
            using var session = p.GetValue(cluster) is { } clusterFile ? ClusterCli.Attach(lm, dir, clusterFile, p.GetValue(quantize), p.GetValue(maxMemory)) : null;
            var ids = PromptIds(p.GetValue(promptIds), p.GetValue(prompt), tokenizer);
            bool asIds = p.GetValue(printIds) || tokenizer is null, routing = p.GetValue(showRouting);
            if (!asIds && !routing) Console.Write(tokenizer!.Decode(ids));
            // The prompt's routing first (the shared experts once), then each generated token's.
            if (routing) RoutingTable.PrintPrompt(lm, ids, tokenizer is null ? RoutingTable.Shower(null) : id => Visible(tokenizer.Decode([id])), sampling.Threads);
            var generated = new List<int>();
            foreach (var token in Generator.Stream(lm, ids, max, sampling))
            {
                generated.Add(token.Id);
                string shown = tokenizer is null ? token.Id.ToString() : Visible(tokenizer.Decode([token.Id]));
                if (routing) Console.WriteLine(RoutingTable.Line(shown, lm.Config, token.Experts));
                else if (!asIds) Console.Write(tokenizer!.Decode([token.Id]));
            }
            if (asIds && !routing) Console.WriteLine(string.Join(",", generated));
            else if (!routing) Console.WriteLine();
            return 0;
        });
        return command;
    }

    /// <summary>Positions the prompt takes, to size a Hugging Face model's RoPE table and cache before parsing it.</summary>
    private static int PromptLength(string? ids, string? text) => ids is not null ? ids.Split(',').Length : text?.Length ?? 0;

    /// <summary>Token ids from --prompt-ids, or --prompt encoded with the run's vocabulary.</summary>
    private static int[] PromptIds(string? ids, string? text, ITextTokenizer? tokenizer)
    {
        if (ids is not null && text is not null) throw new ArgumentException("Give either --prompt or --prompt-ids, not both.");
        if (ids is not null)
            return ids.Split(',').Select(s => int.TryParse(s.Trim(), out int v) ? v
                : throw new FormatException($"--prompt-ids: '{s}' is not a token id; expected comma-separated integers such as 3,14,15.")).ToArray();
        if (text is null) throw new ArgumentException("Give a prompt: --prompt TEXT or --prompt-ids 3,14,15.");
        if (tokenizer is null) throw new ArgumentException("This model folder has no tokenizer; give the prompt as --prompt-ids.");
        try
        {
            return tokenizer.Encode(text.Replace("\\n", "\n"));
        }
        catch (ArgumentException ex)
        {
            throw new ArgumentException($"--prompt: {ex.Message}", ex);
        }
    }

    private static string Visible(string s) => s.Replace("\n", "\\n");
}
