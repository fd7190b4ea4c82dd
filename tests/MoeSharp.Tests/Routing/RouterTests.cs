using MoeSharp.Autograd;
using MoeSharp.Layers;
using MoeSharp.Nn;
using MoeSharp.Routing;
using MoeSharp.Tensors;

namespace MoeSharp.Tests.Routing;

/// <summary>
/// Every balancing term on hand-built routings with closed-form values. E = 4, D = 4, K = 1, gate W = c·I, so a
/// token x = e_t has logits c·e_t and probabilities a = e^c/(e^c + 3) on its own expert, b = 1/(e^c + 3) elsewhere.
/// </summary>
public class RouterTests
{
    private const float C = 2f;
    private static readonly double A = Math.Exp(C) / (Math.Exp(C) + 3), B = 1 / (Math.Exp(C) + 3);

    private static MoeLayer Layer(LoadBalanceNormalization norm = LoadBalanceNormalization.PerAssignment)
    {
        var arena = new ParameterArena();
        var layer = new MoeLayer(new MoeOptions { Dim = 4, Experts = 4, TopK = 1, ExpertHidden = 3, LoadBalanceNormalization = norm }, arena, "moe");
        arena.Build(1);
        var w = arena["moe.gate.weight"].Value.Span;
        w.Clear();
        for (int i = 0; i < 4; i++) w[i * 4 + i] = C;
        return layer;
    }

    /// <summary>Rows e_{expert[t]}.</summary>
    private static Tensor OneHot(params int[] expert)
    {
        var x = new Tensor(expert.Length, 4);
        for (int t = 0; t < expert.Length; t++) x[t * 4 + expert[t]] = 1;
        return x;
    }

    private static float Term(MoeResult r, string name) => r.AuxLosses[name][0];

    [Fact]
    public void PerfectlyBalancedRouting()
    {
        var r = Layer().Forward(new Tape(), OneHot(0, 1, 2, 3));
        Assert.Equal(1f, Term(r, "load_balance"), 6);            // E·Σ (1/4)(1/4)
        Assert.Equal(1f, Term(r, "sequence_balance"), 6);
        Assert.Equal(0f, Term(r, "importance"), 6);              // every expert gets weight a
        Assert.Equal(0f, Term(r, "load"), 6);                    // column sums a + 3b = 1
        double lse = Math.Log(Math.Exp(C) + 3);
        Assert.Equal(lse * lse, Term(r, "z_loss"), 1e-5);
        Assert.Equal([1, 1, 1, 1], r.Stats.TokensPerExpert);
        Assert.Equal(0f, r.Stats.LoadCv);
    }

    [Fact]
    public void FullyCollapsedRouting()
    {
        var r = Layer().Forward(new Tape(), OneHot(0, 0, 0, 0));
        Assert.Equal(4 * A, Term(r, "load_balance"), 5);         // f = (1,0,0,0), P₀ = a
        Assert.Equal(4 * A, Term(r, "sequence_balance"), 5);     // f₀ = E/(K·L)·4 = 4
        Assert.Equal(3f, Term(r, "importance"), 5);              // CV² of (4a,0,0,0)
        double var = (Math.Pow(4 * A - 1, 2) + 3 * Math.Pow(4 * B - 1, 2)) / 4; // column sums (4a,4b,4b,4b), mean 1
        Assert.Equal(var, Term(r, "load"), 5);
        Assert.Equal(Math.Sqrt(3), r.Stats.LoadCv, 5);           // (4,0,0,0): σ/μ = √3
    }

    [Fact]
    public void PerTokenNormalisationIsKTimesLarger()
    {
        // With K = 1 both normalisations agree; the documented difference is a factor K.
        var perToken = Layer(LoadBalanceNormalization.PerToken).Forward(new Tape(), OneHot(0, 1, 2, 3));
        Assert.Equal(1f, Term(perToken, "load_balance"), 6);
    }

    [Fact]
    public void MaskedTokensAreIgnored()
    {
        var x = OneHot(0, 1, 2, 3, 0, 0, 0, 0);
        var mask = new[] { true, true, true, true, false, false, false, false };
        var r = Layer().Forward(new Tape(), x, new RoutingContext { Mask = mask, Sequences = 2 });
        Assert.Equal(1f, Term(r, "load_balance"), 6);
        Assert.Equal(0f, Term(r, "importance"), 6);
        Assert.Equal(0f, Term(r, "load"), 6);
        Assert.Equal(4, r.Stats.Tokens);
        Assert.Equal([1, 1, 1, 1], r.Stats.TokensPerExpert);
        double lse = Math.Log(Math.Exp(C) + 3);
        Assert.Equal(lse * lse, Term(r, "z_loss"), 1e-5);
    }

    [Fact]
    public void WeightedAuxLossIsTheCoefficientSum()
    {
        var r = Layer().Forward(new Tape(), OneHot(0, 0, 1, 2));
        float expected = 0.01f * Term(r, "load_balance") + 0.001f * Term(r, "z_loss"); // the option defaults
        Assert.Equal(expected, r.AuxLoss![0], 6);
    }

    // ---- each router's gate weights on a hand-built token: logits (2, 1, 0, −1) ----

    private static (RouterOutput Out, float[] W) Route(MoeOptions o, Action<Span<float>, Span<float>>? setup = null, int tokens = 1)
    {
        var arena = new ParameterArena();
        var router = LinearRouter.Create(arena, "gate", o);
        arena.Build(0);
        if (arena.TryGet("gate.weight", out var gate))
        {
            var w = gate.Value.Span; // [E,D]: column 0 carries the logits for x = e₀
            w.Clear();
            float[] logits = [2, 1, 0, -1];
            for (int e = 0; e < 4; e++) w[e * o.Dim] = logits[e];
            setup?.Invoke(w, arena.Parameters.Count > 1 ? arena.Parameters[1].Value.Span : default);
        }
        var x = new Tensor(tokens, o.Dim);
        for (int t = 0; t < tokens; t++) x[t * o.Dim] = 1;
        var r = router.Route(new Tape(), x, new RoutingContext { TokenIds = Enumerable.Range(0, tokens).ToArray() });
        return (r, r.Weights.ToArray());
    }

    private static MoeOptions Four(RouterKind kind, int k) => new() { Dim = 3, Experts = 4, TopK = k, ExpertHidden = 2, Router = kind };

    private static readonly double Z = Math.Exp(2) + Math.Exp(1) + 1 + Math.Exp(-1);

    [Fact]
    public void SoftmaxTopKWeights()
    {
        var (r, w) = Route(Four(RouterKind.SoftmaxTopK, 2));
        Assert.Equal([0, 1], r.PairExpert);
        Assert.Equal(1 / (1 + Math.Exp(-1)), w[0], 6); // e²/(e² + e) = σ(1)
        Assert.Equal(1 - 1 / (1 + Math.Exp(-1)), w[1], 6);
        (_, w) = Route(Four(RouterKind.SoftmaxTopK, 2) with { NormalizeTopK = false });
        Assert.Equal(Math.Exp(2) / Z, w[0], 6);
        Assert.Equal(Math.Exp(1) / Z, w[1], 6);
    }

    [Fact]
    public void TopKSoftmaxWeightsEqualRenormalisedSoftmax()
    {
        var (r, w) = Route(Four(RouterKind.TopKSoftmax, 2));
        Assert.Equal([0, 1], r.PairExpert);
        Assert.Equal(1 / (1 + Math.Exp(-1)), w[0], 6);
    }

    [Fact]
    public void SwitchWeightIsTheRawProbability()
    {
        var (r, w) = Route(Four(RouterKind.Switch, 1));
        Assert.Equal([0], r.PairExpert);
        Assert.Equal(Math.Exp(2) / Z, w[0], 6);
    }

    [Fact]
    public void DenseWeightsAreTheSoftmax()
    {
        var (r, w) = Route(Four(RouterKind.Dense, 4));
        Assert.Equal([0, 1, 2, 3], r.PairExpert);
        Assert.Equal([Math.Exp(2) / Z, Math.Exp(1) / Z, 1 / Z, Math.Exp(-1) / Z], w.Select(v => (double)v).ToArray(), new ToleranceComparer(1e-6));
    }

    [Fact]
    public void SigmoidBiasPicksWithTheBiasButWeighsWithoutIt()
    {
        // Bias +5 on expert 2 makes it selected first; its weight still comes from σ(0) = 0.5.
        var o = Four(RouterKind.SigmoidBias, 2) with { RoutedScaling = 2f };
        var (r, w) = Route(o, (_, bias) => bias[2] = 5f);
        Assert.Equal([2, 0], r.PairExpert);
        double s2 = 0.5, s0 = 1 / (1 + Math.Exp(-2));
        Assert.Equal(2 * s2 / (s2 + s0), w[0], 6);
        Assert.Equal(2 * s0 / (s2 + s0), w[1], 6);
    }

    [Fact]
    public void GroupLimitedRoutingKeepsTheBestGroups()
    {
        // Groups {0,1} and {2,3}; with one group allowed, both picks come from group {0,1} even though bias
        // pushes expert 3 above expert 1 individually: group scores are (σ2 + σ1) vs (σ0 + σ(−1) + 0.3).
        var o = Four(RouterKind.SigmoidBias, 2) with { Groups = 2, TopGroups = 1 };
        var (r, _) = Route(o, (_, bias) => bias[3] = 0.3f);
        Assert.Equal([0, 1], r.PairExpert);
    }

    /// <summary>
    /// DeepSeek-V2's group_limited_greedy: groups {0,1} and {2,3} with logits (3, −5 | 2.5, 2.4). Group {0,1} has the
    /// best single probability, group {2,3} the larger sum of its two best, and ungrouped top-2 would take experts 0
    /// and 2; one group allowed, the softmax router must take 0 and 1, weighted p·2 (routed_scaling_factor 2, no
    /// renormalisation): 2e³/Z and 2e⁻⁵/Z with Z = e³ + e⁻⁵ + e^2.5 + e^2.4. Tolerance 1e-6 absolute.
    /// </summary>
    [Fact]
    public void SoftmaxGroupLimitedRoutingRanksGroupsByTheirBestProbability()
    {
        float[] logits = [3, -5, 2.5f, 2.4f];
        void Logits(Span<float> w, Span<float> _)
        {
            for (int e = 0; e < 4; e++) w[e * 3] = logits[e];
        }
        var o = Four(RouterKind.SoftmaxTopK, 2) with { NormalizeTopK = false, RoutedScaling = 2f };
        var (r, w) = Route(o with { Groups = 2, TopGroups = 1 }, Logits);
        Assert.Equal([0, 1], r.PairExpert);
        double z = Math.Exp(3) + Math.Exp(-5) + Math.Exp(2.5) + Math.Exp(2.4);
        Assert.Equal(2 * Math.Exp(3) / z, w[0], 1e-6);
        Assert.Equal(2 * Math.Exp(-5) / z, w[1], 1e-6);
        (r, _) = Route(o, Logits);
        Assert.Equal([0, 2], r.PairExpert);
        (r, _) = Route(o with { Groups = 2, TopGroups = 2 }, Logits);
        Assert.Equal([0, 2], r.PairExpert);
    }

    [Fact]
    public void ExpertChoiceGivesEachExpertItsBestTokens()
    {
        // Four identical tokens, capacity ⌈4·1/4⌉ = 1: every expert takes token 0 (ties to the lower index).
        var (r, w) = Route(Four(RouterKind.ExpertChoice, 1), tokens: 4);
        Assert.False(r.TokenChoice);
        Assert.Equal([0, 4, 4, 4, 4], r.TokenOffsets);
        Assert.Equal([0, 1, 2, 3], r.PairExpert);
        Assert.Equal(Math.Exp(2) / Z, w[0], 6);
    }

    [Fact]
    public void HashWeightsAreOne()
    {
        var (r, w) = Route(Four(RouterKind.Hash, 1) with { Dim = 3 }, tokens: 3);
        Assert.All(w, v => Assert.Equal(1f, v));
        Assert.All(r.PairExpert, e => Assert.InRange(e, 0, 3));
    }

    [Fact]
    public void SinkhornPlanBalancesColumns()
    {
        // Every token prefers expert 0, yet the balanced plan spreads them: columns sum to T/E.
        var logits = Enumerable.Range(0, 8).SelectMany(_ => new float[] { 3, 0, 0, 0 }).ToArray();
        var plan = SinkhornRouter.Plan(logits, 8, 4, iterations: 50);
        for (int e = 0; e < 4; e++) Assert.Equal(2f, Enumerable.Range(0, 8).Sum(t => plan[t * 4 + e]), 3);
    }

    [Fact]
    public void BiasBalancingFlattensASkewedRouter()
    {
        // Logits skewed by 3 − 0.4·e through a constant feature, plus token-dependent scores (gate std 0.5); only
        // the selection bias learns, γ = 0.003. 2048 tokens a step keep the CV's sampling noise near 0.04.
        var o = new MoeOptions { Dim = 8, Experts = 8, TopK = 2, ExpertHidden = 4, Router = RouterKind.SigmoidBias, BiasUpdateRate = 0.003f, InitStd = 0.5f };
        var arena = new ParameterArena();
        var layer = new MoeLayer(o, arena, "moe");
        arena.Build(2);
        var w = arena["moe.gate.weight"].Value.Span;
        for (int e = 0; e < 8; e++) w[e * 8] = 3 - 0.4f * e;
        var rng = new Rng(4);
        var x = new Tensor(2048, 8);
        var cv = new List<float>();
        for (int step = 0; step < 300; step++)
        {
            for (int t = 0; t < 2048; t++)
            {
                x[t * 8] = 1;
                for (int i = 1; i < 8; i++) x[t * 8 + i] = rng.NextNormal();
            }
            var stats = layer.Forward(new Tape(), x).Stats;
            cv.Add(stats.LoadCv);
            layer.UpdateBias(stats);
        }
        Assert.True(cv[0] > 0.5f, $"the skew should start unbalanced, CV {cv[0]}");
        int first = cv.FindIndex(c => c < 0.1f);
        Assert.InRange(first, 1, 100); // below 0.1 within 100 steps
        float settled = cv.Skip(100).Average();
        Assert.True(settled < 0.08f, $"mean load CV over steps 100..299 is {settled}");
    }

    [Fact]
    public void CollapseAndDeadFlagsFireOnCollapsedRoutingOnly()
    {
        var layer = Layer();
        var monitor = new RoutingMonitor(4, deadSteps: 3, collapseThreshold: 0.9f);
        var alerts = new List<RoutingAlert>();
        for (int step = 1; step <= 4; step++) alerts.AddRange(monitor.Observe(layer.Forward(new Tape(), OneHot(0, 0, 0, 0)).Stats, step));
        Assert.Contains(alerts, a => a is { Kind: "collapse", Expert: 0, Step: 1 });
        Assert.Equal(3, alerts.Count(a => a.Kind == "dead" && a.Step == 3)); // experts 1..3, after 3 idle steps
        Assert.True(monitor.Collapsed);

        var balanced = new RoutingMonitor(4, deadSteps: 3, collapseThreshold: 0.9f);
        for (int step = 1; step <= 10; step++)
            Assert.Empty(balanced.Observe(layer.Forward(new Tape(), OneHot(0, 1, 2, 3)).Stats, step));
    }

    private sealed class ToleranceComparer(double tol) : IEqualityComparer<double>
    {
        public bool Equals(double a, double b) => Math.Abs(a - b) <= tol;
        public int GetHashCode(double v) => 0;
    }
}
