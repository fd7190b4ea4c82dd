namespace MoeSharp.IO;

/// <summary>
/// A GGUF file is malformed, or holds a tensor in a form the caller cannot use. The message names the file and the
/// offending key, tensor or byte offset, and says what was expected.
/// </summary>
public sealed class GgufFormatException : IOException
{
    internal GgufFormatException(string filePath, string detail, Exception? innerException = null)
        : base($"{filePath}: {detail}", innerException) => FilePath = filePath;

    /// <summary>The file at fault.</summary>
    public string FilePath { get; }
}
