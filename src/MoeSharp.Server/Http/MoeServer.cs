using System.Net;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using MoeSharp.Server.Engine;
using MoeSharp.Server.Generation;

namespace MoeSharp.Server.Http;

/// <summary>
/// An OpenAI-compatible HTTP server for one model on Kestrel: <c>/v1/chat/completions</c> and
/// <c>/v1/completions</c> (streamed as server-sent events or not), <c>/v1/models</c>, <c>/health</c> and
/// <c>/metrics</c>. It owns its engine. Stopping drains: the listener closes, running requests finish (up to
/// <see cref="ServerOptions.DrainTimeout"/>), then the engine stops.
/// </summary>
public sealed class MoeServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly IGenerationEngine _engine;
    private readonly ServerMetrics _metrics;

    private MoeServer(WebApplication app, IGenerationEngine engine, ServerMetrics metrics, ServedModel model)
    {
        _app = app;
        _engine = engine;
        _metrics = metrics;
        Model = model;
    }

    /// <summary>A server for <paramref name="model"/> on <paramref name="engine"/> (which it now owns); <see cref="StartAsync"/> starts it.</summary>
    public static MoeServer Create(ServedModel model, IGenerationEngine engine, ServerOptions options)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(engine);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [] });
        builder.Logging.ClearProviders();
        if (options.LogLevel != LogLevel.None) builder.Logging.AddSimpleConsole(o => o.SingleLine = true).SetMinimumLevel(options.LogLevel);
        builder.Services.Configure<HostOptions>(h => h.ShutdownTimeout = options.DrainTimeout);
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.AddServerHeader = false;
            k.Limits.MaxRequestBodySize = options.MaxBodyBytes;
            Listen(k, options.Host, options.Port);
        });
        var app = builder.Build();
        var metrics = new ServerMetrics(model, engine);
        var endpoints = new OpenAiEndpoints(model, engine, options, metrics);
        app.Use(async (context, next) =>
        {
            string endpoint = OpenAiEndpoints.Known(context.Request.Path);
            if (endpoint != "/health" && options.ApiKey is { } key && !Authorized(context.Request, key))
            {
                context.Response.Headers.WWWAuthenticate = "Bearer";
                await OpenAiEndpoints.WriteError(context, new ApiError(401, "the API key is missing or wrong; send it as 'Authorization: Bearer KEY'.", code: "invalid_api_key"));
            }
            else
            {
                await next(context);
            }
            metrics.Request(endpoint, context.Response.StatusCode);
        });
        endpoints.Map(app);
        return new MoeServer(app, engine, metrics, model);
    }

    /// <summary>The model served.</summary>
    public ServedModel Model { get; }

    /// <summary>The address the server listens on, its real port included; set once started.</summary>
    public Uri Address { get; private set; } = new("http://unstarted");

    /// <summary>The engine's state now.</summary>
    public EngineStats Stats => _engine.Stats;

    /// <summary>Binds the port and starts serving.</summary>
    public async Task StartAsync(CancellationToken ct = default)
    {
        await _app.StartAsync(ct).ConfigureAwait(false);
        var addresses = _app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses;
        Address = new Uri(addresses.First());
    }

    /// <summary>Serves until Ctrl-C, SIGTERM or <paramref name="ct"/>, then drains and stops.</summary>
    public Task WaitForShutdownAsync(CancellationToken ct = default) => _app.WaitForShutdownAsync(ct);

    /// <summary>Stops taking connections and waits for running requests to finish (up to the drain timeout).</summary>
    public Task StopAsync(CancellationToken ct = default) => _app.StopAsync(ct);

    /// <summary>Stops the server, then drains and stops the engine.</summary>
    public async ValueTask DisposeAsync()
    {
        await _app.DisposeAsync().ConfigureAwait(false);
        await _engine.DisposeAsync().ConfigureAwait(false);
        _metrics.Dispose();
    }

    private static void Listen(Microsoft.AspNetCore.Server.Kestrel.Core.KestrelServerOptions k, string host, int port)
    {
        if (host is "localhost") k.ListenLocalhost(port);
        else if (host is "*" or "0.0.0.0") k.ListenAnyIP(port);
        else k.Listen(IPAddress.Parse(host), port); // ServerOptions.Validate has checked it
    }

    private static bool Authorized(HttpRequest request, string key)
    {
        string header = request.Headers.Authorization.ToString();
        const string Bearer = "Bearer ";
        if (!header.StartsWith(Bearer, StringComparison.OrdinalIgnoreCase)) return false;
        // Compared in constant time, so the answer's timing does not reveal how much of a guess was right.
        return CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(header[Bearer.Length..].Trim()), Encoding.UTF8.GetBytes(key));
    }
}
