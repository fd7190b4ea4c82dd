using MoeSharp.Tensors;

namespace MoeSharp.Data;

/// <summary>
/// A token stream split into a training head and a validation tail, sampled as random windows of
/// context + 1 tokens: inputs are the first context tokens, targets the next ones.
/// </summary>
public sealed class TextDataset
{
    /// <summary>Splits <paramref name="tokens"/> by position: the first <paramref name="trainFraction"/> (in (0, 1)) for training, the rest for validation.</summary>
    public TextDataset(int[] tokens, double trainFraction = 0.9)
    {
        if (trainFraction is <= 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(trainFraction), $"The training fraction must be in (0,1), got {trainFraction}.");
        int split = (int)(tokens.Length * trainFraction);
        Train = tokens[..split];
        Validation = tokens[split..];
    }

    /// <summary>A dataset with an explicit validation stream (a corpus split by whole samples, say).</summary>
    public TextDataset(int[] train, int[] validation)
    {
        Train = train;
        Validation = validation;
    }

    /// <summary>Token ids of the training split.</summary>
    public int[] Train { get; }
    /// <summary>Token ids of the validation split.</summary>
    public int[] Validation { get; }

    /// <summary>Fills inputs and targets [batch·context] with random windows of the chosen split.</summary>
    public void Sample(Rng rng, bool validation, int batch, int context, int[] inputs, int[] targets)
    {
        var data = validation ? Validation : Train;
        if (data.Length < context + 1)
            throw new InvalidOperationException($"The {(validation ? "validation" : "training")} split has {data.Length} tokens; a window needs {context + 1}.");
        for (int b = 0; b < batch; b++)
        {
            int start = rng.NextInt(data.Length - context);
            data.AsSpan(start, context).CopyTo(inputs.AsSpan(b * context));
            data.AsSpan(start + 1, context).CopyTo(targets.AsSpan(b * context));
        }
    }
}
