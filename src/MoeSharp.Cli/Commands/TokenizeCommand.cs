using System.CommandLine;
using MoeSharp.Text;

namespace MoeSharp.Cli.Commands;

/// <summary><c>moe tokenize</c>: a model folder's tokenizer on a text, or its chat template on an OpenAI messages file.</summary>
internal static class TokenizeCommand
{
    public static Command Create()
    {
        var model = new Option<DirectoryInfo>("--model") { Description = "A folder with tokenizer.json (and tokenizer_config.json for --chat); weights are not needed.", Required = true };
        var text = new Argument<string?>("TEXT") { Description = "The text to tokenize.", Arity = ArgumentArity.ZeroOrOne };
        var json = new Option<bool>("--json") { Description = "Print the ids as a JSON array (with --chat: an object with text and ids)." };
        var noSpecial = new Option<bool>("--no-special") { Description = "Skip the post-processor (no BOS/EOS added)." };
        var chat = new Option<FileInfo?>("--chat") { Description = "Render this messages.json (OpenAI chat format) with the model's chat template." };
        var generationPrompt = new Option<bool>("--add-generation-prompt") { Description = "With --chat: end with the assistant's turn opening." };
        var command = new Command("tokenize", "Print the token ids of a text, or a chat rendered with the model's template and its ids.")
        {
            model, text, json, noSpecial, chat, generationPrompt,
        };
        command.SetAction(p =>
        {
            string dir = p.GetValue(model)!.FullName;
            string? input = p.GetValue(text);
            FileInfo? messages = p.GetValue(chat);
            if ((input is null) == (messages is null)) throw new ArgumentException("Give either TEXT or --chat messages.json, exactly one.");
            if (p.GetValue(generationPrompt) && messages is null) throw new ArgumentException("--add-generation-prompt needs --chat messages.json.");
            var tokenizer = ChatCommand.LoadTokenizer(dir);
            if (messages is null)
            {
                int[] ids = tokenizer.Encode(input!, addSpecialTokens: !p.GetValue(noSpecial));
                Console.WriteLine(p.GetValue(json) ? System.Text.Json.JsonSerializer.Serialize(ids) : string.Join(",", ids));
                return 0;
            }
            var request = OpenAiMessages.ReadRequest(messages.FullName);
            // A request object's tools reach the template (or the harmony developer message) as a server's would.
            var tools = request.Tools.Count == 0 ? null : request.Tools;
            string rendered = ChatCommand.Template(dir, () => tokenizer.ApplyChatTemplate(request.Messages, p.GetValue(generationPrompt), tools: tools));
            // The template writes BOS itself where the model wants one, so the post-processor is not applied again.
            int[] chatIds = tokenizer.Encode(rendered, addSpecialTokens: false);
            if (p.GetValue(json)) Console.WriteLine(System.Text.Json.JsonSerializer.Serialize(new { text = rendered, ids = chatIds }));
            else
            {
                Console.WriteLine(rendered);
                Console.WriteLine(string.Join(",", chatIds));
            }
            return 0;
        });
        return command;
    }
}
