using System.Runtime.ExceptionServices;
using System.Text;
using MoeSharp.Classic.Experts;

namespace MoeSharp.Classic.Models;

/// <summary>How a mixture treats experts that fail at inference.</summary>
public sealed record FaultPolicy
{
    /// <summary>The default: no time budget, row isolation on.</summary>
    public static FaultPolicy Default { get; } = new();

    /// <summary>
    /// The longest one call to one expert may take. Null: no limit, and calls run inline. With a budget each call
    /// runs on its own background thread; a call that overruns is abandoned (.NET cannot stop a thread, so it runs
    /// on, writing only into its own buffer) and the expert is excluded for every row of that call.
    /// </summary>
    public TimeSpan? CallBudget { get; init; }

    /// <summary>After a call throws, call the expert again row by row, so that only the rows that make it throw are excluded.</summary>
    public bool IsolateRows { get; init; } = true;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first field out of range.</summary>
    public void Validate()
    {
        if (CallBudget is { } b && b <= TimeSpan.Zero) throw new ArgumentException($"FaultPolicy.CallBudget: must be positive, got {b}.", nameof(CallBudget));
    }
}

/// <summary>How an expert failed during a prediction.</summary>
public enum FaultKind
{
    /// <summary>The expert threw.</summary>
    Exception,

    /// <summary>The expert returned NaN or ±∞ in a row.</summary>
    NonFinite,

    /// <summary>The call ran past <see cref="FaultPolicy.CallBudget"/>.</summary>
    Timeout,
}

/// <summary>One failure: which expert, what went wrong, and for how many rows it was excluded.</summary>
public sealed record FaultEvent(int Expert, string ExpertKind, FaultKind Kind, int Rows, string Message);

/// <summary>
/// The failures of one prediction call, counted per expert and kind. An expert that fails is left out for the
/// rows it failed on, and the remaining gate weights of those rows are renormalised.
/// </summary>
public sealed class FaultReport
{
    private readonly List<FaultEvent> _events = [];

    /// <summary>An empty report for a mixture of <paramref name="experts"/> experts.</summary>
    public FaultReport(int experts)
    {
        Exceptions = new int[experts];
        NonFiniteRows = new int[experts];
        Timeouts = new int[experts];
        ExcludedRows = new int[experts];
    }

    /// <summary>Every failure, in the order it happened.</summary>
    public IReadOnlyList<FaultEvent> Events => _events;

    /// <summary>[E] calls that threw (a call retried row by row counts once per failing row).</summary>
    public int[] Exceptions { get; }

    /// <summary>[E] rows with a non-finite output.</summary>
    public int[] NonFiniteRows { get; }

    /// <summary>[E] calls that overran the budget.</summary>
    public int[] Timeouts { get; }

    /// <summary>[E] rows for which each expert was left out.</summary>
    public int[] ExcludedRows { get; }

    /// <summary>Whether any expert failed.</summary>
    public bool Any => _events.Count > 0;

    internal void Add(FaultEvent e)
    {
        _events.Add(e);
        ExcludedRows[e.Expert] += e.Rows;
        switch (e.Kind)
        {
            case FaultKind.Exception: Exceptions[e.Expert]++; break;
            case FaultKind.NonFinite: NonFiniteRows[e.Expert] += e.Rows; break;
            default: Timeouts[e.Expert]++; break;
        }
    }

    /// <summary>Adds another report's events, its experts numbered from <paramref name="offset"/> (a group of a hierarchical mixture).</summary>
    internal void AddFrom(FaultReport other, int offset)
    {
        foreach (var e in other.Events) Add(e with { Expert = e.Expert + offset });
    }

    /// <summary>One line per expert that failed, e.g. "expert 2 (tree): 1 exception, 0 non-finite rows, 0 timeouts; excluded for 3 rows".</summary>
    public override string ToString()
    {
        if (!Any) return "no expert failed";
        var sb = new StringBuilder();
        for (int e = 0; e < ExcludedRows.Length; e++)
        {
            if (ExcludedRows[e] == 0) continue;
            string kind = _events.First(v => v.Expert == e).ExpertKind;
            sb.AppendLine($"expert {e} ({kind}): {Exceptions[e]} exception(s), {NonFiniteRows[e]} non-finite row(s), {Timeouts[e]} timeout(s); excluded for {ExcludedRows[e]} row(s)");
        }
        return sb.ToString().TrimEnd();
    }
}

/// <summary>Thrown when, for some row, every expert the gate selected failed: there is no answer to give.</summary>
public sealed class ExpertFailureException(string message, int[] rows, FaultReport report) : Exception(message)
{
    /// <summary>The rows that got no answer.</summary>
    public int[] Rows { get; } = rows;

    /// <summary>What failed, per expert and kind.</summary>
    public FaultReport Report { get; } = report;
}

/// <summary>Calls experts under a <see cref="FaultPolicy"/>, turning each failure into excluded (row, expert) pairs.</summary>
internal static class FaultyCalls
{
    /// <summary>
    /// Runs expert <paramref name="e"/> on rows xs [R,D] and returns its outputs [R,O]; rows it failed on get a reason
    /// in <paramref name="failures"/> [R] (null where it succeeded), and each failure is added to <paramref name="report"/>.
    /// </summary>
    public static float[] Run(IExpert expert, int e, float[] xs, int rows, FaultPolicy policy, FaultReport report, string?[] failures)
    {
        int d = expert.Inputs, o = expert.Outputs;
        var output = new float[rows * o];
        try
        {
            Call(expert, xs, output, policy.CallBudget);
        }
        catch (TimeoutException ex)
        {
            Fail(report, expert, e, FaultKind.Timeout, failures, 0, rows, ex.Message);
            return output;
        }
        catch (Exception) when (policy.IsolateRows && rows > 1)
        {
            // One bad row should not cost the expert every other row: retry each row on its own.
            var one = new float[o];
            for (int r = 0; r < rows; r++)
            {
                try
                {
                    Call(expert, xs.AsSpan(r * d, d).ToArray(), one, policy.CallBudget);
                    one.CopyTo(output, r * o);
                }
                catch (TimeoutException tex)
                {
                    Fail(report, expert, e, FaultKind.Timeout, failures, r, 1, tex.Message);
                }
                catch (Exception rex)
                {
                    Fail(report, expert, e, FaultKind.Exception, failures, r, 1, $"threw {rex.GetType().Name}: {rex.Message}");
                }
            }
        }
        catch (Exception ex)
        {
            Fail(report, expert, e, FaultKind.Exception, failures, 0, rows, $"threw {ex.GetType().Name}: {ex.Message}");
            return output;
        }
        int bad = 0;
        string? first = null;
        for (int r = 0; r < rows; r++)
        {
            if (failures[r] is not null || TensorPrimitives.IsFiniteAll(output.AsSpan(r * o, o))) continue;
            failures[r] = "returned a non-finite output";
            first ??= $"returned a non-finite output (first at call row {r})";
            bad++;
        }
        if (bad > 0) report.Add(new FaultEvent(e, expert.Kind, FaultKind.NonFinite, bad, first!));
        return output;
    }

    private static void Fail(FaultReport report, IExpert expert, int e, FaultKind kind, string?[] failures, int start, int count, string message)
    {
        for (int r = start; r < start + count; r++) failures[r] = message;
        report.Add(new FaultEvent(e, expert.Kind, kind, count, message));
    }

    private static void Call(IExpert expert, float[] xs, float[] output, TimeSpan? budget)
    {
        if (budget is not { } limit)
        {
            expert.Predict(xs, output);
            return;
        }
        // The worker writes into a buffer of its own, so an abandoned call cannot touch the caller's result.
        var buffer = new float[output.Length];
        Exception? error = null;
        var worker = new Thread(() =>
        {
            try { expert.Predict(xs, buffer); }
            catch (Exception ex) { error = ex; }
        }) { IsBackground = true, Name = $"expert {expert.Kind}" };
        worker.Start();
        if (!worker.Join(limit)) throw new TimeoutException($"timed out after {limit.TotalMilliseconds:0.#} ms");
        if (error is not null) ExceptionDispatchInfo.Throw(error);
        buffer.CopyTo(output, 0);
    }
}
