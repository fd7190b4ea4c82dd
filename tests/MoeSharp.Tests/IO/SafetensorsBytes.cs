using System.Buffers.Binary;
using System.Text;

namespace MoeSharp.Tests.IO;

/// <summary>Builds safetensors files byte by byte, so tests do not depend on the writer under test.</summary>
public static class SafetensorsBytes
{
    /// <summary>An 8-byte little-endian length, then <paramref name="rest"/>.</summary>
    public static byte[] WithLength(ulong headerLength, ReadOnlySpan<byte> rest)
    {
        var bytes = new byte[8 + rest.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, headerLength);
        rest.CopyTo(bytes.AsSpan(8));
        return bytes;
    }

    /// <summary>A file with the given JSON header and data section.</summary>
    public static byte[] Build(string header, ReadOnlySpan<byte> data)
    {
        byte[] json = Encoding.UTF8.GetBytes(header);
        return WithLength((ulong)json.Length, [.. json, .. data]);
    }
}

/// <summary>A fresh temporary folder per test, deleted afterwards.</summary>
public abstract class TempFolderTest : IDisposable
{
    protected string Folder { get; } = Directory.CreateTempSubdirectory("moesharp-io-").FullName;

    protected string Write(string fileName, byte[] bytes)
    {
        string path = Path.Combine(Folder, fileName);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    public void Dispose()
    {
        Directory.Delete(Folder, recursive: true);
        GC.SuppressFinalize(this);
    }
}
