using System.Diagnostics;

namespace MoeSharp.Autograd;

/// <summary>
/// Wall time per op kind. A forward op is charged the time since the previous recorded op (so module glue counts
/// towards the op that follows it); a backward op is charged its own backward. Call <see cref="Mark"/> before a
/// forward pass so the first op is not charged for what came before.
/// </summary>
internal sealed class OpProfile
{
    private readonly Dictionary<string, Entry> _entries = [];
    private long _last = Stopwatch.GetTimestamp();

    public void Mark() => _last = Stopwatch.GetTimestamp();

    internal void Forward(string op) => Charge(op, backward: false);

    internal void Backward(string op) => Charge(op, backward: true);

    private void Charge(string op, bool backward)
    {
        long now = Stopwatch.GetTimestamp();
        if (!_entries.TryGetValue(op, out var e)) _entries[op] = e = new Entry();
        double seconds = (now - _last) / (double)Stopwatch.Frequency;
        if (backward) e.Backward += seconds; else { e.Forward += seconds; e.Calls++; }
        _last = now;
    }

    /// <summary>(op, forward seconds, backward seconds, forward calls), slowest first.</summary>
    public IEnumerable<(string Op, double Forward, double Backward, int Calls)> Rows =>
        _entries.Select(kv => (kv.Key, kv.Value.Forward, kv.Value.Backward, kv.Value.Calls)).OrderByDescending(r => r.Item2 + r.Item3);

    private sealed class Entry
    {
        public double Forward, Backward;
        public int Calls;
    }
}
