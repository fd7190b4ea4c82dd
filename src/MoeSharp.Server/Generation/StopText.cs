using System.Text;

namespace MoeSharp.Server.Generation;

/// <summary>
/// Releases streamed text up to the first stop string, which is never shown. Text that could still grow into a stop
/// string is held back until the next piece settles it, so no client ever sees the start of a stop string.
/// </summary>
internal sealed class StopText
{
    private readonly IReadOnlyList<string> _stops;
    private readonly StringBuilder _pending = new();

    public StopText(IReadOnlyList<string> stops)
    {
        foreach (string s in stops)
            if (string.IsNullOrEmpty(s)) throw new ArgumentException("a stop sequence is empty; every stop sequence needs at least one character.", nameof(stops));
        _stops = stops;
    }

    /// <summary>A stop string was found; nothing more is released.</summary>
    public bool Stopped { get; private set; }

    /// <summary>Adds <paramref name="text"/> and returns what can be shown now.</summary>
    public string Push(string text)
    {
        if (Stopped) return "";
        _pending.Append(text);
        string all = _pending.ToString();
        int at = FirstStop(all);
        if (at >= 0)
        {
            Stopped = true;
            _pending.Clear();
            return all[..at];
        }
        int hold = 0;
        foreach (string s in _stops)
            for (int n = Math.Min(s.Length - 1, all.Length); n > hold; n--)
                if (all.AsSpan(all.Length - n).SequenceEqual(s.AsSpan(0, n)))
                {
                    hold = n;
                    break;
                }
        _pending.Remove(0, all.Length - hold);
        return all[..^hold];
    }

    /// <summary>The text still held back, when no more comes.</summary>
    public string Flush()
    {
        if (Stopped) return "";
        string rest = _pending.ToString();
        _pending.Clear();
        return rest;
    }

    private int FirstStop(string text)
    {
        int at = -1;
        foreach (string s in _stops)
        {
            int i = text.IndexOf(s, StringComparison.Ordinal);
            if (i >= 0 && (at < 0 || i < at)) at = i;
        }
        return at;
    }
}
