using MoeSharp.Retrieval.Gating;

namespace MoeSharp.Retrieval.Tests.Gating;

public sealed class RetrievalGateTests
{
    /// <summary>
    /// Central finite differences (ε = 1e-2 on float32 weights; the loss is evaluated in double) against the analytic
    /// gradient of both training losses through the whole gate. Tolerance: |analytic − numeric| ≤ 2e-3 + 2e-2·|numeric|.
    /// </summary>
    [Fact]
    public void BackwardMatchesFiniteDifferencesForBothLosses()
    {
        var rng = new Random(7);
        var gate = new RetrievalGate(6, 5, 3, 11);
        var x = Enumerable.Range(0, 6).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        float[] target = [0.2f, 0.5f, 0.3f];
        var results = new[]
        {
            new ExpertResult([new(0, 0.9f), new(1, 0.5f), new(2, 0.1f)], new float[4]),
            new ExpertResult([new(2, 12f), new(3, 6f)], new float[4]),
            new ExpertResult([new(1, 0.4f), new(3, 0.3f)], new float[4]),
        };
        var relevant = new HashSet<int> { 1, 3 };
        Func<float[], double>[] losses =
        [
            w => HybridRetriever.CrossEntropy(w, target, new float[3]),
            w => HybridRetriever.Listwise(results, w, relevant, 10f, new float[3]),
        ];
        Action<float[], float[]>[] grads =
        [
            (w, d) => HybridRetriever.CrossEntropy(w, target, d),
            (w, d) => HybridRetriever.Listwise(results, w, relevant, 10f, d),
        ];
        for (int l = 0; l < losses.Length; l++)
        {
            Array.Clear(gate.Gradients);
            var act = new RetrievalGate.Activations(6, 5, 3);
            var w = gate.Forward(x, act);
            var d = new float[3];
            grads[l](w, d);
            gate.Backward(act, d);
            for (int i = 0; i < gate.Parameters.Length; i++)
            {
                float keep = gate.Parameters[i];
                gate.Parameters[i] = keep + 1e-2f;
                double plus = losses[l](gate.Forward(x));
                gate.Parameters[i] = keep - 1e-2f;
                double minus = losses[l](gate.Forward(x));
                gate.Parameters[i] = keep;
                double numeric = (plus - minus) / 2e-2;
                Assert.True(Math.Abs(gate.Gradients[i] - numeric) <= 2e-3 + 2e-2 * Math.Abs(numeric),
                    $"loss {l}, parameter {i}: analytic {gate.Gradients[i]}, numeric {numeric}");
            }
        }
    }

    [Fact]
    public void GateRoundTripsThroughJsonAndRefusesInconsistentSizes()
    {
        var gate = new RetrievalGate(4, 3, 3, 5);
        gate.Standardize([[1, 2, 3, 4], [3, 2, 1, 0]]);
        var back = RetrievalGate.FromJson(gate.ToJson(), "t");
        float[] x = [0.5f, 1, -1, 2];
        Assert.Equal(gate.Forward(x), back.Forward(x));
        var bad = gate.ToJson().Replace("\"Hidden\":3", "\"Hidden\":4");
        Assert.Contains("inconsistent sizes", Assert.Throws<InvalidDataException>(() => RetrievalGate.FromJson(bad, "t")).Message);
    }
}
