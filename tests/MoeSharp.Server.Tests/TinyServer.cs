using MoeSharp.IO;
using MoeSharp.Models;
using MoeSharp.Server.Engine;
using MoeSharp.Server.Generation;
using MoeSharp.Server.Http;
using MoeSharp.Tests.Models;
using MoeSharp.Text;

namespace MoeSharp.Server.Tests;

/// <summary>
/// A tiny random Qwen3-MoE with Qwen3's real tokenizer and chat template (context 512), written once to a temp folder,
/// and a server for it on a loopback port chosen by the system. Every server gets a model instance of its own, and
/// the references run on yet another one, so no two threads ever share a model's workspaces. The tests that use it
/// form one collection and run one after another.
/// </summary>
public sealed class TinyServer : IAsyncLifetime
{
    public const string Id = "tiny-qwen3";
    private readonly string _root = Directory.CreateTempSubdirectory("moesharp-serve-").FullName;
    private readonly List<MoeServer> _servers = [];

    /// <summary>Greedy and single-threaded, so every answer has an exact reference.</summary>
    public static SamplingOptions Greedy { get; } = new() { Temperature = 0, Threads = 1 };

    public string Folder => Path.Combine(_root, Id);
    public HfTokenizer Tokenizer { get; private set; } = null!;
    public MoeTransformer Reference { get; private set; } = null!;
    public MoeServer Server { get; private set; } = null!;
    public Uri Address => Server.Address;

    public async ValueTask InitializeAsync()
    {
        TinyChatModels.Write("qwen3_moe", Folder);
        var served = ServedModel.Open(Folder);
        Tokenizer = served.Tokenizer;
        Reference = ModelStore.Open(Folder);
        Server = await Start(served, new BatchEngine(served.Model, new BatchOptions { MaxQueue = 16 }), new ServerOptions());
    }

    /// <summary>A model served under <see cref="Id"/> with its own instance of the network and the shared tokenizer.</summary>
    public ServedModel NewModel() => new(Id, ModelStore.Open(Folder), Tokenizer);

    /// <summary>Starts another server on a port of its own; it is stopped with the fixture unless the test stops it.</summary>
    public async Task<MoeServer> Start(ServedModel model, IGenerationEngine engine, ServerOptions options)
    {
        var server = MoeServer.Create(model, engine, options with { Port = 0, LogLevel = Microsoft.Extensions.Logging.LogLevel.None, Sampling = Greedy });
        await server.StartAsync();
        lock (_servers) _servers.Add(server);
        return server;
    }

    /// <summary>The reply's greedy ids for <paramref name="prompt"/>, up to and including the first end-of-turn id.</summary>
    public int[] GreedyIds(int[] prompt, int maxTokens)
    {
        int[] ids = Generator.Greedy(Reference, prompt, maxTokens, threads: 1);
        int end = Array.FindIndex(ids, id => Tokenizer.StopTokenIds.Contains(id));
        return end < 0 ? ids : ids[..(end + 1)];
    }

    /// <summary>The text of a greedy chat reply to <paramref name="messages"/>, decoded whole (the independent reference for streamed text).</summary>
    public string GreedyChat(IReadOnlyList<ChatMessage> messages, int maxTokens) => Text(GreedyIds(ChatPrompt(messages), maxTokens));

    public int[] ChatPrompt(IReadOnlyList<ChatMessage> messages) =>
        Tokenizer.Encode(Tokenizer.ApplyChatTemplate(messages, addGenerationPrompt: true), addSpecialTokens: false);

    /// <summary>Ids as text, an end-of-turn id left out.</summary>
    public string Text(int[] ids) => Tokenizer.Decode(ids.Where(id => !Tokenizer.StopTokenIds.Contains(id)), skipSpecialTokens: true);

    public async ValueTask DisposeAsync()
    {
        foreach (var s in _servers) await s.DisposeAsync();
        Directory.Delete(_root, recursive: true);
    }
}

[CollectionDefinition(Name)]
public sealed class TinyServerCollection : ICollectionFixture<TinyServer>
{
    public const string Name = "tiny server";
}

/// <summary>A token source that waits for <see cref="Release"/> before each token, so a test can hold a request mid-stream.</summary>
internal sealed class Gate : IDisposable
{
    private readonly SemaphoreSlim _steps = new(0);
    private int _produced;

    /// <summary>Tokens let through so far.</summary>
    public int Produced => Volatile.Read(ref _produced);

    public void Release(int steps = 1) => _steps.Release(steps);

    /// <summary>Lets every token through from now on.</summary>
    public void Open() => _steps.Release(100_000);

    /// <summary><paramref name="inner"/>'s tokens, each one after a <see cref="Release"/>.</summary>
    public IEnumerable<GeneratedToken> Hold(IEnumerable<GeneratedToken> inner)
    {
        foreach (var token in inner)
        {
            if (!_steps.Wait(TimeSpan.FromSeconds(30))) throw new TimeoutException("the test never released the gate");
            Interlocked.Increment(ref _produced);
            yield return token;
        }
    }

    public void Dispose() => _steps.Dispose();
}
