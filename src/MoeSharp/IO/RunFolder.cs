using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using MoeSharp.Data;
using MoeSharp.Models;
using MoeSharp.Training;

namespace MoeSharp.IO;

/// <summary>A run's config.json: the model, the training options, the tokenizer's alphabet and the data source.</summary>
public sealed record RunConfig
{
    public required ModelConfig Model { get; init; }
    public required LmTrainOptions Training { get; init; }

    /// <summary>The character tokenizer's alphabet, in id order.</summary>
    public required string Alphabet { get; init; }

    public required DataSource Data { get; init; }

    public static readonly JsonSerializerOptions Json = new(ModelConfig.Json) { UnmappedMemberHandling = JsonUnmappedMemberHandling.Skip };
}

/// <summary>
/// A training run on disk: config.json, model.safetensors (Hugging Face Mixtral names), optimizer.safetensors
/// (AdamW moments, the step and the batch generator's state), metrics.jsonl, routing.jsonl and alerts.jsonl.
/// Every file write is atomic (temp file, then rename), so an interrupted save leaves the previous checkpoint whole.
/// </summary>
public sealed class RunFolder
{
    public RunFolder(string path) => Path = System.IO.Path.GetFullPath(path);

    public string Path { get; }
    public string ConfigPath => File("config.json");
    public string ModelPath => File("model.safetensors");
    public string OptimizerPath => File("optimizer.safetensors");
    public string MetricsPath => File("metrics.jsonl");
    public string RoutingPath => File("routing.jsonl");
    public string AlertsPath => File("alerts.jsonl");

    public string File(string name) => System.IO.Path.Combine(Path, name);

    /// <summary>
    /// Whether the folder holds a MoeSharp run: a config.json with a "model" section (a Hugging Face folder has none).
    /// Weights-only copies without optimizer state still count.
    /// </summary>
    public bool IsRun
    {
        get
        {
            if (!System.IO.File.Exists(ConfigPath)) return false;
            try
            {
                using var doc = JsonDocument.Parse(System.IO.File.ReadAllText(ConfigPath));
                return doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("model", out _);
            }
            catch (JsonException)
            {
                return false;
            }
        }
    }

    public void WriteConfig(RunConfig config)
    {
        Directory.CreateDirectory(Path);
        AtomicWrite(ConfigPath, JsonSerializer.Serialize(config, RunConfig.Json));
    }

    public RunConfig ReadConfig()
    {
        if (!System.IO.File.Exists(ConfigPath)) throw new FileNotFoundException($"Run folder '{Path}' has no config.json.");
        RunConfig? config;
        try
        {
            config = JsonSerializer.Deserialize<RunConfig>(System.IO.File.ReadAllText(ConfigPath), RunConfig.Json);
        }
        catch (JsonException ex)
        {
            throw new InvalidDataException($"{ConfigPath}: {ex.Message}", ex);
        }
        if (config is null) throw new InvalidDataException($"{ConfigPath}: empty config.");
        try
        {
            config.Model.Validate();
        }
        catch (ArgumentException ex)
        {
            throw new InvalidDataException($"{ConfigPath}: {ex.Message}", ex);
        }
        return config;
    }

    /// <summary>Saves weights and optimizer state for <paramref name="trainer"/> at its current step.</summary>
    public void SaveCheckpoint(LmTrainer trainer)
    {
        Directory.CreateDirectory(Path);
        ModelStore.Save(ModelPath, trainer.Model.Arena);
        int n = trainer.Model.Arena.Length;
        var state = trainer.BatchRng.State;
        SafetensorsWriter.Write(OptimizerPath,
        [
            new SafetensorsWriter.Tensor("exp_avg", [n], trainer.Optimizer.FirstMoment),
            new SafetensorsWriter.Tensor("exp_avg_sq", [n], trainer.Optimizer.SecondMoment),
        ], new Dictionary<string, string>
        {
            ["step"] = trainer.Step.ToString(CultureInfo.InvariantCulture),
            ["adam_steps"] = trainer.Optimizer.Steps.ToString(CultureInfo.InvariantCulture),
            ["batch_rng"] = string.Join(",", state.Select(w => w.ToString("x16", CultureInfo.InvariantCulture))),
        });
    }

    /// <summary>Restores weights, optimizer moments, the step and the batch generator into <paramref name="trainer"/>.</summary>
    public void LoadCheckpoint(LmTrainer trainer)
    {
        using (var weights = SafetensorsModel.Open(ModelPath)) ModelStore.Load(trainer.Model.Arena, weights);
        using var opt = SafetensorsFile.Open(OptimizerPath);
        int n = trainer.Model.Arena.Length;
        foreach (var name in new[] { "exp_avg", "exp_avg_sq" })
            if (!opt.Contains(name) || opt[name].Shape is not [var len] || len != n)
                throw new InvalidDataException($"{OptimizerPath}: '{name}' must be a vector of {n} moments, one per parameter.");
        opt.ReadFloat32("exp_avg", trainer.Optimizer.FirstMoment);
        opt.ReadFloat32("exp_avg_sq", trainer.Optimizer.SecondMoment);
        trainer.Step = MetaInt(opt, "step");
        trainer.Optimizer.Steps = MetaInt(opt, "adam_steps");
        if (!opt.Metadata.TryGetValue("batch_rng", out var words) || words.Split(',') is not { Length: 4 } parts)
            throw new InvalidDataException($"{OptimizerPath}: metadata 'batch_rng' must hold 4 hexadecimal words.");
        trainer.BatchRng.State = parts.Select(w => ulong.Parse(w, NumberStyles.HexNumber, CultureInfo.InvariantCulture)).ToArray();
    }

    /// <summary>Drops log lines written after <paramref name="step"/> (from a run interrupted after its last checkpoint).</summary>
    public void TruncateLogs(int step)
    {
        foreach (var path in new[] { MetricsPath, RoutingPath, AlertsPath })
        {
            if (!System.IO.File.Exists(path)) continue;
            var kept = System.IO.File.ReadLines(path).Where(line =>
            {
                using var doc = JsonDocument.Parse(line);
                return !doc.RootElement.TryGetProperty("step", out var s) || s.GetInt64() <= step;
            }).ToArray();
            AtomicWrite(path, kept.Length == 0 ? "" : string.Join('\n', kept) + "\n");
        }
    }

    public void Append(string path, string jsonLine) => System.IO.File.AppendAllText(path, jsonLine + "\n");

    private static int MetaInt(SafetensorsFile file, string key) =>
        file.Metadata.TryGetValue(key, out var v) && int.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out int i) && i >= 0 ? i
            : throw new InvalidDataException($"{file.Path}: metadata '{key}' must be a non-negative integer.");

    internal static void AtomicWrite(string path, string text)
    {
        string temp = $"{path}.{Guid.NewGuid():N}.tmp";
        try
        {
            System.IO.File.WriteAllText(temp, text);
            System.IO.File.Move(temp, path, overwrite: true);
        }
        finally
        {
            if (System.IO.File.Exists(temp)) System.IO.File.Delete(temp);
        }
    }
}
