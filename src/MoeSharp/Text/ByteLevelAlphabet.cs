namespace MoeSharp.Text;

/// <summary>
/// GPT-2's reversible map from bytes to printable characters, which byte-level BPE vocabularies are written in:
/// printable Latin-1 bytes stand for themselves, the other 68 bytes for U+0100 upwards (space is 'Ġ').
/// </summary>
internal static class ByteLevelAlphabet
{
    // [256] the character each byte is written as
    private static readonly char[] ByteToChar = Build();

    /// <summary>The vocabulary spelling of <paramref name="text"/>'s UTF-8 bytes.</summary>
    public static string Spell(string text)
    {
        byte[] bytes = System.Text.Encoding.UTF8.GetBytes(text);
        var chars = new char[bytes.Length];
        for (int i = 0; i < bytes.Length; i++) chars[i] = ByteToChar[bytes[i]];
        return new string(chars);
    }

    private static char[] Build()
    {
        var map = new char[256];
        int next = 256;
        for (int b = 0; b < 256; b++)
        {
            bool printable = b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;
            map[b] = printable ? (char)b : (char)next++;
        }
        return map;
    }
}
