using System.Text.Json;
using System.Text.Json.Nodes;
using MoeSharp.Classic.Data;
using MoeSharp.Classic.Experts;
using MoeSharp.Classic.Models;
using MoeSharp.IO;
using MoeSharp.Tensors;

namespace MoeSharp.Classic.IO;

/// <summary>
/// Saves classic mixtures as a model folder in the layout of the language models: <c>model.safetensors</c> with every
/// tensor (the gate's parameters, each expert's under <c>experts.{e}.</c>, tree node arrays included) and
/// <c>config.json</c> with the shapes, each expert's kind and settings, the variances, frozen flags and k, and the
/// data schema. A hierarchical mixture nests its groups under <c>groups.{i}.</c>.
/// </summary>
public static class MixtureFile
{
    /// <summary>The name of the settings file inside a saved mixture's folder (next to model.safetensors).</summary>
    public const string ConfigFileName = "config.json";
    /// <summary>The version written to config.json; a folder with another version is refused.</summary>
    public const int FormatVersion = 1;

    /// <summary>Saves a flat mixture (gate, experts, variances, and the schema if given) into <paramref name="folder"/>.</summary>
    public static void Save(string folder, MixtureOfExperts model, TabularSchema? schema = null)
    {
        var tensors = new List<SafetensorsWriter.Tensor>();
        var config = Header("mixture_of_experts", model.Task, model.Inputs, model.Outputs, schema);
        config["mixture"] = Mixture(model, "", tensors);
        Write(folder, config, tensors);
    }

    /// <summary>Saves a two-level mixture (top gate and every group) into <paramref name="folder"/>.</summary>
    public static void Save(string folder, HierarchicalMixture model, TabularSchema? schema = null)
    {
        var tensors = new List<SafetensorsWriter.Tensor>();
        var config = Header("hierarchical_mixture", model.Task, model.Inputs, model.Outputs, schema);
        config["top_gate"] = GateConfig(model.Top.Options);
        AddGate(model.Top, "", tensors);
        var groups = new JsonArray();
        for (int i = 0; i < model.Groups.Count; i++) groups.Add(Mixture(model.Groups[i], $"groups.{i}.", tensors));
        config["groups"] = groups;
        Write(folder, config, tensors);
    }

    /// <summary>Reads a folder written by <c>Save</c>; <paramref name="custom"/> rebuilds expert kinds other than the built-in ones.</summary>
    public static SavedMixture Load(string folder, Func<ExpertState, IExpert?>? custom = null)
    {
        string path = Path.Combine(folder, ConfigFileName);
        if (!File.Exists(path)) throw new FileNotFoundException($"{folder}: no {ConfigFileName}; is this a model folder written by 'moe fit'?", path);
        JsonObject config;
        try
        {
            config = JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new FormatException($"{path}: expected a JSON object.");
        }
        catch (JsonException e)
        {
            throw new FormatException($"{path}: not valid JSON: {e.Message}", e);
        }
        var reader = new ConfigReader(path);
        int version = reader.Int(config, "format_version");
        if (version != FormatVersion) throw new FormatException($"{path}: format_version {version} is not supported (expected {FormatVersion}).");
        string type = reader.String(config, "model_type");
        var schema = config["schema"] is JsonObject s ? ReadSchema(reader, s) : null;
        using var tensors = SafetensorsModel.Open(folder);
        switch (type)
        {
            case "mixture_of_experts":
                return new SavedMixture(ReadMixture(reader, config, reader.Object(config, "mixture"), "", tensors, custom), null, schema);
            case "hierarchical_mixture":
                var groups = reader.Array(config, "groups").Select((g, i) =>
                    ReadMixture(reader, config, g as JsonObject ?? throw new FormatException($"{path}: groups[{i}] is not an object."), $"groups.{i}.", tensors, custom)).ToArray();
                var model = new HierarchicalMixture(groups, ReadGateOptions(reader, reader.Object(config, "top_gate")));
                LoadGate(model.Top, "", tensors);
                return new SavedMixture(null, model, schema);
            default:
                throw new FormatException($"{path}: model_type '{type}' is not 'mixture_of_experts' or 'hierarchical_mixture'.");
        }
    }

    private static JsonObject Header(string type, TabularTask task, int inputs, int outputs, TabularSchema? schema)
    {
        var config = new JsonObject
        {
            ["model_type"] = type,
            ["format_version"] = FormatVersion,
            ["task"] = ExpertState.TaskName(task),
            ["inputs"] = inputs,
            ["outputs"] = outputs,
        };
        if (schema is not null)
            config["schema"] = new JsonObject
            {
                ["features"] = new JsonArray(schema.Features.Select(f => (JsonNode?)f).ToArray()),
                ["target"] = schema.Target,
                ["task"] = ExpertState.TaskName(schema.Task),
                ["class_values"] = Numbers(schema.ClassValues),
                ["input_mean"] = Numbers(schema.InputMean.Select(v => (double)v)),
                ["input_std"] = Numbers(schema.InputStd.Select(v => (double)v)),
                ["target_mean"] = schema.TargetMean,
                ["target_std"] = schema.TargetStd,
            };
        return config;
    }

    private static JsonObject Mixture(MixtureOfExperts model, string prefix, List<SafetensorsWriter.Tensor> tensors)
    {
        AddGate(model.Gate, prefix, tensors);
        var experts = new JsonArray();
        for (int e = 0; e < model.Count; e++)
        {
            var state = model.Experts[e].Export();
            experts.Add(new JsonObject { ["kind"] = state.Kind, ["settings"] = state.Settings.DeepClone() });
            foreach (var (name, t) in state.Tensors)
                tensors.Add(new SafetensorsWriter.Tensor($"{prefix}experts.{e}.{name}", t.Shape.ToArray(), t.ToArray()));
        }
        return new JsonObject
        {
            ["gate"] = GateConfig(model.Gate.Options),
            ["top_k"] = model.TopK,
            ["variances"] = Numbers(model.Variances.Select(v => (double)v)),
            ["frozen"] = new JsonArray(Enumerable.Range(0, model.Count).Select(e => (JsonNode?)model.IsFrozen(e)).ToArray()),
            ["experts"] = experts,
        };
    }

    private static JsonObject GateConfig(GateOptions o) => new() { ["hidden"] = o.Hidden, ["top_k"] = o.TopK, ["seed"] = o.Seed };

    private static void AddGate(Gate gate, string prefix, List<SafetensorsWriter.Tensor> tensors)
    {
        foreach (var p in gate.Arena.Parameters)
            tensors.Add(new SafetensorsWriter.Tensor(prefix + p.Name, p.Shape, p.Value.ToArray()));
    }

    private static void Write(string folder, JsonObject config, List<SafetensorsWriter.Tensor> tensors)
    {
        Directory.CreateDirectory(folder);
        SafetensorsWriter.Write(Path.Combine(folder, SafetensorsModel.SingleFileName), tensors, new Dictionary<string, string> { ["format"] = "pt" });
        // Written beside the target and moved over it, so a reader never sees half a config.
        string target = Path.Combine(folder, ConfigFileName), temp = target + ".tmp";
        File.WriteAllText(temp, config.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        File.Move(temp, target, overwrite: true);
    }

    private static MixtureOfExperts ReadMixture(ConfigReader reader, JsonObject root, JsonObject m, string prefix, SafetensorsModel tensors, Func<ExpertState, IExpert?>? custom)
    {
        var task = reader.String(root, "task") switch
        {
            "classification" => TabularTask.Classification,
            "regression" => TabularTask.Regression,
            var t => throw new FormatException($"{reader.Path}: task '{t}' is not 'classification' or 'regression'."),
        };
        int inputs = reader.Int(root, "inputs"), outputs = reader.Int(root, "outputs");
        var experts = reader.Array(m, "experts").Select((node, e) =>
        {
            var entry = node as JsonObject ?? throw new FormatException($"{reader.Path}: {prefix}experts[{e}] is not an object.");
            string kind = reader.String(entry, "kind");
            string local = $"{prefix}experts.{e}.";
            var own = tensors.Names.Where(n => n.StartsWith(local, StringComparison.Ordinal))
                .ToDictionary(n => n[local.Length..], n => Tensor.FromArray(tensors.ReadFloat32(n), tensors.Entry(n).Shape));
            return new ExpertState(kind, (JsonObject)reader.Object(entry, "settings").DeepClone(), own).Restore(custom);
        }).ToArray();
        var options = new MixtureOptions
        {
            Task = task, Inputs = inputs, Classes = task == TabularTask.Classification ? outputs : 0,
            Gate = ReadGateOptions(reader, reader.Object(m, "gate")),
        };
        var model = new MixtureOfExperts(options, experts);
        var gate = new Gate(inputs, experts.Length, options.Gate);
        LoadGate(gate, prefix, tensors);
        var variances = reader.Array(m, "variances").Select(v => v?.GetValue<float>() ?? throw new FormatException($"{reader.Path}: a variance is null.")).ToArray();
        var frozen = reader.Array(m, "frozen").Select(v => v?.GetValue<bool>() ?? false).ToArray();
        if (variances.Length != experts.Length || frozen.Length != experts.Length)
            throw new FormatException($"{reader.Path}: {prefix}mixture has {experts.Length} experts but {variances.Length} variances and {frozen.Length} frozen flags.");
        model.RestoreState(gate, variances, frozen, reader.Int(m, "top_k"));
        return model;
    }

    private static GateOptions ReadGateOptions(ConfigReader reader, JsonObject g) => new()
    {
        Hidden = reader.Int(g, "hidden"),
        TopK = reader.Int(g, "top_k"),
        Seed = g["seed"]?.GetValue<ulong>() ?? 7,
    };

    private static void LoadGate(Gate gate, string prefix, SafetensorsModel tensors) => ModelStore.Load(gate.Arena, tensors, name => prefix + name);

    private static TabularSchema ReadSchema(ConfigReader reader, JsonObject s) => new()
    {
        Features = reader.Array(s, "features").Select(f => f?.GetValue<string>() ?? throw new FormatException($"{reader.Path}: a feature name is null.")).ToArray(),
        Target = reader.String(s, "target"),
        Task = reader.String(s, "task") == "classification" ? TabularTask.Classification : TabularTask.Regression,
        ClassValues = reader.Array(s, "class_values").Select(v => v!.GetValue<double>()).ToArray(),
        InputMean = reader.Array(s, "input_mean").Select(v => v!.GetValue<float>()).ToArray(),
        InputStd = reader.Array(s, "input_std").Select(v => v!.GetValue<float>()).ToArray(),
        TargetMean = s["target_mean"]?.GetValue<double>() ?? 0,
        TargetStd = s["target_std"]?.GetValue<double>() ?? 1,
    };

    private static JsonArray Numbers(IEnumerable<double> values) => new(values.Select(v => (JsonNode?)v).ToArray());

    /// <summary>Field access that names the file and the field when one is missing or of the wrong kind.</summary>
    private sealed class ConfigReader(string path)
    {
        public string Path { get; } = path;

        public JsonNode Node(JsonObject o, string field) => o[field] ?? throw new FormatException($"{Path}: field '{field}' is missing.");

        public int Int(JsonObject o, string field) => Node(o, field) is JsonValue v && v.TryGetValue(out int i) ? i
            : throw new FormatException($"{Path}: field '{field}' must be an integer.");

        public string String(JsonObject o, string field) => Node(o, field) is JsonValue v && v.TryGetValue(out string? s) ? s
            : throw new FormatException($"{Path}: field '{field}' must be a string.");

        public JsonObject Object(JsonObject o, string field) => Node(o, field) as JsonObject
            ?? throw new FormatException($"{Path}: field '{field}' must be an object.");

        public JsonArray Array(JsonObject o, string field) => Node(o, field) as JsonArray
            ?? throw new FormatException($"{Path}: field '{field}' must be an array.");
    }
}
