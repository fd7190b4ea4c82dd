using System.CommandLine;
using MoeSharp.Models;
using MoeSharp.Server.Engine;
using MoeSharp.Server.Generation;
using MoeSharp.Server.Http;

namespace MoeSharp.Cli.Commands;

/// <summary>
/// <c>moe serve</c>: an OpenAI-compatible HTTP server for one model folder (or GGUF file with its tokenizer beside
/// it), until Ctrl-C or SIGTERM, which drain: no new connections, running requests finish, then the process exits.
/// </summary>
internal static class ServeCommand
{
    public static Command Create()
    {
        var model = new Option<FileSystemInfo>("--model") { Description = "A Hugging Face model folder (config.json, safetensors, tokenizer.json, tokenizer_config.json) or a GGUF file with tokenizer.json beside it.", Required = true };
        var port = CliOptions.Number("--port", 8080, 0, 65535, description: "The TCP port (0: any free one).");
        var host = new Option<string>("--host") { Description = "The address to listen on: an IP address, localhost, or 0.0.0.0 for every interface.", DefaultValueFactory = _ => "127.0.0.1" };
        var apiKey = new Option<string?>("--api-key") { Description = "Require 'Authorization: Bearer KEY' on every request but /health." };
        var queue = CliOptions.Int("--max-queue", 64, 1, "Requests that may wait for a place in the batch; more are answered 429.");
        var batch = CliOptions.Int("--batch", new BatchOptions().MaxBatch, 1, "Sequences decoded together in one forward pass (continuous batching).");
        var kvBudget = CliOptions.Int("--kv-budget-mb", (int)(new BatchOptions().KvBudgetBytes >> 20), 1, "MiB of KV cache the running requests may hold together; a request waits until its cache fits.");
        var quantize = CliOptions.Quantize();
        var maxBody = CliOptions.Int("--max-body", 1 << 20, 1, "The largest request body in bytes; larger ones are answered 413.");
        var context = CliOptions.Optional("--context", 1, int.MaxValue, description: "Positions per request, prompt and reply together (default: the config's max_position_embeddings).");
        var threads = CliOptions.Threads(SamplingOptions.Default.Threads);
        var cluster = ClusterCli.Option();
        var command = new Command("serve", "Serve a model over an OpenAI-compatible HTTP API (chat and text completions, streaming, /metrics).")
        {
            model, port, host, apiKey, queue, batch, kvBudget, maxBody, context, threads, quantize, cluster,
        };
        command.SetAction(p =>
        {
            var options = new ServerOptions
            {
                Host = p.GetValue(host)!,
                Port = p.GetValue(port),
                ApiKey = p.GetValue(apiKey),
                MaxBodyBytes = p.GetValue(maxBody),
                Sampling = SamplingOptions.Default with { Threads = p.GetValue(threads) },
            };
            options.Validate();
            var served = ServedModel.Open(p.GetValue(model)!.FullName, CliOptions.Inference(p.GetValue(context), p.GetValue(quantize)));
            using var session = p.GetValue(cluster) is { } clusterFile ? ClusterCli.Attach(served.Model, p.GetValue(model)!.FullName, clusterFile, p.GetValue(quantize)) : null;
            var engine = new BatchOptions
            {
                MaxBatch = p.GetValue(batch),
                MaxQueue = p.GetValue(queue),
                KvBudgetBytes = (long)p.GetValue(kvBudget) << 20,
                Threads = p.GetValue(threads),
            };
            return Serve(served, options, engine).GetAwaiter().GetResult();
        });
        return command;
    }

    private static async Task<int> Serve(ServedModel served, ServerOptions options, BatchOptions engine)
    {
        await using var server = MoeServer.Create(served, new BatchEngine(served.Model, engine), options);
        try
        {
            await server.StartAsync();
        }
        catch (IOException e)
        {
            throw new IOException($"cannot listen on {options.Host}:{options.Port}: {e.Message}", e);
        }
        Console.Error.WriteLine($"serving '{served.Id}' (context {served.Context}) at {server.Address}v1 ; Ctrl-C drains and stops");
        await server.WaitForShutdownAsync();
        Console.Error.WriteLine("stopped");
        return 0;
    }
}
