using MoeSharp.Formats;
using MoeSharp.Models;
using MoeSharp.Nn;

namespace MoeSharp.IO;

/// <summary>How <see cref="ModelStore"/> places a model's weights when it loads a checkpoint.</summary>
/// <remarks>
/// The default is the trainable fp32 arena (training, <c>--resume</c>, saving). <see cref="InPlace"/> and
/// <see cref="Quantize"/> are for inference (<c>moe generate</c>, <c>chat</c>, <c>eval</c>, <c>bench</c>,
/// <c>inspect</c>): the model's <see cref="MoeTransformer.Storable"/> weights then compute as stored, read from the
/// memory-mapped files or quantized once into memory the model owns, and the model must be disposed to unmap the
/// files. Norms, routers, biases, sinks and latent attention's kv_b_proj stay fp32 either way. A GGUF file is always
/// read in place.
/// </remarks>
public sealed record ModelLoadOptions
{
    /// <summary>Positions the RoPE table and KV cache hold; null for the checkpoint's own context.</summary>
    public int? MaxContext { get; init; }

    /// <summary>Compute with F32, F16 and BF16 safetensors weights in place from the mapped files (inference only).</summary>
    public bool InPlace { get; init; }

    /// <summary>
    /// Quantize every storable weight to this format once on load (inference only); null keeps each as stored. MXFP4
    /// applies to the stacked experts only: the other weights keep the checkpoint's format. Experts the checkpoint
    /// stores as MXFP4 (GPT-OSS's release) stay MXFP4 under Q8_0, Q4_K and Q6_K, and are dequantized under a float format.
    /// </summary>
    public WeightFormat? Quantize { get; init; }

    /// <summary>
    /// Page the routed experts from the checkpoint file through an <see cref="Experts.ExpertCache"/> so that the model's
    /// weights, KV cache and expert slots take at most this many bytes (GGUF checkpoints, weights in place); null keeps
    /// every expert resident in the map.
    /// </summary>
    public long? MaxMemoryBytes { get; init; }

    /// <summary>How the expert cache of <see cref="MaxMemoryBytes"/> evicts.</summary>
    public Experts.ExpertCachePolicy ExpertCachePolicy { get; init; }

    /// <summary>Whether the options ask for stored weights (anything but the trainable fp32 arena).</summary>
    internal bool Stored => InPlace || Quantize is not null || MaxMemoryBytes is not null;
}

public static partial class ModelStore
{
    /// <summary>
    /// The weights of one open checkpoint for <see cref="MoeTransformer"/>: each storable parameter that the checkpoint
    /// holds in a format the model computes with is used in place, or quantized once into arrays when a format is
    /// asked for; it owns the open files (or nothing, for an fp32 load that has already read them).
    /// </summary>
    private sealed class CheckpointWeights(string source, Func<Parameter, QuantizedMatrix[]?>? inPlace, WeightFormat? quantize, IDisposable? files)
        : IWeightSource
    {
        public StoredWeight? Stored(Parameter parameter)
        {
            if (inPlace?.Invoke(parameter) is not { } matrices) return null;
            if (quantize is not { } format || format == WeightFormat.MXFP4 && parameter.Shape.Length != 3)
                return new StoredWeight(matrices);
            var quantized = new QuantizedMatrix[matrices.Length];
            // Experts a checkpoint stores as MXFP4 (GPT-OSS's release) keep it under a block format, which could only
            // add error to 4-bit values (llama.cpp's MXFP4_MOE keeps them so too); a float format holds them exactly.
            bool keepMxfp4 = parameter.Shape.Length == 3 && format is not (WeightFormat.F32 or WeightFormat.F16 or WeightFormat.BF16);
            for (int i = 0; i < matrices.Length; i++)
                quantized[i] = matrices[i].Format == format || keepMxfp4 && matrices[i].Format == WeightFormat.MXFP4
                    ? matrices[i] : Requantize(matrices[i], format, source, parameter.Name);
            return new StoredWeight(quantized);
        }

        public void Dispose() => files?.Dispose();
    }

    /// <summary><paramref name="matrix"/> quantized to <paramref name="format"/> row by row into a new array.</summary>
    /// <exception cref="InvalidDataException">The rows are not a whole number of the format's blocks; names the tensor.</exception>
    internal static QuantizedMatrix Requantize(QuantizedMatrix matrix, WeightFormat format, string source, string name)
    {
        int cols = matrix.Cols;
        if (cols % format.BlockSize() != 0)
            throw new InvalidDataException($"{source}: weight '{name}' has rows of {cols}; {format} needs a multiple of {format.BlockSize()}.");
        long rowBytes = format.RowBytes(cols);
        var data = GC.AllocateUninitializedArray<byte>(checked((int)(matrix.Rows * rowBytes))); // [rows, rowBytes]
        Parallel.For(0, matrix.Rows, () => new float[cols], (r, _, row) =>
        {
            matrix.DequantizeRow(r, row);
            Quantizer.QuantizeRow(format, row, data.AsSpan((int)(r * rowBytes), (int)rowBytes));
            return row;
        }, _ => { });
        return new QuantizedMatrix(data, format, matrix.Rows, cols);
    }

    /// <summary>
    /// The model for <paramref name="config"/> over the safetensors checkpoint <paramref name="weights"/> (tensor of
    /// HF name n stored under <paramref name="rename"/>(n)), filled by <paramref name="fill"/>. The model takes
    /// <paramref name="weights"/> over when it keeps stored weights in the mapping; an fp32 load closes it.
    /// </summary>
    private static MoeTransformer Build(ModelConfig config, SafetensorsModel weights, ModelLoadOptions options, Func<string, string>? rename,
        Action<MoeTransformer> fill, HfArchitecture? architecture = null)
    {
        if (options.MaxMemoryBytes is not null && options.Quantize is not null)
            throw new ArgumentException($"{weights.Location}: --max-memory pages the experts as the checkpoint stores them; it cannot be combined with --quantize (write a quantized file with moe quantize instead).");
        MoeTransformer model;
        try
        {
            bool converting = options.Quantize is not null;
            var inPlace = options.Stored
                ? (Func<Parameter, QuantizedMatrix[]?>)(p => architecture?.StoredMatrices(weights, p, converting) ?? SafetensorsMatrices(weights, p, rename, CheckOnLoad(options, p)))
                : null;
            model = new MoeTransformer(config, new CheckpointWeights(weights.Location, inPlace, options.Quantize, options.Stored ? weights : null));
        }
        catch
        {
            weights.Dispose();
            throw;
        }
        try
        {
            fill(model);
            if (options.MaxMemoryBytes is { } max)
                PageExperts(model, weights.Location, (p, e) => SafetensorsLocation(weights, p, e, rename), max, options.ExpertCachePolicy);
        }
        catch
        {
            model.Dispose();
            throw;
        }
        finally
        {
            if (!options.Stored) weights.Dispose();
        }
        return model;
    }

    /// <summary>
    /// The mapped matrices of parameter <paramref name="p"/> (one for [out, in], one per expert for stacked
    /// [E, out, in], split as <see cref="Save"/> writes them), or null unless every one is present as F32, F16 or BF16
    /// with the right shape; the fp32 loader then reads (or reports) it.
    /// </summary>
    private static QuantizedMatrix[]? SafetensorsMatrices(SafetensorsModel weights, Parameter p, Func<string, string>? rename, bool check)
    {
        var names = new List<string>();
        int[] shape;
        var m = StackedExperts().Match(p.Name);
        if (m.Success)
        {
            for (int j = 0; j < p.Shape[0]; j++) names.Add($"{m.Groups["prefix"].Value}.{j}.{m.Groups["w"].Value}.weight");
            shape = p.Shape[1..];
        }
        else
        {
            names.Add(p.Name);
            shape = p.Shape;
        }
        if (shape.Length != 2) return null;
        var matrices = new QuantizedMatrix[names.Count];
        for (int i = 0; i < names.Count; i++)
        {
            string stored = rename?.Invoke(names[i]) ?? names[i];
            if (!weights.Contains(stored) || !weights.Entry(stored).Shape.AsSpan().SequenceEqual(shape)) return null;
            if (weights.Matrix(stored, shape[0], shape[1]) is not { } matrix) return null;
            if (check && matrix.FirstNonFinite() is var (at, value))
                throw new InvalidDataException($"{weights.PathOf(stored)}: checkpoint tensor '{stored}' holds {value} at flat index {at} of shape {Tensors.Shapes.Format(shape)}; weights must be finite.");
            matrices[i] = matrix;
        }
        return matrices;
    }

    /// <summary>
    /// Whether an in-place load checks <paramref name="p"/>'s bytes for NaN and infinity now: always, but for the stacked
    /// experts of a paged load, whose check would read every expert from the file; the <see cref="Experts.ExpertCache"/> checks
    /// each of those as it first pages it in, naming the file, layer and expert (<see cref="PageExperts"/> checks any
    /// it does not page).
    /// </summary>
    private static bool CheckOnLoad(ModelLoadOptions options, Parameter p) => options.MaxMemoryBytes is null || p.Shape.Length != 3;

    /// <summary>The file and offset of expert <paramref name="expert"/> of stacked parameter <paramref name="p"/>, named as <see cref="SafetensorsMatrices"/> names it.</summary>
    private static (string Path, long Offset) SafetensorsLocation(SafetensorsModel weights, Parameter p, int expert, Func<string, string>? rename)
    {
        var m = StackedExperts().Match(p.Name);
        string name = $"{m.Groups["prefix"].Value}.{expert}.{m.Groups["w"].Value}.weight";
        string stored = rename?.Invoke(name) ?? name;
        return (weights.PathOf(stored), weights.FileOffset(stored));
    }

    /// <summary>The GGUF matrices of parameter <paramref name="p"/> (tensor <paramref name="name"/>) in place, or null when the file lacks the tensor or its shape differs (<see cref="LoadGguf"/> names the problem).</summary>
    private static QuantizedMatrix[]? GgufMatrices(GgufFile file, string name, Parameter p, bool check)
    {
        if (!file.Contains(name)) return null;
        var info = file[name];
        if (info.Dims.Length != p.Shape.Length || !SameShape(p.Shape, info.Dims) || !WeightFormats.TryFromGgmlType(info.GgmlType, out _)) return null;
        var matrices = new QuantizedMatrix[p.Shape.Length == 3 ? p.Shape[0] : 1];
        for (int e = 0; e < matrices.Length; e++)
        {
            matrices[e] = file.Matrix(name, e);
            if (check && matrices[e].FirstNonFinite() is var (at, value))
                throw new InvalidDataException($"{file.Path}: tensor '{name}' holds {value} at flat index {e * (long)matrices[e].Rows * matrices[e].Cols + at}; weights must be finite.");
        }
        return matrices;
    }

    /// <summary>"3.2 GB in place as Q4_K, 12 MB fp32" for messages: what a loaded model's weights take.</summary>
    public static string Describe(MoeTransformer model)
    {
        var formats = new SortedSet<string>(StringComparer.Ordinal);
        long stored = 0;
        foreach (var p in model.Arena.Parameters)
            if (p.Stored is { } w)
            {
                formats.Add(w.Format.ToString());
                stored += w.Bytes;
            }
        string fp32 = $"{Megabytes(4L * model.Arena.Length)} fp32";
        return stored == 0 ? fp32 : $"{Megabytes(stored)} stored as {string.Join("/", formats)}, {fp32}";
    }

    private static string Megabytes(long bytes) => $"{bytes / 1e6:F1} MB";
}
