using System.Globalization;
using System.Text;

namespace MoeSharp.Retrieval;

/// <summary>
/// The one tokenizer behind keyword search and entity linking: lower-case runs of letters and digits. Both backends
/// index the text as these tokens joined by spaces, so SQLite's unicode61 tokenizer and PostgreSQL's 'simple'
/// parser see the same terms and BM25 agrees between them.
/// </summary>
public static class TextNormalizer
{
    /// <summary>The tokens of <paramref name="text"/>, in order.</summary>
    public static List<string> Tokens(string text)
    {
        var tokens = new List<string>();
        var current = new StringBuilder();
        foreach (char c in text)
        {
            if (char.IsLetterOrDigit(c)) current.Append(char.ToLowerInvariant(c));
            else Flush();
        }
        Flush();
        return tokens;

        void Flush()
        {
            if (current.Length == 0) return;
            tokens.Add(current.ToString());
            current.Clear();
        }
    }

    /// <summary>The tokens joined by single spaces: the form stored in the full-text index and in the names table.</summary>
    public static string Normalize(string text) => string.Join(' ', Tokens(text));

    /// <summary>Words too common to link to an entity or to count as lexical evidence.</summary>
    public static readonly HashSet<string> StopWords = new(StringComparer.Ordinal)
    {
        "a", "an", "the", "of", "in", "on", "to", "for", "and", "or", "is", "are", "was", "be", "by", "with", "as", "at",
        "that", "this", "which", "what", "who", "it", "its", "from", "some", "any", "one", "something", "someone", "used",
        "kind", "type", "part", "member", "made", "opposite", "substance",
    };

    internal static string Invariant(double v) => v.ToString("R", CultureInfo.InvariantCulture);
}
