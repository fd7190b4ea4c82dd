namespace MoeSharp.IO;

/// <summary>
/// A safetensors file (or model index) is malformed, or holds a tensor in a form the caller cannot read.
/// The message names the file and, where relevant, the tensor or field, and says what was expected.
/// </summary>
/// <remarks>
/// Derives from <see cref="IOException"/> because <see cref="InvalidDataException"/> is sealed; a caller's
/// <c>catch (IOException)</c> thus covers a missing file and a malformed one alike.
/// </remarks>
public sealed class SafetensorsFormatException : IOException
{
    internal SafetensorsFormatException(string filePath, string detail, Exception? innerException = null)
        : base($"{filePath}: {detail}", innerException) => FilePath = filePath;

    /// <summary>The file at fault.</summary>
    public string FilePath { get; }
}
