using System.Diagnostics;
using MoeSharp.Classic.Data;
using MoeSharp.Classic.Experts;
using MoeSharp.Classic.Models;

namespace MoeSharp.Classic.Tests.Models;

/// <summary>
/// Three constant regression experts (1, 2, 4) under a uniform gate, so every expected output is a renormalised
/// average that can be written down: all three answer → 7/3; without expert 2 → 1.5.
/// </summary>
public class FaultToleranceTests
{
    private static readonly float[] X = [-2, -1, 0, 1, 2];

    private static MixtureOfExperts Mixture(IExpert third, int topK = 0) =>
        new(new MixtureOptions { Task = TabularTask.Regression, Inputs = 1, Gate = new GateOptions { TopK = topK } },
            [new ScriptedExpert(1, 1, TabularTask.Regression, value: 1), new ScriptedExpert(1, 1, TabularTask.Regression, value: 2), third]);

    [Fact]
    public void ExpertsThatAnswerGiveTheGateWeightedAverage()
    {
        var p = Mixture(new ScriptedExpert(1, 1, TabularTask.Regression, value: 4)).Predict(X);
        Numerics.Close(Enumerable.Repeat(7f / 3, 5).ToArray(), p.Output, 1e-6f, 0, "output");
        Assert.False(p.Faults.Any);
    }

    [Fact]
    public void AThrowingExpertIsExcludedAndTheRestRenormalised()
    {
        var p = Mixture(new ScriptedExpert(1, 1, TabularTask.Regression, value: 4, throwsOn: _ => true)).Predict(X);
        Numerics.Close(Enumerable.Repeat(1.5f, 5).ToArray(), p.Output, 1e-6f, 0, "output");
        for (int r = 0; r < 5; r++) Numerics.Close([0.5f, 0.5f, 0f], p.Gates.AsSpan(r * 3, 3), 1e-6f, 0, $"gates of row {r}");
        Assert.Equal(5, p.Faults.ExcludedRows[2]);
        Assert.True(p.Faults.Exceptions[2] >= 1);
        Assert.Equal(0, p.Faults.ExcludedRows[0] + p.Faults.ExcludedRows[1]);
        Assert.Contains("expert 2 (scripted)", p.Faults.ToString());
        Assert.Contains("cannot handle", p.Faults.Events[0].Message);
    }

    [Fact]
    public void AnExpertThatThrowsOnOneRowIsExcludedOnlyThere()
    {
        var p = Mixture(new ScriptedExpert(1, 1, TabularTask.Regression, value: 4, throwsOn: x => x == 1)).Predict(X);
        Numerics.Close([7f / 3, 7f / 3, 7f / 3, 1.5f, 7f / 3], p.Output, 1e-6f, 0, "output");
        Assert.Equal(1, p.Faults.ExcludedRows[2]);
        Assert.Equal(1, p.Faults.Exceptions[2]);
    }

    [Fact]
    public void ANonFiniteOutputIsExcludedForThatRow()
    {
        var p = Mixture(new ScriptedExpert(1, 1, TabularTask.Regression, value: 4, nanRow: 2)).Predict(X);
        Numerics.Close([7f / 3, 7f / 3, 1.5f, 7f / 3, 7f / 3], p.Output, 1e-6f, 0, "output");
        Assert.Equal(1, p.Faults.NonFiniteRows[2]);
        Assert.Equal(FaultKind.NonFinite, p.Faults.Events.Single().Kind);
    }

    [Fact]
    public void AnExpertOverItsTimeBudgetIsExcluded()
    {
        // A 300 ms budget leaves the fast experts a wide margin on a loaded 2-core CI machine.
        var slow = new ScriptedExpert(1, 1, TabularTask.Regression, value: 4, sleepMs: 4000);
        var clock = Stopwatch.StartNew();
        var p = Mixture(slow).Predict(X, new FaultPolicy { CallBudget = TimeSpan.FromMilliseconds(300) });
        Assert.True(clock.Elapsed.TotalSeconds < 3, $"the call took {clock.Elapsed.TotalSeconds:F2} s despite a 0.3 s budget");
        Numerics.Close(Enumerable.Repeat(1.5f, 5).ToArray(), p.Output, 1e-6f, 0, "output");
        Assert.Equal(1, p.Faults.Timeouts[2]);
        Assert.Equal(5, p.Faults.ExcludedRows[2]);
        Assert.Contains("timed out after 300 ms", p.Faults.Events.Single().Message);
    }

    [Fact]
    public void WhenEverySelectedExpertFailsTheCallFailsNamingRowAndReasons()
    {
        // Top-1 with a uniform gate picks expert 0 for every row; it throws on x ≥ 1 and nothing else is selected.
        var model = new MixtureOfExperts(new MixtureOptions { Task = TabularTask.Regression, Inputs = 1, Gate = new GateOptions { TopK = 1 } },
            [new ScriptedExpert(1, 1, TabularTask.Regression, throwsOn: x => x >= 1), new ScriptedExpert(1, 1, TabularTask.Regression, value: 2)]);
        var ex = Assert.Throws<ExpertFailureException>(() => model.Predict(X));
        Assert.Equal([3, 4], ex.Rows);
        Assert.Contains("Row 3: every selected expert failed", ex.Message);
        Assert.Contains("expert 0 (scripted) threw InvalidOperationException: cannot handle x = 1", ex.Message);
        Assert.Equal(2, ex.Report.ExcludedRows[0]);
        // The same rows succeed once k lets the second expert in.
        model.TopK = 2;
        Numerics.Close([1.5f, 1.5f, 1.5f, 2f, 2f], model.Predict(X).Output, 1e-6f, 0, "k = 2");
    }

    [Fact]
    public void AllExpertsFailingDenselyIsAnError()
    {
        var bad = new ScriptedExpert(1, 1, TabularTask.Regression, throwsOn: _ => true);
        var model = new MixtureOfExperts(new MixtureOptions { Task = TabularTask.Regression, Inputs = 1 }, [bad, new ScriptedExpert(1, 1, TabularTask.Regression, nanRow: 0, value: float.NaN)]);
        var ex = Assert.Throws<ExpertFailureException>(() => model.Predict(X));
        Assert.Equal(5, ex.Rows.Length);
        Assert.Contains("non-finite", ex.Message);
    }

    [Fact]
    public void TopKCallsOnlyTheSelectedExperts()
    {
        var unused = new ScriptedExpert(1, 1, TabularTask.Regression, value: 4);
        var model = Mixture(unused, topK: 1);
        model.Predict(X);
        Assert.Equal(0, unused.Calls); // ties go to the lower index, so the uniform gate's top-1 is expert 0
    }
}
