using System.Buffers;
using System.Text;

namespace MoeSharp.Text;

/// <summary>
/// Unicode Normalization Form C written out by hand (UAX #15): canonical decomposition, canonical ordering by
/// combining class, then canonical composition without the composition exclusions, with Hangul done by arithmetic.
/// <c>string.Normalize</c> cannot serve: under <c>InvariantGlobalization</c> (this repository's setting, and many
/// apps') it returns non-ASCII text unchanged, and with ICU its result follows the host's ICU version. This one
/// gives the same result everywhere, from the Unicode <see cref="UnicodeVersion"/> tables in <see cref="NfcTables"/>.
/// </summary>
public static class Nfc
{
    // Hangul syllable arithmetic, UAX #15 / Unicode chapter 3.12.
    private const int SBase = 0xAC00, LBase = 0x1100, VBase = 0x1161, TBase = 0x11A7;
    private const int LCount = 19, VCount = 21, TCount = 28, NCount = VCount * TCount, SCount = LCount * NCount;

    /// <summary>The Unicode version whose data this normalizer carries.</summary>
    public const string UnicodeVersion = NfcTables.UnicodeVersion;

    /// <summary>The NFC form of <paramref name="text"/>; text already in NFC below U+0300 comes back as the same
    /// instance. Unpaired surrogates pass through unchanged.</summary>
    public static string Normalize(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        int first = 0;
        while (first < text.Length && text[first] < NfcTables.QuickCheckBelow) first++;
        if (first == text.Length) return text;
        // Everything before the first code point that might change is a starter that composes with nothing before
        // it, so only the last of them (which the mark after it may join) needs to go through the algorithm.
        int start = Math.Max(0, first - 1);
        int[] points = ArrayPool<int>.Shared.Rent((text.Length - start) * NfcTables.MaxDecompositionLength); // [N] code points
        int[] classes = ArrayPool<int>.Shared.Rent(points.Length);                                            // [N] their combining classes
        try
        {
            int n = Decompose(text, start, points);
            for (int i = 0; i < n; i++) classes[i] = CombiningClass(points[i]);
            Reorder(points, classes, n);
            n = Compose(points, classes, n);
            var sb = new StringBuilder(text.Length);
            sb.Append(text, 0, start);
            for (int i = 0; i < n; i++) AppendCodePoint(sb, points[i]);
            return sb.ToString();
        }
        finally
        {
            ArrayPool<int>.Shared.Return(classes);
            ArrayPool<int>.Shared.Return(points);
        }
    }

    /// <summary>The canonical combining class of <paramref name="codePoint"/> (0 for a starter).</summary>
    public static int CombiningClass(int codePoint)
    {
        if (codePoint < NfcTables.QuickCheckBelow) return 0;
        ReadOnlySpan<uint> table = NfcTables.CombiningClass;
        // No class is 0xFF, so the search never hits exactly: ~result is the first entry past codePoint's.
        int i = ~table.BinarySearch(((uint)codePoint << 8) | 0xFF) - 1;
        return i >= 0 && table[i] >> 8 == (uint)codePoint ? (int)(table[i] & 0xFF) : 0;
    }

    private static int Decompose(string text, int start, int[] points)
    {
        int n = 0;
        ReadOnlySpan<int> keys = NfcTables.DecompositionKeys;
        ReadOnlySpan<ushort> starts = NfcTables.DecompositionStarts;
        ReadOnlySpan<int> data = NfcTables.DecompositionData;
        for (int i = start; i < text.Length; i++)
        {
            int cp = text[i];
            if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                cp = char.ConvertToUtf32(text[i], text[i + 1]);
                i++;
            }
            int s = cp - SBase;
            if ((uint)s < SCount)
            {
                points[n++] = LBase + s / NCount;
                points[n++] = VBase + s % NCount / TCount;
                if (s % TCount != 0) points[n++] = TBase + s % TCount;
                continue;
            }
            int k = cp < keys[0] ? -1 : keys.BinarySearch(cp);
            if (k < 0)
            {
                points[n++] = cp;
                continue;
            }
            foreach (int d in data[starts[k]..starts[k + 1]]) points[n++] = d;
        }
        return n;
    }

    // Canonical ordering: each run of non-starters sorted by class, stably (an insertion sort; runs are short).
    private static void Reorder(int[] points, int[] classes, int n)
    {
        for (int i = 1; i < n; i++)
        {
            int c = classes[i];
            if (c == 0) continue;
            int cp = points[i], j = i;
            for (; j > 0 && classes[j - 1] > c; j--)
            {
                points[j] = points[j - 1];
                classes[j] = classes[j - 1];
            }
            points[j] = cp;
            classes[j] = c;
        }
    }

    // Canonical composition in place: each code point joins the last starter unless a code point between them
    // blocks it (one with class 0, or with a class not below its own).
    private static int Compose(int[] points, int[] classes, int n)
    {
        int starter = -1, lastClass = -1, w = 0; // lastClass: of the last code point kept after the starter; -1 when none
        for (int r = 0; r < n; r++)
        {
            int cp = points[r], c = classes[r];
            if (starter >= 0 && (lastClass == -1 || (lastClass != 0 && lastClass < c)))
            {
                int composite = Composite(points[starter], cp);
                if (composite >= 0)
                {
                    points[starter] = composite;
                    continue;
                }
            }
            if (c == 0)
            {
                starter = w;
                lastClass = -1;
            }
            else
            {
                lastClass = c;
            }
            points[w] = cp;
            classes[w] = c;
            w++;
        }
        return w;
    }

    private static int Composite(int first, int second)
    {
        int l = first - LBase, v = second - VBase;
        if ((uint)l < LCount && (uint)v < VCount) return SBase + (l * VCount + v) * TCount;
        int s = first - SBase, t = second - TBase;
        if ((uint)s < SCount && s % TCount == 0 && t > 0 && t < TCount) return first + t;
        ReadOnlySpan<ulong> pairs = NfcTables.CompositionPairs;
        int i = pairs.BinarySearch(((ulong)(uint)first << 21) | (uint)second);
        return i >= 0 ? NfcTables.Composites[i] : -1;
    }

    private static void AppendCodePoint(StringBuilder sb, int cp)
    {
        if (cp < 0x10000)
        {
            sb.Append((char)cp);
            return;
        }
        cp -= 0x10000;
        sb.Append((char)(0xD800 + (cp >> 10))).Append((char)(0xDC00 + (cp & 0x3FF)));
    }
}
