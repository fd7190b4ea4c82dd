using MoeSharp.Tensors;

namespace MoeSharp.Classic.Models;

/// <summary>Settings of <see cref="MmoeSynthetic"/>, validated by <see cref="Validate"/>, which names the bad field.</summary>
public sealed record MmoeSyntheticOptions
{
    /// <summary>Input dimension d (the paper: 100).</summary>
    public int Inputs { get; init; } = 100;

    /// <summary>Scale c of the weight vectors.</summary>
    public float Scale { get; init; } = 1f;

    /// <summary>Number m of sinusoids added to each label (the paper: 10).</summary>
    public int Sinusoids { get; init; } = 10;

    /// <summary>Standard deviation of the label noise; the paper's N(0, 0.01) is a variance of 0.01, so 0.1.</summary>
    public float NoiseStd { get; init; } = 0.1f;

    /// <summary>[m] sinusoid frequencies α; null draws α ~ N(0, 1) with the generator's seed.</summary>
    public float[]? Alphas { get; init; }

    /// <summary>[m] sinusoid phases β; null draws β ~ N(0, 1) with the generator's seed.</summary>
    public float[]? Betas { get; init; }

    /// <summary>
    /// Fixed, oscillating labels: α_i = i and β_i = (i − 1)² for i = 1..m, the values Google Research's public
    /// generator for this paper uses (the paper gives none). The scale c is 0.3 because at c = 1, where the highest
    /// frequency is 10, neither MMoE nor shared-bottom of the paper's size got below a test MSE of 3 in our runs.
    /// </summary>
    public static MmoeSyntheticOptions Oscillating(int inputs = 100, int sinusoids = 10) => new()
    {
        Inputs = inputs,
        Scale = 0.3f,
        Sinusoids = sinusoids,
        Alphas = Enumerable.Range(1, sinusoids).Select(i => (float)i).ToArray(),
        Betas = Enumerable.Range(0, sinusoids).Select(i => (float)(i * i)).ToArray(),
    };

    /// <summary>Throws <see cref="ArgumentException"/> naming the first field out of range.</summary>
    public void Validate()
    {
        if (Inputs < 2) throw new ArgumentException($"MmoeSyntheticOptions.Inputs: two orthogonal directions need at least 2 inputs, got {Inputs}.", nameof(Inputs));
        if (!(Scale > 0)) throw new ArgumentException($"MmoeSyntheticOptions.Scale: must be positive, got {Scale}.", nameof(Scale));
        if (Sinusoids < 0) throw new ArgumentException($"MmoeSyntheticOptions.Sinusoids: must be non-negative, got {Sinusoids}.", nameof(Sinusoids));
        if (!(NoiseStd >= 0)) throw new ArgumentException($"MmoeSyntheticOptions.NoiseStd: must be non-negative, got {NoiseStd}.", nameof(NoiseStd));
        if (Alphas is { } a && a.Length != Sinusoids) throw new ArgumentException($"MmoeSyntheticOptions.Alphas: expected {Sinusoids} values (one per sinusoid), got {a.Length}.", nameof(Alphas));
        if (Betas is { } b && b.Length != Sinusoids) throw new ArgumentException($"MmoeSyntheticOptions.Betas: expected {Sinusoids} values (one per sinusoid), got {b.Length}.", nameof(Betas));
    }
}

/// <summary>
/// The synthetic two-task regression data of Ma et al. 2018 (section 3.2), whose task correlation is set by a knob p:
/// <list type="number">
/// <item>two orthogonal unit vectors u₁, u₂ ∈ ℝᵈ (Gram–Schmidt on two Gaussian vectors);</item>
/// <item>weights w₁ = c·u₁ and w₂ = c·(p·u₁ + √(1 − p²)·u₂), so that cos(w₁, w₂) = p;</item>
/// <item>inputs x with i.i.d. N(0, 1) entries;</item>
/// <item>labels y_k = w_kᵀx + Σ_{i=1..m} sin(α_i·w_kᵀx + β_i) + ε_k, ε_k ~ N(0, NoiseStd²).</item>
/// </list>
/// The paper calls α_i, β_i "given parameters": they come from the options, or are drawn from N(0, 1) with the
/// generator's seed when the options leave them out.
/// The label correlation is not exactly p because of the sinusoids, but falls as p falls, as in the paper.
/// </summary>
public sealed class MmoeSynthetic
{
    /// <summary>A generator whose task weights have cosine <paramref name="correlation"/> (in [−1, 1]), drawn from <paramref name="seed"/>.</summary>
    public MmoeSynthetic(double correlation, MmoeSyntheticOptions? options = null, ulong seed = 1)
    {
        options ??= new MmoeSyntheticOptions();
        options.Validate();
        if (!(correlation is >= -1 and <= 1)) throw new ArgumentOutOfRangeException(nameof(correlation), $"The task correlation must be in [−1, 1], got {correlation}.");
        Options = options;
        Correlation = correlation;
        int d = options.Inputs;
        var rng = new Rng(seed);
        var u1 = new double[d];
        var u2 = new double[d];
        for (int i = 0; i < d; i++) { u1[i] = rng.NextNormal(); u2[i] = rng.NextNormal(); }
        Normalise(u1);
        double dot = Dot(u1, u2);
        for (int i = 0; i < d; i++) u2[i] -= dot * u1[i];
        Normalise(u2);
        double c = options.Scale, q = Math.Sqrt(1 - correlation * correlation);
        W1 = u1.Select(v => (float)(c * v)).ToArray();
        W2 = u1.Select((v, i) => (float)(c * (correlation * v + q * u2[i]))).ToArray();
        Alpha = new float[options.Sinusoids];
        Beta = new float[options.Sinusoids];
        rng.FillNormal(Alpha, 0, 1);
        rng.FillNormal(Beta, 0, 1);
        options.Alphas?.CopyTo(Alpha, 0);
        options.Betas?.CopyTo(Beta, 0);
    }

    /// <summary>The sizes it was built with.</summary>
    public MmoeSyntheticOptions Options { get; }
    /// <summary>The knob p: the cosine between the two tasks' weight vectors.</summary>
    public double Correlation { get; }

    /// <summary>[d] task weight vectors.</summary>
    public float[] W1 { get; }

    /// <summary>[d] the second task's weights w₂ = c·(p·u₁ + √(1 − p²)·u₂).</summary>
    public float[] W2 { get; }

    /// <summary>[m] sinusoid frequencies and phases.</summary>
    public float[] Alpha { get; }

    /// <summary>[m] sinusoid phases β_i.</summary>
    public float[] Beta { get; }

    /// <summary>Draws <paramref name="rows"/> examples: inputs X [N,d] and labels Y [N,2] (task-major per row).</summary>
    public (Tensor X, float[] Y) Sample(int rows, Rng rng)
    {
        int d = Options.Inputs;
        var x = new Tensor(rows, d);
        rng.FillNormal(x.Span, 0, 1);
        var y = new float[rows * 2];
        for (int r = 0; r < rows; r++)
        {
            var xr = x.Span.Slice(r * d, d);
            y[2 * r] = Label(TensorPrimitives.Dot(xr, W1), rng);
            y[2 * r + 1] = Label(TensorPrimitives.Dot(xr, W2), rng);
        }
        return (x, y);
    }

    private float Label(float z, Rng rng)
    {
        double y = z;
        for (int i = 0; i < Alpha.Length; i++) y += Math.Sin(Alpha[i] * z + Beta[i]);
        return (float)(y + Options.NoiseStd * rng.NextNormal());
    }

    private static double Dot(double[] a, double[] b)
    {
        double s = 0;
        for (int i = 0; i < a.Length; i++) s += a[i] * b[i];
        return s;
    }

    private static void Normalise(double[] v)
    {
        double norm = Math.Sqrt(Dot(v, v));
        for (int i = 0; i < v.Length; i++) v[i] /= norm;
    }
}
