using System.Buffers;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using MoeSharp.Models;
using MoeSharp.Server.Engine;
using MoeSharp.Server.Generation;

namespace MoeSharp.Server.Http;

/// <summary>
/// The request handlers. Each reads its body as JSON, checks every field it uses, and only then asks the engine;
/// the engine's first token settles a full queue (429) or a refused prompt (400) before any byte of the answer is
/// written. A streamed answer is server-sent events: <c>data: {chunk}</c> lines, then <c>data: [DONE]</c>. A client
/// that goes away cancels its request through <see cref="HttpContext.RequestAborted"/>.
/// </summary>
internal sealed class OpenAiEndpoints(ServedModel model, IGenerationEngine engine, ServerOptions options, ServerMetrics metrics)
{
    private static readonly string[] Paths = ["/v1/chat/completions", "/v1/completions", "/v1/models", "/health", "/metrics"];
    private readonly long _created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();

    /// <summary>The endpoint <paramref name="path"/> belongs to, or "other": the label set of the request counter stays bounded.</summary>
    public static string Known(PathString path)
    {
        foreach (string p in Paths)
            if (path.StartsWithSegments(p, StringComparison.Ordinal)) return p;
        return "other";
    }

    public void Map(WebApplication app)
    {
        app.MapPost("/v1/chat/completions", context => Guard(context, ChatCompletions));
        app.MapPost("/v1/completions", context => Guard(context, Completions));
        app.MapGet("/v1/models", Models);
        app.MapGet("/v1/models/{id}", context => Guard(context, Model));
        app.MapGet("/health", context => context.Response.WriteAsync("ok\n"));
        app.MapGet("/metrics", context =>
        {
            context.Response.ContentType = "text/plain; version=0.0.4; charset=utf-8";
            return context.Response.WriteAsync(metrics.Text());
        });
        app.MapFallback(context => WriteError(context, new ApiError(404,
            $"there is no {context.Request.Method} {context.Request.Path}; this server has POST /v1/chat/completions, POST /v1/completions, GET /v1/models, GET /health and GET /metrics.",
            code: "unknown_url")));
    }

    private async Task ChatCompletions(HttpContext context)
    {
        using JsonDocument body = await ReadJson(context);
        JsonElement root = OpenAiRequest.Object(body);
        OpenAiRequest.CheckModel(root, model);
        var messages = OpenAiRequest.Messages(root);
        var p = OpenAiRequest.Parameters(root, options.Sampling, defaultMaxTokens: null);
        int[] prompt;
        try
        {
            prompt = model.ChatPrompt(messages);
        }
        catch (ArgumentException e)
        {
            throw ApiError.BadRequest(e.Message, "messages");
        }
        Completion completion = Start(prompt, p, "messages");
        string id = "chatcmpl-" + Guid.NewGuid().ToString("N");
        var answer = new Answer(id, "chat.completion", DateTimeOffset.UtcNow.ToUnixTimeSeconds(), model.Id, completion, Chat: true);
        await (p.Stream ? Stream(context, answer, p.IncludeUsage) : Whole(context, answer));
    }

    private async Task Completions(HttpContext context)
    {
        using JsonDocument body = await ReadJson(context);
        JsonElement root = OpenAiRequest.Object(body);
        OpenAiRequest.CheckModel(root, model);
        int[] prompt = OpenAiRequest.Prompt(root, model);
        // OpenAI's legacy completions default to 16 tokens.
        var p = OpenAiRequest.Parameters(root, options.Sampling, defaultMaxTokens: 16);
        Completion completion = Start(prompt, p, "prompt");
        string id = "cmpl-" + Guid.NewGuid().ToString("N");
        var answer = new Answer(id, "text_completion", DateTimeOffset.UtcNow.ToUnixTimeSeconds(), model.Id, completion, Chat: false);
        await (p.Stream ? Stream(context, answer, p.IncludeUsage) : Whole(context, answer));
    }

    private Task Models(HttpContext context) => WriteJson(context, 200, w =>
    {
        w.WriteStartObject();
        w.WriteString("object", "list");
        w.WriteStartArray("data");
        WriteModel(w);
        w.WriteEndArray();
        w.WriteEndObject();
    });

    private Task Model(HttpContext context)
    {
        string? id = context.Request.RouteValues["id"] as string;
        if (id != model.Id) throw new ApiError(404, $"the model '{id}' does not exist; this server serves '{model.Id}'.", "model", "model_not_found");
        return WriteJson(context, 200, WriteModel);
    }

    private void WriteModel(Utf8JsonWriter w)
    {
        w.WriteStartObject();
        w.WriteString("id", model.Id);
        w.WriteString("object", "model");
        w.WriteNumber("created", _created);
        w.WriteString("owned_by", "moesharp");
        w.WriteNumber("context_length", model.Context);
        w.WriteEndObject();
    }

    private Completion Start(int[] prompt, CompletionParameters p, string promptParam)
    {
        try
        {
            return model.Complete(engine, prompt, p.MaxTokens, p.Sampling, p.Stop);
        }
        catch (ContextLengthExceededException e)
        {
            throw ApiError.BadRequest(e.Message, e.Requested is null ? promptParam : "max_tokens", "context_length_exceeded");
        }
        catch (ArgumentException e)
        {
            throw ApiError.BadRequest(e.Message, e.ParamName);
        }
    }

    /// <summary>A completion being answered, and how its JSON is labelled.</summary>
    private sealed record Answer(string Id, string Object, long Created, string Model, Completion Completion, bool Chat);

    private async Task Whole(HttpContext context, Answer a)
    {
        var text = new StringBuilder();
        await foreach (string piece in a.Completion.Text(context.RequestAborted)) text.Append(piece);
        metrics.Prompt(a.Completion.PromptTokens);
        await WriteJson(context, 200, w =>
        {
            Head(w, a, a.Object);
            w.WriteStartArray("choices");
            w.WriteStartObject();
            w.WriteNumber("index", 0);
            if (a.Chat)
            {
                w.WriteStartObject("message");
                w.WriteString("role", "assistant");
                w.WriteString("content", text.ToString());
                w.WriteEndObject();
            }
            else w.WriteString("text", text.ToString());
            w.WriteNull("logprobs");
            w.WriteString("finish_reason", FinishReason(a.Completion.Stop));
            w.WriteEndObject();
            w.WriteEndArray();
            Usage(w, a.Completion);
            w.WriteEndObject();
        });
    }

    private async Task Stream(HttpContext context, Answer a, bool includeUsage)
    {
        string chunk = a.Chat ? "chat.completion.chunk" : "text_completion";
        await using var text = a.Completion.Text(context.RequestAborted).GetAsyncEnumerator(context.RequestAborted);
        // Nothing is sent before the engine has taken the request, so a full queue is still a 429.
        bool more = await text.MoveNextAsync();
        metrics.Prompt(a.Completion.PromptTokens);
        context.Response.StatusCode = 200;
        context.Response.ContentType = "text/event-stream";
        context.Response.Headers.CacheControl = "no-cache";
        try
        {
            if (a.Chat) await Event(context, w => Chunk(w, a, chunk, role: true, content: "", finish: null));
            while (more)
            {
                string piece = text.Current;
                await Event(context, w => Chunk(w, a, chunk, role: false, piece, finish: null));
                more = await text.MoveNextAsync();
            }
            await Event(context, w => Chunk(w, a, chunk, role: false, content: a.Chat ? null : "", FinishReason(a.Completion.Stop)));
            if (includeUsage)
                await Event(context, w =>
                {
                    Head(w, a, chunk);
                    w.WriteStartArray("choices");
                    w.WriteEndArray();
                    Usage(w, a.Completion);
                    w.WriteEndObject();
                });
        }
        catch (Exception e) when (e is not OperationCanceledException && !context.RequestAborted.IsCancellationRequested)
        {
            // The status line is gone; the failure goes to the client as an event of OpenAI's error shape.
            var error = e as ApiError ?? new ApiError(500, e.Message, code: "generation_failed");
            await Event(context, error.WriteJson);
        }
        await context.Response.WriteAsync("data: [DONE]\n\n", context.RequestAborted);
        await context.Response.Body.FlushAsync(context.RequestAborted);
    }

    private static void Chunk(Utf8JsonWriter w, Answer a, string kind, bool role, string? content, string? finish)
    {
        Head(w, a, kind);
        w.WriteStartArray("choices");
        w.WriteStartObject();
        w.WriteNumber("index", 0);
        if (a.Chat)
        {
            w.WriteStartObject("delta");
            if (role) w.WriteString("role", "assistant");
            if (content is not null) w.WriteString("content", content);
            w.WriteEndObject();
        }
        else w.WriteString("text", content);
        w.WriteNull("logprobs");
        w.WriteString("finish_reason", finish);
        w.WriteEndObject();
        w.WriteEndArray();
        w.WriteEndObject();
    }

    private static void Head(Utf8JsonWriter w, Answer a, string kind)
    {
        w.WriteStartObject();
        w.WriteString("id", a.Id);
        w.WriteString("object", kind);
        w.WriteNumber("created", a.Created);
        w.WriteString("model", a.Model);
    }

    private static void Usage(Utf8JsonWriter w, Completion c)
    {
        w.WriteStartObject("usage");
        w.WriteNumber("prompt_tokens", c.PromptTokens);
        w.WriteNumber("completion_tokens", c.CompletionTokens);
        w.WriteNumber("total_tokens", c.PromptTokens + c.CompletionTokens);
        w.WriteEndObject();
    }

    private static string FinishReason(ChatStop stop) => stop == ChatStop.Length ? "length" : "stop";

    private static async Task<JsonDocument> ReadJson(HttpContext context)
    {
        try
        {
            return await JsonDocument.ParseAsync(context.Request.Body, default, context.RequestAborted);
        }
        catch (JsonException e)
        {
            throw ApiError.BadRequest($"the request body is not valid JSON: {e.Message}", code: "invalid_json");
        }
    }

    private static async Task Event(HttpContext context, Action<Utf8JsonWriter> write)
    {
        var buffer = new ArrayBufferWriter<byte>();
        buffer.Write("data: "u8);
        using (var w = new Utf8JsonWriter(buffer)) write(w);
        buffer.Write("\n\n"u8);
        await context.Response.Body.WriteAsync(buffer.WrittenMemory, context.RequestAborted);
        await context.Response.Body.FlushAsync(context.RequestAborted);
    }

    private static async Task WriteJson(HttpContext context, int status, Action<Utf8JsonWriter> write)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var w = new Utf8JsonWriter(buffer)) write(w);
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        await context.Response.Body.WriteAsync(buffer.WrittenMemory, context.RequestAborted);
    }

    /// <summary>Writes <paramref name="error"/> as the whole answer.</summary>
    public static Task WriteError(HttpContext context, ApiError error)
    {
        if (error.Status == StatusCodes.Status429TooManyRequests) context.Response.Headers.RetryAfter = "1";
        return WriteJson(context, error.Status, error.WriteJson);
    }

    /// <summary>Runs <paramref name="handler"/>, answering a refused request with its status and OpenAI's error shape.</summary>
    private static async Task Guard(HttpContext context, Func<HttpContext, Task> handler)
    {
        ApiError error;
        try
        {
            await handler(context);
            return;
        }
        catch (Exception) when (context.RequestAborted.IsCancellationRequested)
        {
            return; // the client went away (a cancelled read, a failed write); its request is dropped and nobody is left to answer
        }
        catch (ApiError e)
        {
            error = e;
        }
        catch (BadHttpRequestException e)
        {
            error = e.StatusCode == StatusCodes.Status413PayloadTooLarge
                ? new ApiError(413, $"the request body is larger than this server accepts ({context.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpMaxRequestBodySizeFeature>()?.MaxRequestBodySize} bytes).", code: "request_too_large")
                : new ApiError(e.StatusCode, e.Message);
        }
        catch (QueueFullException e)
        {
            error = new ApiError(429, e.Message, code: "rate_limit_exceeded");
        }
        catch (ObjectDisposedException)
        {
            error = new ApiError(503, "the server is shutting down and takes no new requests.", code: "shutting_down");
        }
        catch (ArgumentException e)
        {
            error = ApiError.BadRequest(e.Message, e.ParamName);
        }
        catch (Exception e)
        {
            context.RequestServices.GetRequiredService<ILogger<OpenAiEndpoints>>().LogError(e, "request failed");
            error = new ApiError(500, e.Message, code: "generation_failed");
        }
        if (context.Response.HasStarted) return;
        await WriteError(context, error);
    }
}
