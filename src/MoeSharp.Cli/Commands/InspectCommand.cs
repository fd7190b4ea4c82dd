using System.CommandLine;
using MoeSharp.Diagnostics;
using MoeSharp.IO;
using MoeSharp.Text;

namespace MoeSharp.Cli.Commands;

/// <summary>
/// <c>moe inspect</c>: writes a run folder's HTML report and prints where it is; on a Hugging Face folder or GGUF
/// file (any architecture) it prints the architecture and, given a prompt, which experts each token uses per block.
/// </summary>
internal static class InspectCommand
{
    public static Command Create()
    {
        var runDir = new Argument<DirectoryInfo>("RUN_DIR") { Description = "The run folder the trainer wrote (config.json, metrics.jsonl, routing.jsonl, ...), or a Hugging Face model folder or GGUF file." };
        var prompt = new Option<string?>("--prompt") { Description = "Show the routing of this text (needs tokenizer.json in the model folder)." };
        var promptIds = new Option<string?>("--prompt-ids") { Description = "Show the routing of these comma-separated token ids." };
        var threads = CliOptions.Threads(Environment.ProcessorCount);
        var command = new Command("inspect", "Write a run's HTML report (loss, routing heatmaps, alerts), or show a model's routing of a prompt.") { runDir, prompt, promptIds, threads };
        command.SetAction(p =>
        {
            string dir = p.GetValue(runDir)!.FullName;
            string? text = p.GetValue(prompt), ids = p.GetValue(promptIds);
            if (text is null && ids is null && !IsModel(dir))
            {
                Console.WriteLine(HtmlReport.Write(dir));
                return 0;
            }
            if (text is not null && ids is not null) throw new ArgumentException("Give either --prompt or --prompt-ids, not both.");
            HfTokenizer? tokenizer = File.Exists(Path.Combine(dir, "tokenizer.json")) ? ChatCommand.LoadTokenizer(dir) : null;
            int[]? input = ids is not null ? ParseIds(ids)
                : text is null ? null
                : tokenizer?.Encode(text.Replace("\\n", "\n", StringComparison.Ordinal))
                  ?? throw new ArgumentException($"--prompt: '{dir}' has no tokenizer.json; give the prompt as --prompt-ids.");
            using var model = ModelStore.Open(dir, CliOptions.Inference(input is null ? 64 : Math.Max(64, input.Length), null));
            Console.WriteLine(RoutingTable.Summary(model.Config));
            if (input is not null) RoutingTable.PrintPrompt(model, input, RoutingTable.Shower(tokenizer), p.GetValue(threads));
            return 0;
        });
        return command;
    }

    /// <summary>A GGUF file or a Hugging Face folder (config.json with model_type); anything else is taken as a run folder.</summary>
    private static bool IsModel(string path)
    {
        if (File.Exists(path)) return true;
        string config = Path.Combine(path, "config.json");
        if (!File.Exists(config)) return false;
        try
        {
            using var doc = System.Text.Json.JsonDocument.Parse(File.ReadAllText(config));
            return doc.RootElement.ValueKind == System.Text.Json.JsonValueKind.Object && doc.RootElement.TryGetProperty("model_type", out _);
        }
        catch (System.Text.Json.JsonException)
        {
            return false;
        }
    }

    private static int[] ParseIds(string ids) =>
        ids.Split(',').Select(s => int.TryParse(s.Trim(), out int v) ? v
            : throw new FormatException($"--prompt-ids: '{s}' is not a token id; expected comma-separated integers such as 3,14,15.")).ToArray();
}
