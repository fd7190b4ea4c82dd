using MoeSharp.Nn;
using MoeSharp.Tensors;

namespace MoeSharp.IO;

/// <summary>Moves a <see cref="ParameterArena"/> to and from safetensors files, by parameter name.</summary>
public static class Checkpoint
{
    /// <summary>Writes every parameter under its own name, atomically.</summary>
    public static void Save(string path, ParameterArena arena, IReadOnlyDictionary<string, string>? metadata = null) =>
        SafetensorsWriter.Write(path, arena.Parameters.Select(p =>
            new SafetensorsWriter.Tensor(p.Name, p.Shape, arena.Values.AsMemory(p.Offset, p.Length))), metadata);

    /// <summary>
    /// Fills every parameter from <paramref name="source"/>, looking each up under <paramref name="rename"/>(name).
    /// A missing tensor or a shape mismatch is an error naming both; nothing is changed unless all are present.
    /// </summary>
    public static void Load(ParameterArena arena, SafetensorsModel source, Func<string, string>? rename = null)
    {
        foreach (var p in arena.Parameters)
        {
            string name = rename?.Invoke(p.Name) ?? p.Name;
            if (!source.Contains(name))
                throw new KeyNotFoundException($"Checkpoint has no tensor '{name}' for parameter '{p.Name}' {Shapes.Format(p.Shape)}.");
            var entry = source.Entry(name);
            if (!entry.Shape.AsSpan().SequenceEqual(p.Shape))
                throw new ArgumentException($"Checkpoint tensor '{name}' has shape {Shapes.Format(entry.Shape)}; parameter '{p.Name}' needs {Shapes.Format(p.Shape)}.");
        }
        foreach (var p in arena.Parameters)
            source.ReadFloat32(rename?.Invoke(p.Name) ?? p.Name, p.Value.Span);
    }
}
