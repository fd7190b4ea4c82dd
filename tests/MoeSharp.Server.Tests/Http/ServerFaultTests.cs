using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using MoeSharp.Models;
using MoeSharp.Server.Engine;
using MoeSharp.Server.Http;
using OpenAI.Chat;

namespace MoeSharp.Server.Tests.Http;

/// <summary>
/// Refused requests get their status and OpenAI's error shape, and the server answers the next request; a client
/// that disconnects mid-stream frees the engine; the API key; <c>/metrics</c>; stopping drains.
/// </summary>
[Collection(TinyServerCollection.Name)]
public sealed class ServerFaultTests(TinyServer tiny)
{
    private static async Task<JsonElement> Error(HttpResponseMessage r, HttpStatusCode status, string? param = null, string? code = null)
    {
        string body = await r.Content.ReadAsStringAsync();
        Assert.True(r.StatusCode == status, $"expected {(int)status}, got {(int)r.StatusCode}: {body}");
        using var doc = JsonDocument.Parse(body);
        var e = doc.RootElement.GetProperty("error").Clone();
        Assert.False(string.IsNullOrEmpty(e.GetProperty("message").GetString()));
        Assert.False(string.IsNullOrEmpty(e.GetProperty("type").GetString()));
        Assert.Equal(param, e.GetProperty("param").GetString());
        Assert.Equal(code, e.GetProperty("code").GetString());
        return e;
    }

    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    /// <summary>A greedy chat request of 4 tokens answered 200: the server still serves.</summary>
    private static async Task StillServes(HttpClient http)
    {
        var r = await http.PostAsJsonAsync("/v1/chat/completions", new { messages = new[] { new { role = "user", content = "Hi" } }, max_tokens = 4, temperature = 0 });
        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
    }

    [Fact]
    public async Task BadRequestsAreAnsweredWithOpenAiErrorsAndTheServerServesOn()
    {
        using var http = new HttpClient { BaseAddress = tiny.Address };
        const string hi = """[{"role":"user","content":"Hi"}]""";
        await Error(await http.PostAsync("/v1/chat/completions", Json("{\"messages\": [")), HttpStatusCode.BadRequest, code: "invalid_json");
        await Error(await http.PostAsync("/v1/chat/completions", Json("[1, 2]")), HttpStatusCode.BadRequest);
        await Error(await http.PostAsync("/v1/chat/completions", Json("{}")), HttpStatusCode.BadRequest, "messages");
        await Error(await http.PostAsync("/v1/chat/completions", Json("""{"messages":[{"content":"Hi"}]}""")), HttpStatusCode.BadRequest, "messages");
        var hot = await Error(await http.PostAsync("/v1/chat/completions", Json($$"""{"messages":{{hi}},"temperature":"hot"}""")), HttpStatusCode.BadRequest, "temperature");
        Assert.Contains("\"hot\"", hot.GetProperty("message").GetString());
        await Error(await http.PostAsync("/v1/chat/completions", Json($$"""{"messages":{{hi}},"top_p":0}""")), HttpStatusCode.BadRequest, "top_p");
        await Error(await http.PostAsync("/v1/chat/completions", Json($$"""{"messages":{{hi}},"max_tokens":0}""")), HttpStatusCode.BadRequest, "max_tokens");
        await Error(await http.PostAsync("/v1/chat/completions", Json($$"""{"messages":{{hi}},"n":2}""")), HttpStatusCode.BadRequest, "n");
        await Error(await http.PostAsync("/v1/chat/completions", Json($$"""{"messages":{{hi}},"stop":[""]}""")), HttpStatusCode.BadRequest, "stop");
        await Error(await http.PostAsync("/v1/completions", Json("""{"prompt":[1, 999999999]}""")), HttpStatusCode.BadRequest, "prompt");
        await StillServes(http);
    }

    [Fact]
    public async Task AnUnknownModelIs404()
    {
        using var http = new HttpClient { BaseAddress = tiny.Address };
        var e = await Error(await http.PostAsync("/v1/chat/completions", Json("""{"model":"gpt-9","messages":[{"role":"user","content":"Hi"}]}""")), HttpStatusCode.NotFound, "model", "model_not_found");
        Assert.Contains("gpt-9", e.GetProperty("message").GetString());
        await Error(await http.GetAsync("/v1/models/gpt-9"), HttpStatusCode.NotFound, "model", "model_not_found");
        await Error(await http.PostAsync("/v1/engines/gpt-9/completions", Json("{}")), HttpStatusCode.NotFound, code: "unknown_url");
        await StillServes(http);
    }

    [Fact]
    public async Task MaxTokensPastTheContextIs400()
    {
        using var http = new HttpClient { BaseAddress = tiny.Address };
        int prompt = tiny.ChatPrompt([new("user", "Hi")]).Length;
        var e = await Error(await http.PostAsync("/v1/chat/completions", Json($$"""{"messages":[{"role":"user","content":"Hi"}],"max_tokens":{{512 - prompt + 1}}}""")),
            HttpStatusCode.BadRequest, "max_tokens", "context_length_exceeded");
        Assert.Contains($"at most {512 - prompt}", e.GetProperty("message").GetString());
        string longPrompt = string.Concat(Enumerable.Repeat("word ", 600));
        await Error(await http.PostAsync("/v1/completions", Json($$"""{"prompt":"{{longPrompt}}"}""")), HttpStatusCode.BadRequest, "prompt", "context_length_exceeded");
        await StillServes(http);
    }

    [Fact]
    public async Task ABodyOverTheLimitIs413()
    {
        var m = tiny.NewModel();
        await using var server = await tiny.Start(m, new SequentialEngine(m.Model), new ServerOptions { MaxBodyBytes = 4096 });
        using var http = new HttpClient { BaseAddress = server.Address };
        string big = new('x', 8192);
        await Error(await http.PostAsync("/v1/chat/completions", Json($$"""{"messages":[{"role":"user","content":"{{big}}"}]}""")), HttpStatusCode.RequestEntityTooLarge, code: "request_too_large");
        await StillServes(http);
    }

    /// <summary>A server whose engine decodes the real model but waits for the test's <see cref="Gate"/> before each token.</summary>
    private async Task<MoeServer> Held(Gate gate, int maxQueue, ServerOptions? options = null)
    {
        var model = tiny.NewModel();
        var engine = new SequentialEngine((p, n, s) => gate.Hold(Generator.Stream(model.Model, p, n, s)), maxQueue);
        return await tiny.Start(model, engine, options ?? new ServerOptions());
    }

    private static HttpRequestMessage ChatRequest(int maxTokens, bool stream) => new(HttpMethod.Post, "/v1/chat/completions")
    {
        Content = JsonContent.Create(new { messages = new[] { new { role = "user", content = "Hi" } }, max_tokens = maxTokens, temperature = 0, stream }),
    };

    private static async Task Until(Func<bool> condition)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        while (!condition()) await Task.Delay(5, timeout.Token);
    }

    [Fact]
    public async Task AFullQueueIs429AndTheQueuedRequestsStillComplete()
    {
        using var gate = new Gate();
        await using var server = await Held(gate, maxQueue: 1);
        using var http = new HttpClient { BaseAddress = server.Address };
        var running = http.SendAsync(ChatRequest(3, stream: false));
        await Until(() => server.Stats.Running == 1);
        var queued = http.SendAsync(ChatRequest(3, stream: false));
        await Until(() => server.Stats.QueueLength == 1);
        var refused = await http.SendAsync(ChatRequest(3, stream: false));
        await Error(refused, HttpStatusCode.TooManyRequests, code: "rate_limit_exceeded");
        Assert.Equal("1", refused.Headers.RetryAfter?.ToString());
        gate.Open();
        Assert.Equal(HttpStatusCode.OK, (await running).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await queued).StatusCode);
        await StillServes(http);
    }

    [Fact]
    public async Task AClientThatDisconnectsMidStreamFreesTheEngine()
    {
        using var gate = new Gate();
        await using var server = await Held(gate, maxQueue: 4);
        // Without a drain allowance, disposing an unread response closes the connection (by default HttpClient would
        // keep reading it for up to 2 s to reuse the connection).
        using var http = new HttpClient(new SocketsHttpHandler { MaxResponseDrainSize = 0 }) { BaseAddress = server.Address };
        gate.Release(2);
        using (var response = await http.SendAsync(ChatRequest(400, stream: true), HttpCompletionOption.ResponseHeadersRead))
        {
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
            Assert.StartsWith("data: ", await reader.ReadLineAsync());
        }
        // Kestrel sees the connection close (here within a step: 2 tokens in all were measured) and the engine drops the
        // request at its next step. Steps come one per 50 ms, as from a slow model; the bound allows half a second of
        // a loaded machine before the close is noticed, against the 400 tokens asked for.
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        while (server.Stats.Running == 1 && gate.Produced < 400)
        {
            gate.Release();
            await Task.Delay(50, timeout.Token);
        }
        Assert.Equal(0, server.Stats.Running);
        Assert.InRange(gate.Produced, 2, 12);
        gate.Open();
        await StillServes(http);
    }

    [Fact]
    public async Task TheApiKeyIsRequiredEverywhereButHealth()
    {
        var m = tiny.NewModel();
        await using var server = await tiny.Start(m, new SequentialEngine(m.Model), new ServerOptions { ApiKey = "sesame" });
        using var http = new HttpClient { BaseAddress = server.Address };
        await Error(await http.PostAsync("/v1/chat/completions", Json("""{"messages":[{"role":"user","content":"Hi"}]}""")), HttpStatusCode.Unauthorized, code: "invalid_api_key");
        await Error(await http.GetAsync("/v1/models"), HttpStatusCode.Unauthorized, code: "invalid_api_key");
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", "open");
        await Error(await http.GetAsync("/metrics"), HttpStatusCode.Unauthorized, code: "invalid_api_key");
        http.DefaultRequestHeaders.Authorization = null;
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/health")).StatusCode);

        await Assert.ThrowsAsync<System.ClientModel.ClientResultException>(() => OpenAiClientTests.Client(server.Address, "wrong").CompleteChatAsync([new UserChatMessage("Hi")]));
        ChatCompletion c = await OpenAiClientTests.Client(server.Address, "sesame").CompleteChatAsync([new UserChatMessage("Hi")], new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 3 });
        Assert.Equal(tiny.GreedyChat([new("user", "Hi")], 3), c.Content[0].Text);
    }

    [Fact]
    public async Task MetricsCountRequestsTokensAndExpertLoad()
    {
        var m = tiny.NewModel();
        await using var server = await tiny.Start(m, new SequentialEngine(m.Model), new ServerOptions());
        using var http = new HttpClient { BaseAddress = server.Address };
        int generated = 0;
        for (int i = 0; i < 3; i++)
        {
            var r = await http.PostAsJsonAsync("/v1/completions", new { prompt = $"Count {i}", max_tokens = 5, temperature = 0 });
            using var doc = JsonDocument.Parse(await r.Content.ReadAsStringAsync());
            generated += doc.RootElement.GetProperty("usage").GetProperty("completion_tokens").GetInt32();
        }
        await http.PostAsync("/v1/completions", Json("{"));
        string text = await http.GetStringAsync("/metrics");
        var values = text.Split('\n').Where(l => l.Length > 0 && l[0] != '#').ToDictionary(l => l[..l.LastIndexOf(' ')], l => double.Parse(l[(l.LastIndexOf(' ') + 1)..], System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(3, values["moe_requests_total{endpoint=\"/v1/completions\",code=\"200\"}"]);
        Assert.Equal(1, values["moe_requests_total{endpoint=\"/v1/completions\",code=\"400\"}"]);
        Assert.Equal(generated, values["moe_generated_tokens_total"]);
        Assert.Equal(0, values["moe_queue_length"]);
        Assert.Equal(0, values["moe_running_requests"]);
        Assert.True(values.ContainsKey("moe_tokens_per_second") && values.ContainsKey("moe_batch_size"));
        // Each generated token took top-2 of 8 experts in each of the 3 MoE blocks (0, 1, 2).
        for (int layer = 0; layer < 3; layer++)
            Assert.Equal(2 * generated, Enumerable.Range(0, 8).Sum(e => values[$"moe_expert_load_total{{layer=\"{layer}\",expert=\"{e}\"}}"]));
        Assert.Contains("# TYPE moe_expert_load_total counter", text);
    }

    [Fact]
    public async Task StoppingDrainsTheRunningRequestAndRefusesNewConnections()
    {
        using var gate = new Gate();
        var server = await Held(gate, maxQueue: 4);
        using var http = new HttpClient { BaseAddress = server.Address };
        gate.Release(1);
        var response = await http.SendAsync(ChatRequest(6, stream: true), HttpCompletionOption.ResponseHeadersRead);
        var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        Assert.StartsWith("data: ", await reader.ReadLineAsync());
        Task stopping = server.StopAsync();
        await Task.Delay(200);
        Assert.False(stopping.IsCompleted);
        using (var fresh = new HttpClient { BaseAddress = server.Address })
            await Assert.ThrowsAsync<HttpRequestException>(() => fresh.GetAsync("/health"));
        gate.Open();
        string rest = await reader.ReadToEndAsync();
        Assert.EndsWith("data: [DONE]\n\n", rest);
        Assert.Contains("\"finish_reason\":\"length\"", rest);
        await stopping;
        await server.DisposeAsync();
    }
}
