using MoeSharp.Autograd;
using MoeSharp.Models;
using MoeSharp.Nn;
using MoeSharp.Tensors;

namespace MoeSharp.Training;

/// <summary>Settings of <see cref="PatchMoeTrainer"/>, validated by <see cref="Validate"/>, which names the bad field.</summary>
public sealed record PatchMoeTrainOptions
{
    /// <summary>Passes over the training images; 0 leaves the model as initialised.</summary>
    public int Epochs { get; init; } = 40;

    /// <summary>Images per optimisation step.</summary>
    public int BatchSize { get; init; } = 64;

    /// <summary>Peak learning rate; it decays along a cosine to a tenth of itself by the last step.</summary>
    public float LearningRate { get; init; } = 3e-3f;

    /// <summary>AdamW's decoupled weight decay, per unit of learning rate.</summary>
    public float WeightDecay { get; init; } = 0.01f;

    /// <summary>Seed of the shuffling of images into batches.</summary>
    public ulong Seed { get; init; } = 1;

    /// <summary>Throws, naming the field and value, unless every option is in range.</summary>
    public void Validate()
    {
        if (Epochs < 0) throw new ArgumentException($"PatchMoeTrainOptions.Epochs: must be non-negative, got {Epochs}.", nameof(Epochs));
        if (BatchSize <= 0) throw new ArgumentException($"PatchMoeTrainOptions.BatchSize: must be positive, got {BatchSize}.", nameof(BatchSize));
        if (!(LearningRate > 0)) throw new ArgumentException($"PatchMoeTrainOptions.LearningRate: must be positive, got {LearningRate}.", nameof(LearningRate));
        if (!(WeightDecay >= 0)) throw new ArgumentException($"PatchMoeTrainOptions.WeightDecay: must be non-negative, got {WeightDecay}.", nameof(WeightDecay));
    }
}

/// <summary>
/// Trains a <see cref="PatchMoeClassifier"/> by mini-batch AdamW on cross-entropy plus the MoE layer's weighted
/// auxiliary losses, with a cosine learning-rate decay.
/// </summary>
public static class PatchMoeTrainer
{
    /// <summary>Trains on images [N, H·W] with labels [N]; returns each epoch's mean cross-entropy.</summary>
    public static IReadOnlyList<double> Train(PatchMoeClassifier model, Tensor images, int[] labels, PatchMoeTrainOptions options)
    {
        options.Validate();
        int n = images.Dim(0), pixels = images.Dim(1), b = Math.Min(options.BatchSize, n);
        if (labels.Length != n) throw new ArgumentException($"{labels.Length} labels for {n} images.", nameof(labels));
        for (int i = 0; i < n; i++)
            if ((uint)labels[i] >= (uint)model.Options.Classes)
                throw new ArgumentException($"Label {labels[i]} of image {i} is outside the {model.Options.Classes} classes.", nameof(labels));
        var optimizer = new AdamW(model.Arena, weightDecay: options.WeightDecay);
        int perEpoch = n / b, step = 0;
        var schedule = new CosineSchedule(options.LearningRate, 0, Math.Max(1, options.Epochs * perEpoch), options.LearningRate / 10);
        var tape = new Tape();
        var rng = new Rng(options.Seed);
        var order = Enumerable.Range(0, n).ToArray();
        var xb = new Tensor(b, pixels); // [B, H·W]
        var yb = new int[b];
        var losses = new List<double>();
        for (int epoch = 0; epoch < options.Epochs; epoch++)
        {
            rng.Shuffle(order.AsSpan());
            double sum = 0;
            for (int start = 0; start + b <= n; start += b)
            {
                for (int i = 0; i < b; i++)
                {
                    images.Span.Slice(order[start + i] * pixels, pixels).CopyTo(xb.Span.Slice(i * pixels, pixels));
                    yb[i] = labels[order[start + i]];
                }
                model.Arena.ZeroGrad();
                var loss = Loss(tape, model, xb, yb, out float crossEntropy);
                if (!float.IsFinite(loss[0]))
                {
                    var node = tape.FirstNonFinite();
                    tape.Reset();
                    throw new NonFiniteException($"Patch MoE training, epoch {epoch + 1}: the loss became {loss[0]}" + (node is null ? "." : $"; the first non-finite value came from {node.Op} in '{node.Label}'."));
                }
                sum += crossEntropy;
                tape.Backward(loss);
                tape.Reset();
                optimizer.Step(schedule.At(step++));
            }
            losses.Add(sum / Math.Max(1, perEpoch));
        }
        return losses;
    }

    /// <summary>Cross-entropy of a batch plus the MoE layer's weighted auxiliary loss, on the tape.</summary>
    public static Tensor Loss(Tape tape, PatchMoeClassifier model, Tensor images, int[] labels, out float crossEntropy)
    {
        var (logits, moe) = model.Forward(tape, images, training: true);
        var ce = tape.CrossEntropy(logits, labels);
        crossEntropy = ce[0];
        return moe.AuxLoss is { } aux ? tape.Add(ce, aux) : ce;
    }
}
