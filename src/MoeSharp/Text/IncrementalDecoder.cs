namespace MoeSharp.Text;

/// <summary>
/// Turns token ids into text as they are generated, for streaming. A byte-level or byte-fallback token can end in
/// the middle of a UTF-8 character; its text then ends in U+FFFD and is held back until a later token completes
/// the character. Each new piece is decoded together with the tokens just before it (from a prefix offset, as Hugging
/// Face's text streamers do), so the spaces a SentencePiece decoder strips at the start of a text stay in place.
/// </summary>
public sealed class IncrementalDecoder
{
    private readonly HfTokenizer _tokenizer;
    private readonly bool _skipSpecialTokens;
    private readonly List<int> _ids = [];
    private int _prefix; // first id of the context window decoded with new ids
    private int _read;   // ids before this one have been emitted

    /// <summary>Decodes with <paramref name="tokenizer"/>; <paramref name="skipSpecialTokens"/> drops special tokens from the text.</summary>
    public IncrementalDecoder(HfTokenizer tokenizer, bool skipSpecialTokens = true)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        _tokenizer = tokenizer;
        _skipSpecialTokens = skipSpecialTokens;
    }

    /// <summary>The ids pushed so far.</summary>
    public IReadOnlyList<int> Ids => _ids;

    /// <summary>Adds <paramref name="id"/> and returns the text it completes: empty while a character is still incomplete.</summary>
    public string Push(int id)
    {
        _ids.Add(id);
        string before = Decode(_prefix, _read);
        string now = Decode(_prefix, _ids.Count);
        if (now.Length <= before.Length || now[^1] == '\uFFFD' || !now.StartsWith(before, StringComparison.Ordinal)) return "";
        _prefix = _read;
        _read = _ids.Count;
        return now[before.Length..];
    }

    /// <summary>The text still held back (an incomplete character at the end, as U+FFFD), when no more ids come.</summary>
    public string Flush()
    {
        string before = Decode(_prefix, _read);
        string now = Decode(_prefix, _ids.Count);
        _prefix = _read = _ids.Count;
        return now.Length > before.Length && now.StartsWith(before, StringComparison.Ordinal) ? now[before.Length..] : "";
    }

    /// <summary>Forgets every id, to start a new text.</summary>
    public void Clear()
    {
        _ids.Clear();
        _prefix = _read = 0;
    }

    private string Decode(int start, int end) =>
        end <= start ? "" : _tokenizer.Decode(_ids.GetRange(start, end - start), _skipSpecialTokens);
}
