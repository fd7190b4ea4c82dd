using MoeSharp.Server.Generation;

namespace MoeSharp.Server.Tests.Generation;

/// <summary><see cref="StopText"/> on hand-made pieces; every expected string is worked out by hand (exact).</summary>
public sealed class StopTextTests
{
    private static (string Shown, bool Stopped) Run(string[] stops, params string[] pieces)
    {
        var s = new StopText(stops);
        var shown = new System.Text.StringBuilder();
        foreach (string p in pieces) shown.Append(s.Push(p));
        shown.Append(s.Flush());
        return (shown.ToString(), s.Stopped);
    }

    [Fact]
    public void AStopSplitAcrossPiecesIsCutAndNeverShown()
    {
        var s = new StopText(["o w"]);
        Assert.Equal("Hel", s.Push("Hel"));
        Assert.Equal("l", s.Push("lo"));     // "o" could begin "o w": held
        Assert.Equal("", s.Push(" "));       // "o " still could
        Assert.Equal("", s.Push("world"));   // "o w" found: everything from it is dropped
        Assert.True(s.Stopped);
        Assert.Equal("", s.Push("more"));
        Assert.Equal("", s.Flush());
    }

    [Fact]
    public void HeldTextThatTurnsOutNotToBeAStopIsReleased()
    {
        Assert.Equal(("xabd", false), Run(["abc"], "xa", "bd"));
        Assert.Equal(("ab", false), Run(["abc"], "ab"));
        Assert.Equal(("a", true), Run(["abc", "b"], "ab"));
    }

    [Fact]
    public void TheEarliestOfSeveralStopsWins()
    {
        Assert.Equal(("one ", true), Run(["three", "two"], "one two three"));
    }

    [Fact]
    public void AnEmptyStopIsRefused()
    {
        Assert.Throws<ArgumentException>(() => new StopText(["ok", ""]));
    }
}
