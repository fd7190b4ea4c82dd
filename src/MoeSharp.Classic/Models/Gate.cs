using MoeSharp.Autograd;
using MoeSharp.Nn;
using MoeSharp.Tensors;

namespace MoeSharp.Classic.Models;

/// <summary>Settings of a mixture's <see cref="Gate"/>, validated by <see cref="Validate"/>, which names the bad field.</summary>
public sealed record GateOptions
{
    /// <summary>0 for a softmax linear gate; otherwise the width of one GELU hidden layer (an MLP gate).</summary>
    public int Hidden { get; init; }

    /// <summary>0 for the dense mixture (every expert); otherwise each row uses only its k best experts, renormalised.</summary>
    public int TopK { get; init; }

    /// <summary>Seeds the hidden layer's initial weights.</summary>
    public ulong Seed { get; init; } = 7;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first field out of range for <paramref name="experts"/> experts.</summary>
    public void Validate(int experts)
    {
        if (Hidden < 0) throw new ArgumentException($"GateOptions.Hidden: must be 0 (linear gate) or positive, got {Hidden}.", nameof(Hidden));
        if (TopK < 0 || TopK > experts) throw new ArgumentException($"GateOptions.TopK: must be 0 (dense) or in [1, {experts}] experts, got {TopK}.", nameof(TopK));
    }
}

/// <summary>
/// The gating network of a classic mixture: x [N,D] → logits [N,E], softmax over the experts. A linear gate
/// (output.weight [E,D], output.bias [E]) or an MLP gate (hidden [H,D] + GELU first). The output layer starts at
/// zero, so a fresh gate is uniform. It owns its parameter arena; adding or removing experts makes a new gate with
/// the surviving rows copied (<see cref="Resize"/>).
/// </summary>
/// <remarks>
/// The MoE layer's <c>LinearRouter</c> has no bias, which suits a Transformer's residual stream but not tabular
/// inputs, where a boundary such as x = 0.3 needs one; so the gate has its own output layer and reuses the layer's
/// top-k selection and renormalisation through <see cref="MixtureOps.TopKMask"/>.
/// </remarks>
public sealed class Gate
{
    /// <summary>A gate with fresh weights from <paramref name="inputs"/> features to scores over <paramref name="experts"/> experts.</summary>
    public Gate(int inputs, int experts, GateOptions? options = null)
    {
        options ??= new GateOptions();
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(inputs);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(experts);
        options.Validate(experts);
        Inputs = inputs;
        Experts = experts;
        Options = options;
        Arena = new ParameterArena();
        if (options.Hidden > 0) HiddenLayer = new Linear(Arena, "gate.hidden", inputs, options.Hidden, bias: true, initStd: 1f / MathF.Sqrt(inputs));
        Output = new Linear(Arena, "gate.output", options.Hidden > 0 ? options.Hidden : inputs, experts, bias: true, initStd: 0);
        Arena.Build(options.Seed);
    }

    /// <summary>Input width D.</summary>
    public int Inputs { get; }
    /// <summary>Number of experts E: the gate's output width.</summary>
    public int Experts { get; }
    /// <summary>The settings it was built with.</summary>
    public GateOptions Options { get; }
    /// <summary>The gate's parameters and their gradients.</summary>
    public ParameterArena Arena { get; }

    /// <summary>[H,D] and [H]; null for a linear gate.</summary>
    public Linear? HiddenLayer { get; }

    /// <summary>[E,D or H] and [E].</summary>
    public Linear Output { get; }

    /// <summary>x [N,D] → logits [N,E], before any top-k mask.</summary>
    public Tensor Logits(Tape tape, Tensor x)
    {
        var h = HiddenLayer is null ? x : tape.Gelu(HiddenLayer.Forward(tape, x));
        return Output.Forward(tape, h);
    }

    /// <summary>Logits with every expert outside each row's top-k masked (k = 0 or k = E: unmasked).</summary>
    public Tensor MaskedLogits(Tape tape, Tensor x, int topK)
    {
        var a = Logits(tape, x);
        return topK > 0 && topK < Experts ? tape.TopKMask(a, topK) : a;
    }

    /// <summary>Gate probabilities g [N,E] for x [N,D], top-k renormalised when k is set (inference).</summary>
    public float[] Probabilities(ReadOnlySpan<float> x, int topK)
    {
        int n = x.Length / Inputs;
        var tape = new Tape();
        var g = new float[n * Experts];
        if (n == 0) return g;
        using (tape.NoGrad())
        {
            var a = MaskedLogits(tape, Tensor.FromArray(x.ToArray(), n, Inputs), topK);
            tape.Softmax(a).Span.CopyTo(g);
        }
        return g;
    }

    /// <summary>Log gate probabilities [N,E] (top-k masked entries get ≈ −10³⁰).</summary>
    public float[] LogProbabilities(ReadOnlySpan<float> x, int topK)
    {
        int n = x.Length / Inputs;
        var tape = new Tape();
        var lg = new float[n * Experts];
        if (n == 0) return lg;
        using (tape.NoGrad())
        {
            var a = MaskedLogits(tape, Tensor.FromArray(x.ToArray(), n, Inputs), topK);
            LogSoftmaxRows(a.Span, lg, Experts);
        }
        return lg;
    }

    // The core's softmax kernels are not public API; this is the same arithmetic: shift by the row maximum first, so
    // large logits stay exact and a masked −10³⁰ stays finite.
    private static void LogSoftmaxRows(ReadOnlySpan<float> a, Span<float> y, int cols) // a, y [N, cols]
    {
        for (int r = 0; r < a.Length / cols; r++)
        {
            var ar = a.Slice(r * cols, cols);
            var yr = y.Slice(r * cols, cols);
            TensorPrimitives.Subtract(ar, TensorPrimitives.Max(ar), yr);
            float sum = 0;
            foreach (float v in yr) sum += MathF.Exp(v);
            TensorPrimitives.Subtract(yr, MathF.Log(sum), yr);
        }
    }

    /// <summary>
    /// A gate over a new expert list: <paramref name="keep"/> lists, in order, the old experts that stay, and
    /// <paramref name="added"/> new experts follow them. Kept rows of the output layer and the hidden layer are copied
    /// bit for bit, so the kept experts' logits are unchanged and a softmax over them is the old gate renormalised.
    /// A new expert's row gets zero weights and the mean kept bias, a middling share to start from.
    /// </summary>
    public Gate Resize(IReadOnlyList<int> keep, int added)
    {
        foreach (int k in keep)
            if ((uint)k >= (uint)Experts) throw new ArgumentOutOfRangeException(nameof(keep), $"Expert {k} is not one of the gate's {Experts}.");
        int experts = keep.Count + added;
        var gate = new Gate(Inputs, experts, Options with { TopK = Math.Min(Options.TopK, experts) });
        if (HiddenLayer is not null)
        {
            HiddenLayer.Weight.Value.Span.CopyTo(gate.HiddenLayer!.Weight.Value.Span);
            HiddenLayer.Bias!.Value.Span.CopyTo(gate.HiddenLayer.Bias!.Value.Span);
        }
        int width = Output.InFeatures;
        var w = Output.Weight.Value.Span;
        var b = Output.Bias!.Value.Span;
        var nw = gate.Output.Weight.Value.Span;
        var nb = gate.Output.Bias!.Value.Span;
        float meanBias = 0;
        for (int i = 0; i < keep.Count; i++)
        {
            w.Slice(keep[i] * width, width).CopyTo(nw.Slice(i * width, width));
            nb[i] = b[keep[i]];
            meanBias += b[keep[i]] / keep.Count;
        }
        for (int i = keep.Count; i < experts; i++) nb[i] = keep.Count > 0 ? meanBias : 0;
        return gate;
    }
}
