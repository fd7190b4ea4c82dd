using System.Buffers;
using System.Text;
using System.Text.Unicode;

namespace MoeSharp.Data;

/// <summary>Where a run's text came from, so evaluation and resume rebuild exactly the same data.</summary>
public sealed record DataSource
{
    /// <summary>"builtin" (the generated multi-domain corpus) or "file".</summary>
    public string Kind { get; init; } = "builtin";

    /// <summary>The text file, when <see cref="Kind"/> is "file".</summary>
    public string? Path { get; init; }

    /// <summary>With <see cref="BpeMerges"/>: tokenize a file with this BPE vocab.json instead of per character.</summary>
    public string? BpeVocab { get; init; }

    /// <summary>With <see cref="BpeVocab"/>: the BPE merges.txt.</summary>
    public string? BpeMerges { get; init; }

    /// <summary>
    /// Lower-case hex SHA-256, when the run started, of the data file followed by the BPE vocab and merges files if
    /// given (<see cref="LmData.Hash"/>), so that a resume can tell that any of them changed.
    /// </summary>
    public string? Sha256 { get; init; }

    /// <summary>Seed of the built-in corpus generator; the same seed gives the same text.</summary>
    public ulong CorpusSeed { get; init; } = 1;
    /// <summary>Number of one-line samples the built-in corpus generates, spread evenly over the domains.</summary>
    public int CorpusSamples { get; init; } = 20000;
}

/// <summary>
/// The tokenizer and train/validation streams of a run. The built-in corpus splits by whole samples and keeps
/// the validation split's per-character domains; a text file splits 90/10 by position.
/// </summary>
public sealed record LmData(ITextTokenizer Tokenizer, TextDataset Dataset, MultiDomainCorpus? Validation)
{
    /// <summary>Builds the data; <paramref name="alphabet"/> pins the tokenizer to a saved vocabulary.</summary>
    public static LmData Load(DataSource source, string? alphabet = null)
    {
        if (source.Kind == "builtin")
        {
            var corpus = MultiDomainCorpus.Generate(source.CorpusSeed, source.CorpusSamples);
            var (train, validation) = corpus.Split();
            var tok = new CharTokenizer(alphabet ?? MultiDomainCorpus.Alphabet);
            return new LmData(tok, new TextDataset(tok.Encode(train.Text), tok.Encode(validation.Text)), validation);
        }
        if (source.Kind != "file") throw new InvalidDataException($"Unknown data source kind '{source.Kind}'; expected 'builtin' or 'file'.");
        string path = source.Path ?? throw new InvalidDataException("A file data source needs a path.");
        string text = ReadText(path);
        ITextTokenizer tokenizer = TokenizerFor(source, alphabet) ?? CharTokenizer.FromText(text);
        int[] ids;
        try
        {
            ids = tokenizer.Encode(text);
        }
        catch (ArgumentException ex)
        {
            throw new InvalidDataException($"Data file '{path}': {ex.Message}", ex);
        }
        if (ids.Length < 100) throw new InvalidDataException($"Data file '{path}' has only {ids.Length} tokens; at least 100 are needed for a train/validation split.");
        return new LmData(tokenizer, new TextDataset(ids), null);
    }

    /// <summary>
    /// The file's text. A language model learns whatever bytes it is given, so a binary file (an executable, a
    /// checkpoint) or text in another encoding would train without complaint on garbage; both are refused. A few
    /// invalid sequences (a stray byte in scraped text) are tolerated and read as U+FFFD.
    /// </summary>
    public static string ReadText(string path)
    {
        if (Directory.Exists(path)) throw new InvalidDataException($"Data file '{path}' is a directory; expected a UTF-8 text file.");
        if (!File.Exists(path)) throw new FileNotFoundException($"Data file '{path}' does not exist.");
        byte[] bytes = File.ReadAllBytes(path);
        if (bytes.Length == 0) throw new InvalidDataException($"Data file '{path}' is empty.");
        int nul = Array.IndexOf(bytes, (byte)0);
        if (nul >= 0) throw new InvalidDataException($"Data file '{path}' is not text: it holds a NUL byte at offset {nul}; expected a UTF-8 text file.");
        var utf8 = bytes.AsSpan(bytes.AsSpan().StartsWith(Bom) ? Bom.Length : 0);
        if (!Utf8.IsValid(utf8))
        {
            int invalid = 0, first = -1, characters = 0;
            for (int i = 0; i < utf8.Length; characters++)
            {
                if (Rune.DecodeFromUtf8(utf8[i..], out _, out int used) != OperationStatus.Done)
                {
                    invalid++;
                    if (first < 0) first = i;
                }
                i += used;
            }
            if (invalid > characters / MaxInvalidShare)
                throw new InvalidDataException($"Data file '{path}' is not UTF-8 text: {invalid} of its {characters} characters are invalid UTF-8 (the first at byte offset {first + bytes.Length - utf8.Length}); convert it to UTF-8.");
        }
        return Encoding.UTF8.GetString(utf8);
    }

    private static ReadOnlySpan<byte> Bom => [0xEF, 0xBB, 0xBF];

    /// <summary>Up to one character in this many may be an invalid UTF-8 sequence before a file counts as not text.</summary>
    private const int MaxInvalidShare = 100;

    /// <summary>
    /// The lower-case hex SHA-256 of a file source's bytes: the data file, then the BPE vocab and merges files when
    /// the source names them. Null for the built-in corpus, which its seed fixes.
    /// </summary>
    public static string? Hash(DataSource source)
    {
        if (source.Kind != "file" || source.Path is null) return null;
        using var hash = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
        var buffer = new byte[1 << 16];
        foreach (string? path in new[] { source.Path, source.BpeVocab, source.BpeMerges })
        {
            if (path is null) continue;
            using var stream = File.OpenRead(path);
            for (int read; (read = stream.Read(buffer)) > 0;) hash.AppendData(buffer, 0, read);
        }
        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    /// <summary>
    /// Throws if a file source no longer has the hash recorded when its run started: a resumed run would otherwise
    /// draw different batches (or tokens) from the same positions without any sign of it.
    /// </summary>
    public static void CheckUnchanged(DataSource source)
    {
        if (source.Kind != "file" || source.Sha256 is null || source.Path is null) return;
        foreach (string? path in new[] { source.Path, source.BpeVocab, source.BpeMerges })
            if (path is not null && !File.Exists(path)) throw new FileNotFoundException($"Data file '{path}' of the run no longer exists.", path);
        string now = Hash(source)!;
        if (now != source.Sha256)
        {
            string files = source.BpeVocab is null ? $"Data file '{source.Path}'" : $"Data file '{source.Path}' or its BPE vocab or merges";
            throw new InvalidDataException($"{files} changed since the run started (SHA-256 {source.Sha256[..12]}…, now {now[..12]}…); resuming would train on different batches. Restore the file, or start a new run.");
        }
    }

    /// <summary>The tokenizer a source pins (BPE files, or a saved alphabet), or null to learn the alphabet from the text.</summary>
    public static ITextTokenizer? TokenizerFor(DataSource source, string? alphabet)
    {
        if (source.BpeVocab is not null || source.BpeMerges is not null)
        {
            if (source.BpeVocab is null || source.BpeMerges is null)
                throw new ArgumentException("BPE needs both a vocab.json (--bpe-vocab) and a merges.txt (--bpe-merges).");
            return new BpeTextTokenizer(source.BpeVocab, source.BpeMerges);
        }
        return string.IsNullOrEmpty(alphabet) ? null : new CharTokenizer(alphabet);
    }
}
