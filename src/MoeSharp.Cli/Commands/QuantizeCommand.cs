using System.CommandLine;
using System.Text.Json;
using MoeSharp.IO;

namespace MoeSharp.Cli.Commands;

/// <summary>
/// <c>moe quantize --model DIR|FILE --format F --out FILE.gguf</c>: writes a model (a run folder, a Hugging Face
/// folder or a GGUF file) as a GGUF file that MoeSharp and llama.cpp both open (<see cref="ModelStore.SaveGguf"/>).
/// </summary>
internal static class QuantizeCommand
{
    public static Command Create()
    {
        var model = new Option<FileSystemInfo>("--model") { Description = "A run folder, a Hugging Face folder (mixtral, qwen2_moe, qwen3_moe, olmoe) or a GGUF file.", Required = true };
        var format = new Option<MoeSharp.Formats.WeightFormat?>("--format")
        {
            Description = "The weights' format: f32, f16, bf16, q8_0, q6_k, q4_k, or mxfp4 (experts; the other weights Q8_0). Norms and routers stay F32.",
            Required = true,
            CustomParser = r => CliOptions.ParseFormat(r, "--format"),
        };
        var output = new Option<FileInfo>("--out") { Description = "The GGUF file to write (replaced atomically).", Required = true };
        var command = new Command("quantize", "Write a model as a GGUF file in a weight format.") { model, format, output };
        command.SetAction(p =>
        {
            string path = p.GetValue(model)!.FullName, target = p.GetValue(output)!.FullName;
            var f = p.GetValue(format)!.Value;
            string architecture = GgufArchitecture(path);
            var clock = System.Diagnostics.Stopwatch.StartNew();
            using var lm = ModelStore.Open(path, new ModelLoadOptions { InPlace = true });
            ModelStore.SaveGguf(lm, target, f, architecture);
            Console.WriteLine($"{target}: {architecture}, {f}, {new FileInfo(target).Length / 1e6:F1} MB, written in {clock.Elapsed.TotalSeconds:F1} s");
            return 0;
        });
        return command;
    }

    /// <summary>The llama.cpp architecture to write: a GGUF's own, a Hugging Face folder's model_type's, llama (Mixtral) for a run folder.</summary>
    private static string GgufArchitecture(string path)
    {
        if (File.Exists(path))
        {
            if (!path.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase))
                throw new ArgumentException($"--model: '{path}' is a file but not a .gguf; expected a model folder or a GGUF file.");
            using var file = GgufFile.Open(path);
            return file.Metadata.TryGetValue("general.architecture", out var a) && a.Value is string s ? s
                : throw new InvalidDataException($"{path}: no general.architecture metadata.");
        }
        string config = Path.Combine(path, "config.json");
        if (!File.Exists(config)) throw new FileNotFoundException($"--model: '{path}' is neither a GGUF file nor a model folder with config.json.");
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(File.ReadAllText(config));
        }
        catch (JsonException ex)
        {
            throw new InvalidDataException($"{config}: not valid JSON ({ex.Message}).", ex);
        }
        using (doc)
        {
            if (!doc.RootElement.TryGetProperty("model_type", out var type)) return "llama";
            var arch = HfArchitecture.For(type.ValueKind == JsonValueKind.String ? type.GetString() : type.GetRawText(), config);
            return arch.GgufArchitecture ?? throw new InvalidDataException(
                $"{config}: MoeSharp writes GGUF for {string.Join(", ", HfArchitecture.All.Where(x => x.GgufArchitecture is not null).Select(x => x.ModelType))}, not {arch.ModelType}.");
        }
    }
}
