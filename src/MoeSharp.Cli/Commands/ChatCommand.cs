using System.CommandLine;
using MoeSharp.IO;
using MoeSharp.Models;
using MoeSharp.Text;

namespace MoeSharp.Cli.Commands;

/// <summary>
/// <c>moe chat</c>: a conversation on stdin/stdout with a Hugging Face model folder, whose tokenizer and chat
/// template it uses. Lines starting with / are commands: /reset, /system TEXT, /exit. Ctrl-C stops a reply and
/// keeps the conversation; at the prompt it quits.
/// </summary>
internal static class ChatCommand
{
    public static Command Create()
    {
        var model = new Option<DirectoryInfo>("--model") { Description = "A Hugging Face model folder: config.json, safetensors, tokenizer.json and tokenizer_config.json.", Required = true };
        var system = new Option<string?>("--system") { Description = "The system prompt." };
        var stop = new Option<string[]>("--stop") { Description = "A text that ends a reply (repeatable).", AllowMultipleArgumentsPerToken = false };
        var showPrompt = new Option<bool>("--show-prompt") { Description = "Print the rendered prompt before each reply." };
        var sampling = new SamplingCli();
        var quantize = CliOptions.Quantize();
        var maxMemory = CliOptions.MaxMemory();
        var command = new Command("chat", "Chat with a model, with its own tokenizer and chat template.") { model, system, stop, showPrompt, quantize, maxMemory };
        sampling.AddTo(command);
        command.SetAction(p =>
        {
            string dir = p.GetValue(model)!.FullName;
            var (lm, tokenizer) = Open(dir, sampling.Context(p), p.GetValue(quantize), p.GetValue(maxMemory));
            using var owned = lm;
            var chat = new ChatSession(lm, tokenizer) { SystemPrompt = p.GetValue(system) };
            var options = sampling.Options(p) with { StopStrings = p.GetValue(stop) ?? [] };
            using var cancel = new ReplyCancellation();
            bool interactive = !Console.IsInputRedirected;
            while (true)
            {
                if (interactive) Console.Write("> ");
                string? line = Console.ReadLine();
                if (line is null || line.Trim() is "/exit" or "/quit") return 0;
                if (line.StartsWith('/'))
                {
                    Slash(chat, line);
                    continue;
                }
                if (p.GetValue(showPrompt)) Console.WriteLine(Template(dir, () => chat.RenderPrompt(line, options)));
                try
                {
                    foreach (string piece in Template(dir, () => chat.Reply(line, options, cancel.Start())))
                    {
                        Console.Write(piece);
                        Console.Out.Flush();
                    }
                }
                catch (ArgumentException e) when (e.Message.Contains("context", StringComparison.Ordinal))
                {
                    Console.Error.WriteLine($"error: {e.Message}");
                }
                finally
                {
                    cancel.Stop();
                }
                Console.WriteLine();
            }
        });
        return command;
    }

    /// <summary><c>moe generate --chat</c>: one user turn answered and printed; with routing, the prompt's and each token's experts.</summary>
    public static int Answer(string dir, string question, ChatOptions options, bool showRouting, MoeSharp.Formats.WeightFormat? quantize = null, double? maxMemoryGb = null)
    {
        var (lm, tokenizer) = Open(dir, null, quantize, maxMemoryGb);
        using var owned = lm;
        var chat = new ChatSession(lm, tokenizer);
        if (showRouting)
        {
            var show = RoutingTable.Shower(tokenizer);
            int[] prompt = tokenizer.Encode(Template(dir, () => chat.RenderPrompt(question, options)), addSpecialTokens: false);
            RoutingTable.PrintPrompt(lm, prompt, show, options.Sampling.Threads);
            _ = Template(dir, () => chat.Reply(question, options)).Count(); // runs the reply; its ids and experts are read below
            for (int i = 0; i < chat.LastIds.Count; i++) Console.WriteLine(RoutingTable.Line(show(chat.LastIds[i]), lm.Config, chat.LastExperts[i]));
            return 0;
        }
        foreach (string piece in Template(dir, () => chat.Reply(question, options)))
        {
            Console.Write(piece);
            Console.Out.Flush();
        }
        Console.WriteLine();
        return 0;
    }

    private static void Slash(ChatSession chat, string line)
    {
        string name = line.Split(' ', 2)[0];
        string rest = line.Length > name.Length ? line[(name.Length + 1)..].Trim() : "";
        switch (name)
        {
            case "/reset":
                chat.Reset();
                Console.Error.WriteLine("(conversation cleared)");
                break;
            case "/system":
                chat.SystemPrompt = rest.Length > 0 ? rest : null;
                Console.Error.WriteLine(rest.Length > 0 ? "(system prompt set)" : "(system prompt removed)");
                break;
            default:
                Console.Error.WriteLine($"unknown command '{name}'; expected /reset, /system TEXT or /exit");
                break;
        }
    }

    /// <summary>The model (weights in place, or quantized to <paramref name="quantize"/>, experts paged within <paramref name="maxMemoryGb"/>) and its tokenizer from <paramref name="dir"/>, both checked before anything is generated.</summary>
    public static (MoeTransformer Model, HfTokenizer Tokenizer) Open(string dir, int? maxContext, MoeSharp.Formats.WeightFormat? quantize = null, double? maxMemoryGb = null)
    {
        var tokenizer = LoadTokenizer(dir);
        var model = ModelStore.Open(dir, CliOptions.Inference(maxContext, quantize, maxMemoryGb));
        if (tokenizer.VocabSize > model.Config.Vocab)
            throw new InvalidDataException($"{Path.Combine(dir, "tokenizer.json")}: the tokenizer has {tokenizer.VocabSize} ids; the model's vocab_size is {model.Config.Vocab}.");
        // Parse the template now, so a template error is reported before the first question.
        Template(dir, () => tokenizer.ApplyChatTemplate([new ChatMessage("user", "")], addGenerationPrompt: true));
        return (model, tokenizer);
    }

    /// <summary>The tokenizer of a model folder; a folder without one is one clear error.</summary>
    public static HfTokenizer LoadTokenizer(string dir)
    {
        if (!File.Exists(Path.Combine(dir, "tokenizer.json")) && !(File.Exists(dir) && dir.EndsWith(".json", StringComparison.OrdinalIgnoreCase)))
            throw new FileNotFoundException($"'{dir}' has no tokenizer.json; chat and tokenize need a Hugging Face tokenizer.");
        return HfTokenizer.Load(dir);
    }

    /// <summary>Runs <paramref name="render"/>, reporting a template error as the template's file and problem.</summary>
    public static T Template<T>(string dir, Func<T> render)
    {
        try
        {
            return render();
        }
        catch (ChatTemplateException e)
        {
            throw new InvalidDataException($"{Path.Combine(dir, "tokenizer_config.json")}: chat_template: {e.Message}", e);
        }
        catch (InvalidOperationException e) when (e.Message.Contains("chat_template", StringComparison.Ordinal))
        {
            throw new InvalidDataException(e.Message, e);
        }
    }

    /// <summary>Ctrl-C during a reply cancels the reply only; between replies it ends the program as usual.</summary>
    private sealed class ReplyCancellation : IDisposable
    {
        private CancellationTokenSource? _reply;

        public ReplyCancellation() => Console.CancelKeyPress += OnCancel;

        public CancellationToken Start()
        {
            _reply = new CancellationTokenSource();
            return _reply.Token;
        }

        public void Stop()
        {
            _reply?.Dispose();
            _reply = null;
        }

        private void OnCancel(object? sender, ConsoleCancelEventArgs e)
        {
            if (_reply is not { } reply) return;
            e.Cancel = true;
            reply.Cancel();
        }

        public void Dispose()
        {
            Console.CancelKeyPress -= OnCancel;
            Stop();
        }
    }
}

/// <summary>The generation options chat and <c>generate --chat</c> share, read through <see cref="CliOptions"/>.</summary>
internal sealed class SamplingCli
{
    private readonly Option<int> _maxTokens = CliOptions.Int("--max-tokens", 512, 1, "The most tokens in one reply.");
    private readonly Option<float> _temperature = CliOptions.Number("--temperature", SamplingOptions.Default.Temperature, 0f, float.MaxValue, description: "0 for greedy.");
    private readonly Option<int> _topK = CliOptions.Int("--top-k", SamplingOptions.Default.TopK, 0, "Sample from the k most likely tokens (0: all).");
    private readonly Option<float> _topP = CliOptions.Number("--top-p", SamplingOptions.Default.TopP, 0f, 1f, minExcluded: true, "Nucleus sampling mass (1: all).");
    private readonly Option<ulong> _seed = CliOptions.Seed(SamplingOptions.Default.Seed);
    private readonly Option<int> _threads = CliOptions.Threads(SamplingOptions.Default.Threads);
    private readonly Option<int?> _context = CliOptions.Optional("--context", 1, int.MaxValue, description: "Positions to allocate (default: the config's max_position_embeddings).");

    public void AddTo(Command command)
    {
        foreach (Option o in new Option[] { _maxTokens, _temperature, _topK, _topP, _seed, _threads, _context }) command.Options.Add(o);
    }

    public int? Context(ParseResult p) => p.GetValue(_context);

    public ChatOptions Options(ParseResult p) => new()
    {
        MaxTokens = p.GetValue(_maxTokens),
        Sampling = new SamplingOptions { Temperature = p.GetValue(_temperature), TopK = p.GetValue(_topK), TopP = p.GetValue(_topP), Seed = p.GetValue(_seed), Threads = p.GetValue(_threads) },
    };
}
