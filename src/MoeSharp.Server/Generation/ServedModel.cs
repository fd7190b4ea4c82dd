using MoeSharp.IO;
using MoeSharp.Models;
using MoeSharp.Server.Engine;
using MoeSharp.Text;

namespace MoeSharp.Server.Generation;

/// <summary>
/// A model as it is served: the network, its Hugging Face tokenizer and chat template, the name clients ask for it by,
/// and the expert load of everything it generated. Requests are checked against its context here, before they
/// reach an engine.
/// </summary>
public sealed class ServedModel
{
    /// <summary>Serves <paramref name="model"/> under <paramref name="id"/> with <paramref name="tokenizer"/>.</summary>
    public ServedModel(string id, MoeTransformer model, HfTokenizer tokenizer)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(id);
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(tokenizer);
        if (tokenizer.VocabSize > model.Config.Vocab)
            throw new ArgumentException($"the tokenizer has {tokenizer.VocabSize} ids; the model's vocabulary has only {model.Config.Vocab}.", nameof(tokenizer));
        Id = id;
        Model = model;
        Tokenizer = tokenizer;
        Load = new ExpertLoad(model.Config);
    }

    /// <summary>
    /// Opens a Hugging Face model folder, or a GGUF file with <c>tokenizer.json</c> beside it, named by its folder or
    /// file name. <paramref name="maxContext"/> caps the positions allocated per request.
    /// </summary>
    public static ServedModel Open(string path, int? maxContext = null) => Open(path, new ModelLoadOptions { MaxContext = maxContext });

    /// <summary><see cref="Open(string, int?)"/> with the weights loaded as <paramref name="load"/> says (in place from the mapped files, quantized).</summary>
    public static ServedModel Open(string path, ModelLoadOptions load)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        string full = Path.GetFullPath(path).TrimEnd(Path.DirectorySeparatorChar);
        string folder = File.Exists(full) ? Path.GetDirectoryName(full)! : full;
        if (!File.Exists(Path.Combine(folder, "tokenizer.json")))
            throw new FileNotFoundException($"'{folder}' has no tokenizer.json; serving needs the model's Hugging Face tokenizer.");
        var tokenizer = HfTokenizer.Load(folder);
        var model = ModelStore.Open(full, load);
        string id = File.Exists(full) ? Path.GetFileNameWithoutExtension(full) : Path.GetFileName(full);
        var served = new ServedModel(id, model, tokenizer);
        // Render once now, so a broken template is reported at start-up rather than on the first request.
        try
        {
            tokenizer.ApplyChatTemplate([new ChatMessage("user", "")], addGenerationPrompt: true);
        }
        catch (Exception e) when (e is ChatTemplateException or InvalidOperationException)
        {
            throw new InvalidDataException($"{Path.Combine(folder, "tokenizer_config.json")}: chat_template: {e.Message}", e);
        }
        return served;
    }

    /// <summary>The name clients give as <c>model</c>.</summary>
    public string Id { get; }

    /// <summary>The network.</summary>
    public MoeTransformer Model { get; }

    /// <summary>The tokenizer, with the chat template and end-of-turn ids.</summary>
    public HfTokenizer Tokenizer { get; }

    /// <summary>Positions one request may use: prompt and completion together.</summary>
    public int Context => Model.Config.Context;

    /// <summary>The routed experts of every generated token so far.</summary>
    public ExpertLoad Load { get; }

    /// <summary>The ids of <paramref name="messages"/> rendered by the chat template, ending with the generation prompt.</summary>
    public int[] ChatPrompt(IReadOnlyList<ChatMessage> messages, IReadOnlyDictionary<string, object?>? templateVariables = null)
    {
        string text;
        try
        {
            text = Tokenizer.ApplyChatTemplate(messages, addGenerationPrompt: true, templateVariables);
        }
        catch (ChatTemplateException e)
        {
            throw new ArgumentException($"the chat template refused the messages: {e.Message}", nameof(messages), e);
        }
        return Tokenizer.Encode(text, addSpecialTokens: false);
    }

    /// <summary>The ids of a plain-text prompt, with the tokenizer's special tokens (a BOS where the model has one).</summary>
    public int[] TextPrompt(string text) => Tokenizer.Encode(text, addSpecialTokens: true);

    /// <summary>
    /// A completion of <paramref name="prompt"/> run on <paramref name="engine"/>; null <paramref name="maxTokens"/>
    /// takes all the room the context leaves. A prompt that leaves no room, or a limit past the context, is a
    /// <see cref="ContextLengthExceededException"/>.
    /// </summary>
    public Completion Complete(IGenerationEngine engine, int[] prompt, int? maxTokens, SamplingOptions sampling, IReadOnlyList<string>? stop = null)
    {
        ArgumentNullException.ThrowIfNull(engine);
        ArgumentNullException.ThrowIfNull(prompt);
        ArgumentNullException.ThrowIfNull(sampling);
        sampling.Validate();
        if (prompt.Length == 0) throw new ArgumentException("the prompt is empty; it needs at least one token.", nameof(prompt));
        if (maxTokens < 1) throw new ArgumentOutOfRangeException(nameof(maxTokens), $"the completion limit must be at least 1 token, got {maxTokens}.");
        int room = Context - prompt.Length;
        if (room < 1) throw new ContextLengthExceededException(Context, prompt.Length, requested: null);
        if (maxTokens > room) throw new ContextLengthExceededException(Context, prompt.Length, maxTokens);
        return new Completion(this, engine, prompt, maxTokens ?? room, sampling, new StopText(stop ?? []));
    }
}

/// <summary>A prompt and its completion limit do not fit in the model's context.</summary>
public sealed class ContextLengthExceededException(int context, int promptTokens, int? requested)
    : ArgumentException(requested is { } r
        ? $"this model's context is {context} tokens; the prompt has {promptTokens} and {r} more were asked for ({promptTokens + r}). Ask for at most {Math.Max(0, context - promptTokens)}."
        : $"this model's context is {context} tokens; the prompt has {promptTokens}, which leaves no room for a completion.")
{
    /// <summary>Positions the model has.</summary>
    public int Context { get; } = context;

    /// <summary>Tokens in the prompt.</summary>
    public int PromptTokens { get; } = promptTokens;

    /// <summary>The completion limit that did not fit; null when the prompt alone leaves no room.</summary>
    public int? Requested { get; } = requested;
}
