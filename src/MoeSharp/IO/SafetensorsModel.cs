using System.Text.Json;

namespace MoeSharp.IO;

/// <summary>
/// The tensors of a Hugging Face model folder: a single <c>model.safetensors</c>, or the shards listed in
/// <c>model.safetensors.index.json</c> (its <c>"weight_map"</c> maps each tensor name to a shard file name).
/// All files are opened and validated up front; tensor data is read on demand.
/// </summary>
public sealed class SafetensorsModel : IDisposable
{
    /// <summary>The file name of an unsharded model's weights.</summary>
    public const string SingleFileName = "model.safetensors";
    /// <summary>The file name of a sharded model's index (its "weight_map" names each tensor's shard).</summary>
    public const string IndexFileName = "model.safetensors.index.json";

    private readonly string _path;
    private readonly SafetensorsFile[] _files;
    private readonly Dictionary<string, SafetensorsFile> _fileByName;

    private SafetensorsModel(string path, SafetensorsFile[] files, Dictionary<string, SafetensorsFile> fileByName)
    {
        _path = path;
        _files = files;
        _fileByName = fileByName;
    }

    /// <summary>Tensor names: in index order for a sharded model, in data order for a single file.</summary>
    public IReadOnlyCollection<string> Names => _fileByName.Keys;

    /// <summary>Opens a model folder, an index file (<c>*.json</c>) or a single safetensors file.</summary>
    public static SafetensorsModel Open(string folderOrFile)
    {
        if (!Directory.Exists(folderOrFile))
            return folderOrFile.EndsWith(".json", StringComparison.OrdinalIgnoreCase)
                ? OpenSharded(folderOrFile)
                : OpenSingle(folderOrFile);
        string index = Path.Combine(folderOrFile, IndexFileName);
        if (File.Exists(index))
            return OpenSharded(index);
        string single = Path.Combine(folderOrFile, SingleFileName);
        if (File.Exists(single))
            return OpenSingle(single);
        throw new FileNotFoundException($"{folderOrFile}: folder has neither {IndexFileName} nor {SingleFileName}", single);
    }

    /// <summary>Whether any file of the model holds a tensor named <paramref name="name"/>.</summary>
    public bool Contains(string name) => _fileByName.ContainsKey(name);

    /// <summary>The file or index this model was opened from, for messages.</summary>
    public string Location => _path;

    /// <summary>The safetensors file that holds tensor <paramref name="name"/>, for messages.</summary>
    public string PathOf(string name) => FileOf(name).Path;

    /// <exception cref="KeyNotFoundException">No tensor of that name; the message names the model and tensor.</exception>
    public SafetensorsEntry Entry(string name) => FileOf(name)[name];

    /// <summary>Where tensor <paramref name="name"/>'s bytes start in its file (<see cref="PathOf"/>).</summary>
    public long FileOffset(string name) => FileOf(name).FileOffset(name);

    /// <inheritdoc cref="SafetensorsFile.ReadFloat32(string)"/>
    public float[] ReadFloat32(string name) => FileOf(name).ReadFloat32(name);

    /// <summary>Reads a one-byte tensor (U8, I8, BOOL) as its raw bytes.</summary>
    public byte[] ReadBytes(string name) => FileOf(name).ReadBytes(name);

    /// <inheritdoc cref="SafetensorsFile.ReadFloat32(string, Span{float})"/>
    public void ReadFloat32(string name, Span<float> destination) => FileOf(name).ReadFloat32(name, destination);

    /// <inheritdoc cref="SafetensorsFile.Matrix"/>
    public Formats.QuantizedMatrix? Matrix(string name, int rows, int cols) => FileOf(name).Matrix(name, rows, cols);

    /// <summary>Closes every shard.</summary>
    public void Dispose()
    {
        foreach (var file in _files)
            file.Dispose();
    }

    private SafetensorsFile FileOf(string name) =>
        _fileByName.TryGetValue(name, out var file)
            ? file
            : throw new KeyNotFoundException($"{_path}: no tensor named '{name}'");

    private static SafetensorsModel OpenSingle(string path)
    {
        var file = SafetensorsFile.Open(path);
        var fileByName = new Dictionary<string, SafetensorsFile>(StringComparer.Ordinal);
        foreach (var entry in file.Entries)
            fileByName.Add(entry.Name, file);
        return new SafetensorsModel(path, [file], fileByName);
    }

    private static SafetensorsModel OpenSharded(string indexPath)
    {
        var weightMap = ReadWeightMap(indexPath);
        string folder = Path.GetDirectoryName(Path.GetFullPath(indexPath))!;
        var shards = new Dictionary<string, SafetensorsFile>(StringComparer.Ordinal);
        try
        {
            var fileByName = new Dictionary<string, SafetensorsFile>(StringComparer.Ordinal);
            foreach (var (name, shard) in weightMap)
            {
                if (!shards.TryGetValue(shard, out var file))
                {
                    string shardPath = Path.Combine(folder, shard);
                    if (!File.Exists(shardPath))
                        throw new FileNotFoundException(
                            $"{indexPath}: shard '{shard}' (holding tensor '{name}') not found at {shardPath}", shardPath);
                    file = SafetensorsFile.Open(shardPath);
                    shards.Add(shard, file);
                }
                if (!file.Contains(name))
                    throw new SafetensorsFormatException(indexPath,
                        $"weight_map puts tensor '{name}' in shard '{shard}', which has no such tensor");
                fileByName.Add(name, file);
            }
            return new SafetensorsModel(indexPath, [.. shards.Values], fileByName);
        }
        catch
        {
            foreach (var file in shards.Values)
                file.Dispose();
            throw;
        }
    }

    private static List<(string Name, string Shard)> ReadWeightMap(string indexPath)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(File.ReadAllBytes(indexPath));
        }
        catch (JsonException e)
        {
            throw new SafetensorsFormatException(indexPath, $"index is not valid JSON: {e.Message}", e);
        }
        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object
                || !document.RootElement.TryGetProperty("weight_map", out var map)
                || map.ValueKind != JsonValueKind.Object)
                throw new SafetensorsFormatException(indexPath,
                    "expected a JSON object with a 'weight_map' object (tensor name -> shard file)");
            var names = new HashSet<string>(StringComparer.Ordinal);
            var weightMap = new List<(string, string)>();
            foreach (var item in map.EnumerateObject())
            {
                string name = JsonText.Name(item, indexPath);
                // A shard must be a plain file name beside the index, so the index cannot point outside its folder.
                if (item.Value.ValueKind != JsonValueKind.String
                    || JsonText.String(item.Value, indexPath) is not { Length: > 0 } shard
                    || Path.GetFileName(shard) != shard)
                    throw new SafetensorsFormatException(indexPath,
                        $"weight_map entry '{name}' is {item.Value.GetRawText()}; expected a shard file name");
                if (!names.Add(name))
                    throw new SafetensorsFormatException(indexPath, $"weight_map has duplicate tensor '{name}'");
                weightMap.Add((name, shard));
            }
            return weightMap;
        }
    }
}
