using Microsoft.ML.Tokenizers;

namespace MoeSharp.Data;

/// <summary>Text to token ids and back: per character, or byte-pair encoding through Microsoft.ML.Tokenizers.</summary>
public interface ITextTokenizer
{
    /// <summary>Number of token ids: every id is in [0, VocabSize).</summary>
    int VocabSize { get; }
    /// <summary>Token ids of <paramref name="text"/>; a character the vocabulary cannot represent throws, naming its position.</summary>
    int[] Encode(string text);
    /// <summary>The text of <paramref name="ids"/>, the inverse of <see cref="Encode"/>.</summary>
    string Decode(ReadOnlySpan<int> ids);
}

/// <summary>
/// Byte-pair encoding from a Hugging Face style vocab.json and merges.txt, through Microsoft.ML.Tokenizers'
/// <see cref="BpeTokenizer"/>. The pre-tokenizer splits only at line ends: spaces stay tokens the model sees (the
/// library's default word splitter drops them), and merging stays linear in the length of a long file.
/// </summary>
public sealed partial class BpeTextTokenizer : ITextTokenizer
{
    [System.Text.RegularExpressions.GeneratedRegex(@"[^\n]+\n?|\n")]
    private static partial System.Text.RegularExpressions.Regex Lines();

    private readonly BpeTokenizer _bpe;

    /// <summary>Loads a Hugging Face style <paramref name="vocabPath"/> (vocab.json) and <paramref name="mergesPath"/> (merges.txt).</summary>
    public BpeTextTokenizer(string vocabPath, string mergesPath)
    {
        foreach (var path in new[] { vocabPath, mergesPath })
            if (!File.Exists(path)) throw new FileNotFoundException($"BPE file '{path}' does not exist.");
        try
        {
            _bpe = BpeTokenizer.Create(new BpeOptions(vocabPath, mergesPath) { PreTokenizer = new RegexPreTokenizer(Lines(), null) });
        }
        catch (Exception ex) when (ex is not IOException)
        {
            throw new InvalidDataException($"BPE vocabulary '{vocabPath}' with merges '{mergesPath}' could not be read: {ex.Message}", ex);
        }
        VocabSize = _bpe.Vocabulary.Values.Max() + 1;
    }

    /// <inheritdoc/>
    public int VocabSize { get; }

    /// <inheritdoc/>
    public int[] Encode(string text) => _bpe.EncodeToIds(text).ToArray();

    /// <inheritdoc/>
    public string Decode(ReadOnlySpan<int> ids) => _bpe.Decode(ids.ToArray()) ?? "";
}
