using System.Text.Json;

namespace MoeSharp.Retrieval.Gating;

/// <summary>
/// The gate: a two-layer network on query features that outputs one weight per expert,
/// <c>softmax(W2 · relu(W1 · (x − μ) / σ + b1) + b2)</c>. F features, H hidden units, E experts. Forward and
/// backward sit side by side; the backward adds into the gradient arena.
/// </summary>
public sealed class RetrievalGate
{
    /// <summary>Feature count F.</summary>
    public int Features { get; }

    /// <summary>Hidden width H.</summary>
    public int Hidden { get; }

    /// <summary>Expert count E.</summary>
    public int Experts { get; }

    /// <summary>All parameters in one arena: W1 [H, F], b1 [H], W2 [E, H], b2 [E].</summary>
    public float[] Parameters { get; }

    /// <summary>Gradients, laid out like <see cref="Parameters"/>.</summary>
    public float[] Gradients { get; }

    /// <summary>Feature means μ [F], fixed from the training queries.</summary>
    public float[] Mean { get; }

    /// <summary>Feature standard deviations σ [F] (1 where a feature is constant).</summary>
    public float[] Scale { get; }

    private int W1 => 0;
    private int B1 => Hidden * Features;
    private int W2 => B1 + Hidden;
    private int B2 => W2 + Experts * Hidden;

    /// <summary>A gate with small random weights.</summary>
    public RetrievalGate(int features, int hidden, int experts, ulong seed)
    {
        if (features <= 0 || hidden <= 0 || experts <= 1) throw new ArgumentException($"gate: expected positive sizes and at least 2 experts, got F={features} H={hidden} E={experts}");
        Features = features;
        Hidden = hidden;
        Experts = experts;
        Parameters = new float[hidden * features + hidden + experts * hidden + experts];
        Gradients = new float[Parameters.Length];
        Mean = new float[features];
        Scale = new float[features];
        Array.Fill(Scale, 1f);
        var rng = new Random(unchecked((int)seed));
        float s1 = MathF.Sqrt(2f / features), s2 = MathF.Sqrt(1f / hidden);
        for (int i = 0; i < hidden * features; i++) Parameters[W1 + i] = (float)(rng.NextDouble() * 2 - 1) * s1;
        for (int i = 0; i < experts * hidden; i++) Parameters[W2 + i] = (float)(rng.NextDouble() * 2 - 1) * s2;
    }

    /// <summary>Sets μ and σ from the training features <c>[rows][F]</c>.</summary>
    public void Standardize(IReadOnlyList<float[]> rows)
    {
        for (int f = 0; f < Features; f++)
        {
            double sum = 0, sq = 0;
            foreach (var r in rows) { sum += r[f]; sq += (double)r[f] * r[f]; }
            double mean = sum / Math.Max(1, rows.Count);
            double var = sq / Math.Max(1, rows.Count) - mean * mean;
            Mean[f] = (float)mean;
            Scale[f] = var > 1e-12 ? (float)Math.Sqrt(var) : 1f;
        }
    }

    /// <summary>What a backward pass needs from its forward pass.</summary>
    public sealed class Activations(int features, int hidden, int experts)
    {
        /// <summary>Standardised input [F].</summary>
        public float[] Input { get; } = new float[features];

        /// <summary>Hidden units after ReLU [H].</summary>
        public float[] Hidden { get; } = new float[hidden];

        /// <summary>Gate weights after softmax [E].</summary>
        public float[] Weights { get; } = new float[experts];
    }

    /// <summary>The expert weights for <paramref name="x"/> [F]; <paramref name="a"/> keeps what backward needs.</summary>
    public float[] Forward(ReadOnlySpan<float> x, Activations? a = null)
    {
        if (x.Length != Features) throw new ArgumentException($"gate input: expected {Features} features, got {x.Length}");
        a ??= new Activations(Features, Hidden, Experts);
        var p = Parameters.AsSpan();
        for (int f = 0; f < Features; f++) a.Input[f] = (x[f] - Mean[f]) / Scale[f];
        for (int h = 0; h < Hidden; h++)
            a.Hidden[h] = MathF.Max(0f, TensorPrimitives.Dot(p.Slice(W1 + h * Features, Features), a.Input) + p[B1 + h]);
        for (int e = 0; e < Experts; e++)
            a.Weights[e] = TensorPrimitives.Dot(p.Slice(W2 + e * Hidden, Hidden), a.Hidden) + p[B2 + e];
        TensorPrimitives.SoftMax(a.Weights, a.Weights);
        return a.Weights;
    }

    /// <summary>Adds the gradient of a loss into <see cref="Gradients"/>, given dLoss/dWeights [E] at the forward pass <paramref name="a"/>.</summary>
    public void Backward(Activations a, ReadOnlySpan<float> dWeights)
    {
        // Softmax Jacobian: dz_e = w_e (dw_e − Σ_j w_j dw_j).
        float dot = TensorPrimitives.Dot(a.Weights, dWeights);
        var g = Gradients.AsSpan();
        var p = Parameters.AsSpan();
        Span<float> dHidden = stackalloc float[Hidden]; // [H]
        dHidden.Clear();
        for (int e = 0; e < Experts; e++)
        {
            float dz = a.Weights[e] * (dWeights[e] - dot);
            g[B2 + e] += dz;
            for (int h = 0; h < Hidden; h++)
            {
                g[W2 + e * Hidden + h] += dz * a.Hidden[h];
                dHidden[h] += dz * p[W2 + e * Hidden + h];
            }
        }
        for (int h = 0; h < Hidden; h++)
        {
            if (a.Hidden[h] <= 0) continue;
            g[B1 + h] += dHidden[h];
            TensorPrimitives.MultiplyAdd(a.Input, dHidden[h], g.Slice(W1 + h * Features, Features), g.Slice(W1 + h * Features, Features));
        }
    }

    /// <summary>The gate as JSON.</summary>
    public string ToJson() => JsonSerializer.Serialize(new GateFile(Features, Hidden, Experts, Parameters, Mean, Scale));

    /// <summary>Reads a gate that <see cref="ToJson"/> wrote; a malformed one is an <see cref="InvalidDataException"/>.</summary>
    public static RetrievalGate FromJson(string json, string what)
    {
        GateFile? f;
        try
        {
            f = JsonSerializer.Deserialize<GateFile>(json);
        }
        catch (JsonException ex)
        {
            throw new InvalidDataException($"{what}: the stored gate is not valid JSON ({ex.Message})", ex);
        }
        if (f is null || f.Features <= 0 || f.Hidden <= 0 || f.Experts <= 1 || f.Parameters is null || f.Mean is null || f.Scale is null
            || f.Parameters.Length != f.Hidden * f.Features + f.Hidden + f.Experts * f.Hidden + f.Experts
            || f.Mean.Length != f.Features || f.Scale.Length != f.Features)
            throw new InvalidDataException($"{what}: the stored gate has inconsistent sizes; run 'moe rag train' again");
        var gate = new RetrievalGate(f.Features, f.Hidden, f.Experts, 0);
        f.Parameters.CopyTo(gate.Parameters, 0);
        f.Mean.CopyTo(gate.Mean, 0);
        f.Scale.CopyTo(gate.Scale, 0);
        return gate;
    }

    private sealed record GateFile(int Features, int Hidden, int Experts, float[] Parameters, float[] Mean, float[] Scale);
}

/// <summary>Adam over one flat arena (Kingma and Ba), enough for a gate of a few thousand weights.</summary>
/// <param name="size">Arena length.</param>
/// <param name="learningRate">Step size.</param>
public sealed class Adam(int size, float learningRate)
{
    private readonly float[] _m = new float[size]; // [P]
    private readonly float[] _v = new float[size]; // [P]
    private int _t;

    /// <summary>One step on <paramref name="parameters"/> from <paramref name="gradients"/> (divided by <paramref name="batch"/>), then clears the gradients.</summary>
    public void Step(float[] parameters, float[] gradients, int batch)
    {
        _t++;
        float c1 = 1 - MathF.Pow(0.9f, _t), c2 = 1 - MathF.Pow(0.999f, _t);
        for (int i = 0; i < parameters.Length; i++)
        {
            float g = gradients[i] / batch;
            _m[i] = 0.9f * _m[i] + 0.1f * g;
            _v[i] = 0.999f * _v[i] + 0.001f * g * g;
            parameters[i] -= learningRate * (_m[i] / c1) / (MathF.Sqrt(_v[i] / c2) + 1e-8f);
        }
        Array.Clear(gradients);
    }
}
