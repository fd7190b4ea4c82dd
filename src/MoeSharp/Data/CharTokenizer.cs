namespace MoeSharp.Data;

/// <summary>One token per distinct character, ids assigned in ordinal order of the characters.</summary>
public sealed class CharTokenizer : ITextTokenizer
{
    private readonly Dictionary<char, int> _ids;

    /// <summary>A tokenizer over the distinct characters of <paramref name="alphabet"/>; id i is the i-th in ordinal order.</summary>
    public CharTokenizer(IEnumerable<char> alphabet)
    {
        Alphabet = alphabet.Distinct().Order().ToArray();
        if (Alphabet.Length == 0) throw new ArgumentException("A character tokenizer needs at least one character.", nameof(alphabet));
        _ids = Alphabet.Select((c, i) => (c, i)).ToDictionary(p => p.c, p => p.i);
    }

    /// <summary>The vocabulary of every character that occurs in <paramref name="text"/>.</summary>
    public static CharTokenizer FromText(string text) => new(text);

    /// <summary>The characters, sorted by ordinal; a character's index is its token id.</summary>
    public char[] Alphabet { get; }
    /// <inheritdoc/>
    public int VocabSize => Alphabet.Length;

    /// <inheritdoc/>
    public int[] Encode(string text)
    {
        var ids = new int[text.Length];
        for (int i = 0; i < text.Length; i++)
            ids[i] = _ids.TryGetValue(text[i], out int id) ? id
                : throw new ArgumentException($"Character {Describe(text[i])} at position {i} is not in the vocabulary of {VocabSize} characters.", nameof(text));
        return ids;
    }

    /// <inheritdoc/>
    public string Decode(ReadOnlySpan<int> ids)
    {
        var chars = new char[ids.Length];
        for (int i = 0; i < ids.Length; i++)
            chars[i] = (uint)ids[i] < (uint)Alphabet.Length ? Alphabet[ids[i]]
                : throw new ArgumentOutOfRangeException(nameof(ids), $"Token id {ids[i]} is outside the vocabulary [0, {VocabSize}).");
        return new string(chars);
    }

    private static string Describe(char c) => char.IsControl(c) || char.IsWhiteSpace(c) ? $"U+{(int)c:X4}" : $"'{c}' (U+{(int)c:X4})";
}
