using MoeSharp.Diagnostics;

namespace MoeSharp.Tests.Diagnostics;

public sealed class FormatQualityTests
{
    private static readonly float Ln2 = MathF.Log(2);

    // Logits (3, 2, 1, 1)·ln 2 are the distribution (8, 4, 2, 2) / 16 = (1/2, 1/4, 1/8, 1/8); zeros are uniform.
    private static readonly float[] Halving = [3 * Ln2, 2 * Ln2, Ln2, Ln2];
    private static readonly float[] Uniform = [0, 0, 0, 0];

    /// <summary>
    /// Three tokens over four words, by hand. Token 1: p = (1/2, 1/4, 1/8, 1/8), q uniform, target 0:
    /// KL = ½ln2 + ¼·0 + 2·⅛·ln(½) = ¼ln2; −log p = ln2, −log q = ln4. Token 2: p uniform, q = (1/2, 1/4, 1/8, 1/8),
    /// target 3: KL = ¼(ln½ + 0 + ln2 + ln2) = ¼ln2; −log p = ln4, −log q = ln8. Token 3: both (1/2, 1/4, 1/8, 1/8),
    /// target 2: KL = 0, −log = ln8 for both. Mean KL = ln2/6; perplexities exp((ln2+ln4+ln8)/3) = 4 and
    /// exp((ln4+ln8+ln8)/3) = 2^(8/3). Top-1 agrees on all 3: word 0 is the halving side's maximum and the uniform
    /// side's first maximum (ties go to the first).
    /// Tolerance 1e-6: the logits are ln 2 multiples rounded to float (relative 6e-8), everything else is double.
    /// </summary>
    [Fact]
    public void ThreeTokensOfFourWordsMatchTheHandDerivedValues()
    {
        float[] reference = [.. Halving, .. Uniform, .. Halving]; // [3, 4]
        float[] candidate = [.. Uniform, .. Halving, .. Halving]; // [3, 4]
        var scores = new FormatQuality.TokenScores();
        scores.Add(reference, candidate, [0, 3, 2]);
        Assert.Equal(3, scores.Tokens);
        Assert.Equal(Math.Log(2) / 6, scores.MeanKl, 1e-6);
        Assert.Equal(4.0, scores.ReferencePerplexity, 1e-6);
        Assert.Equal(Math.Pow(2, 8.0 / 3), scores.Perplexity, 1e-6);
        Assert.Equal(1.0, scores.Top1Agreement);
        Assert.Equal(Math.Log(2) / 4, FormatQuality.KlDivergence(Halving, Uniform), 1e-6);
        Assert.Equal(Math.Log(8), FormatQuality.NegativeLogLikelihood(Halving, 2), 1e-6);
    }

    [Fact]
    public void TopOneDisagreesWhenTheMaximaDiffer()
    {
        float[] reversed = [Ln2, Ln2, 2 * Ln2, 3 * Ln2];
        var scores = new FormatQuality.TokenScores();
        scores.Add([.. Halving, .. Halving], [.. Halving, .. reversed], [0, 0]);
        Assert.Equal(0.5, scores.Top1Agreement);
        // KL(p ‖ reversed p) = ½ln(½/⅛) + ¼ln(¼/⅛) + ⅛ln(⅛/¼) + ⅛ln(⅛/½) = ln2 + ¼ln2 − ⅛ln2 − ¼ln2 = ⅞ln2, halved over two tokens
        Assert.Equal(7 * Math.Log(2) / 16, scores.MeanKl, 1e-6);
    }

    [Fact]
    public void KlOfIdenticalDistributionsIsExactlyZero()
    {
        var rng = new Random(3);
        var logits = new float[1000]; // [V]
        for (int i = 0; i < logits.Length; i++) logits[i] = (float)(rng.NextDouble() * 20 - 10);
        Assert.Equal(0.0, FormatQuality.KlDivergence(logits, logits.ToArray()));
        var scores = new FormatQuality.TokenScores();
        scores.Add(logits, logits.ToArray(), [7]);
        Assert.Equal(0.0, scores.MeanKl);
        Assert.Equal(scores.ReferencePerplexity, scores.Perplexity);
    }

    [Fact]
    public void FirstDifferenceIsTheFirstUnequalPositionOrTheLength()
    {
        Assert.Equal(2, FormatQuality.FirstDifference([1, 2, 3, 4], [1, 2, 9, 4]));
        Assert.Equal(0, FormatQuality.FirstDifference([5], [6]));
        Assert.Equal(4, FormatQuality.FirstDifference([1, 2, 3, 4], [1, 2, 3, 4]));
    }

    [Fact]
    public void MismatchedShapesAreRefused()
    {
        Assert.Throws<ArgumentException>(() => FormatQuality.KlDivergence(Halving, [0f, 0f]));
        Assert.Throws<ArgumentOutOfRangeException>(() => FormatQuality.NegativeLogLikelihood(Halving, 4));
        Assert.Throws<ArgumentException>(() => new FormatQuality.TokenScores().Add(Halving, Halving, [0, 1, 2]));
    }
}
