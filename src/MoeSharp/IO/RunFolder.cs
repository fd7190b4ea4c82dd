using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Serialization;
using MoeSharp.Data;
using MoeSharp.Models;
using MoeSharp.Training;

namespace MoeSharp.IO;

/// <summary>A run's config.json: the model, the training options, the tokenizer's alphabet and the data source.</summary>
public sealed record RunConfig
{
    /// <summary>The model's sizes and MoE settings.</summary>
    public required ModelConfig Model { get; init; }
    /// <summary>The training options (steps, batch, learning rate, seed, threads).</summary>
    public required LmTrainOptions Training { get; init; }

    /// <summary>The character tokenizer's alphabet, in id order.</summary>
    public required string Alphabet { get; init; }

    /// <summary>Where the text came from, with its SHA-256 so that a resume can refuse changed data.</summary>
    public required DataSource Data { get; init; }

    internal static readonly JsonSerializerOptions Json = new(ModelConfig.Json) { UnmappedMemberHandling = JsonUnmappedMemberHandling.Skip };
}

/// <summary>
/// A training run on disk: config.json, model.safetensors (Hugging Face Mixtral names), optimizer.safetensors
/// (AdamW moments, the step and the batch generator's state), checkpoint.json, metrics.jsonl, routing.jsonl and
/// alerts.jsonl.
/// </summary>
/// <remarks>
/// The weights and the optimizer state are one checkpoint: each is first written whole under a <c>.pending</c>
/// name, then checkpoint.json (the step and both files' SHA-256) is replaced atomically, and only then are the
/// pending files renamed into place. A crash before checkpoint.json is replaced leaves the previous checkpoint
/// whole; a crash after it is completed on the next <see cref="LoadCheckpoint"/>, which renames the pending files
/// whose hashes match. A pair whose hashes do not match checkpoint.json is refused, never silently resumed.
/// </remarks>
public sealed class RunFolder
{
    /// <summary>The name of the checkpoint manifest inside the folder.</summary>
    public const string CheckpointFile = "checkpoint.json";

    /// <summary>A run folder at <paramref name="path"/> (made absolute); nothing is read or created yet.</summary>
    public RunFolder(string path) => Path = System.IO.Path.GetFullPath(path);

    /// <summary>The folder's absolute path.</summary>
    public string Path { get; }
    /// <summary>config.json: the <see cref="RunConfig"/>.</summary>
    public string ConfigPath => File("config.json");
    /// <summary>model.safetensors: the weights, with Hugging Face Mixtral tensor names.</summary>
    public string ModelPath => File("model.safetensors");
    /// <summary>optimizer.safetensors: AdamW's moments, the step and the batch generator's state.</summary>
    public string OptimizerPath => File("optimizer.safetensors");
    /// <summary>checkpoint.json: the step and both files' SHA-256.</summary>
    public string CheckpointPath => File(CheckpointFile);
    /// <summary>metrics.jsonl: one line per logged step (loss, validation loss, learning rate, tokens/s).</summary>
    public string MetricsPath => File("metrics.jsonl");
    /// <summary>routing.jsonl: per logged step, one line of routing statistics per MoE layer.</summary>
    public string RoutingPath => File("routing.jsonl");
    /// <summary>alerts.jsonl: one line per dead or collapsed expert alert; empty when there were none.</summary>
    public string AlertsPath => File("alerts.jsonl");
    /// <summary>domains.json: the domain × expert routing table (built-in corpus only).</summary>
    public string DomainsPath => File("domains.json");

    /// <summary>The path of file <paramref name="name"/> inside the folder.</summary>
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

    /// <summary>Writes config.json atomically, creating the folder if needed.</summary>
    public void WriteConfig(RunConfig config)
    {
        Directory.CreateDirectory(Path);
        AtomicWrite(ConfigPath, JsonSerializer.Serialize(config, RunConfig.Json));
    }

    /// <summary>Reads and validates config.json; throws <see cref="InvalidDataException"/> naming the file and the bad field.</summary>
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

    /// <summary>Saves weights and optimizer state for <paramref name="trainer"/> at its current step, as one unit.</summary>
    public void SaveCheckpoint(LmTrainer trainer)
    {
        Directory.CreateDirectory(Path);
        int step = trainer.Step;
        string model = Pending(ModelPath), optimizer = Pending(OptimizerPath);
        ModelStore.Save(model, trainer.Model.Arena);
        Failpoint.Hit("checkpoint.model-written", step);
        int n = trainer.Model.Arena.Length;
        var state = trainer.BatchRng.State;
        SafetensorsWriter.Write(optimizer,
        [
            new SafetensorsWriter.Tensor("exp_avg", [n], trainer.Optimizer.FirstMoment),
            new SafetensorsWriter.Tensor("exp_avg_sq", [n], trainer.Optimizer.SecondMoment),
        ], new Dictionary<string, string>
        {
            ["step"] = step.ToString(CultureInfo.InvariantCulture),
            ["adam_steps"] = trainer.Optimizer.Steps.ToString(CultureInfo.InvariantCulture),
            ["batch_rng"] = string.Join(",", state.Select(w => w.ToString("x16", CultureInfo.InvariantCulture))),
        });
        Failpoint.Hit("checkpoint.optimizer-written", step);
        var manifest = new CheckpointManifest(step, Sha256(model), Sha256(optimizer));
        AtomicWrite(CheckpointPath, JsonSerializer.Serialize(manifest, CheckpointManifest.Json));
        Failpoint.Hit("checkpoint.committed", step);
        System.IO.File.Move(model, ModelPath, overwrite: true);
        Failpoint.Hit("checkpoint.model-renamed", step);
        System.IO.File.Move(optimizer, OptimizerPath, overwrite: true);
    }

    /// <summary>
    /// Restores weights, optimizer moments, the step and the batch generator into <paramref name="trainer"/>, after
    /// <see cref="RecoverCheckpoint"/> has checked that they are one checkpoint.
    /// </summary>
    public void LoadCheckpoint(LmTrainer trainer)
    {
        var manifest = RecoverCheckpoint();
        using (var weights = SafetensorsModel.Open(ModelPath)) ModelStore.Load(trainer.Model.Arena, weights);
        using var opt = SafetensorsFile.Open(OptimizerPath);
        int n = trainer.Model.Arena.Length;
        foreach (var name in new[] { "exp_avg", "exp_avg_sq" })
            if (!opt.Contains(name) || opt[name].Shape is not [var len] || len != n)
                throw new InvalidDataException($"{OptimizerPath}: '{name}' must be a vector of {n} moments, one per parameter.");
        opt.ReadFloat32("exp_avg", trainer.Optimizer.FirstMoment);
        opt.ReadFloat32("exp_avg_sq", trainer.Optimizer.SecondMoment);
        trainer.Step = MetaInt(opt, "step");
        if (trainer.Step != manifest.Step)
            throw new InvalidDataException($"{OptimizerPath}: holds step {trainer.Step} but {CheckpointPath} says step {manifest.Step}.");
        trainer.Optimizer.Steps = MetaInt(opt, "adam_steps");
        if (!opt.Metadata.TryGetValue("batch_rng", out var words) || words.Split(',') is not { Length: 4 } parts)
            throw new InvalidDataException($"{OptimizerPath}: metadata 'batch_rng' must hold 4 hexadecimal words.");
        trainer.BatchRng.State = parts.Select(w => ulong.Parse(w, NumberStyles.HexNumber, CultureInfo.InvariantCulture)).ToArray();
    }

    /// <summary>
    /// Brings the folder to its last committed checkpoint: completes the renames of a save interrupted after its
    /// commit, deletes pending files of a save interrupted before it and any leftover temporary file, and checks
    /// both files against checkpoint.json's SHA-256.
    /// </summary>
    /// <exception cref="InvalidDataException">No checkpoint.json, or a file that is not the one it names.</exception>
    public CheckpointManifest RecoverCheckpoint()
    {
        if (!System.IO.File.Exists(CheckpointPath))
            throw new InvalidDataException($"{CheckpointPath} is missing: the run has no complete checkpoint to resume from.");
        CheckpointManifest? manifest;
        try
        {
            manifest = JsonSerializer.Deserialize<CheckpointManifest>(System.IO.File.ReadAllText(CheckpointPath), CheckpointManifest.Json);
        }
        catch (JsonException ex)
        {
            throw new InvalidDataException($"{CheckpointPath}: {ex.Message}", ex);
        }
        if (manifest is not { Step: >= 0, ModelSha256.Length: 64, OptimizerSha256.Length: 64 })
            throw new InvalidDataException($"{CheckpointPath}: expected a non-negative \"step\" and two 64-digit \"model_sha256\" and \"optimizer_sha256\".");
        foreach (var (path, sha) in new[] { (ModelPath, manifest.ModelSha256), (OptimizerPath, manifest.OptimizerSha256) })
        {
            string pending = Pending(path);
            if (System.IO.File.Exists(pending))
            {
                if (Sha256(pending) == sha) System.IO.File.Move(pending, path, overwrite: true);
                else System.IO.File.Delete(pending);
            }
            if (!System.IO.File.Exists(path))
                throw new InvalidDataException($"{path} is missing; {CheckpointPath} names it for step {manifest.Step}.");
            string actual = Sha256(path);
            if (actual != sha)
                throw new InvalidDataException($"{path} has SHA-256 {actual[..12]}…, but {CheckpointPath} (step {manifest.Step}) expects {sha[..12]}…: "
                    + "the weights and the optimizer state are not from the same checkpoint, so --resume would diverge.");
        }
        foreach (var temp in Directory.EnumerateFiles(Path, "*.tmp")) System.IO.File.Delete(temp);
        return manifest;
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

    internal void Append(string path, string jsonLine) => System.IO.File.AppendAllText(path, jsonLine + "\n");

    private static int MetaInt(SafetensorsFile file, string key) =>
        file.Metadata.TryGetValue(key, out var v) && int.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out int i) && i >= 0 ? i
            : throw new InvalidDataException($"{file.Path}: metadata '{key}' must be a non-negative integer.");

    private static string Pending(string path) => path + ".pending";

    private static string Sha256(string path)
    {
        using var stream = System.IO.File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }

    internal static void AtomicWrite(string path, string text)
    {
        string temp = $"{path}.{Guid.NewGuid():N}.tmp";
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write))
            {
                stream.Write(System.Text.Encoding.UTF8.GetBytes(text));
                stream.Flush(flushToDisk: true);
            }
            System.IO.File.Move(temp, path, overwrite: true);
        }
        finally
        {
            if (System.IO.File.Exists(temp)) System.IO.File.Delete(temp);
        }
    }
}

/// <summary>checkpoint.json: the step of the last complete checkpoint and the SHA-256 of its two files.</summary>
public sealed record CheckpointManifest(int Step, string ModelSha256, string OptimizerSha256)
{
    internal static readonly JsonSerializerOptions Json = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower, WriteIndented = true };
}

/// <summary>
/// Crash injection for the checkpoint tests: MOE_FAILPOINT=NAME (or NAME@STEP) ends the process abruptly when a save
/// reaches that point, as a kill or power cut would. Read once; checked only at checkpoint writes.
/// </summary>
internal static class Failpoint
{
    private static readonly string? s_spec = Environment.GetEnvironmentVariable("MOE_FAILPOINT");

    public static void Hit(string name, int step)
    {
        if (s_spec is not null && (s_spec == name || s_spec == $"{name}@{step}"))
            Environment.FailFast($"MOE_FAILPOINT: stopped at {name}, step {step}.");
    }
}
