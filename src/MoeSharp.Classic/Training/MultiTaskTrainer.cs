using MoeSharp.Autograd;
using MoeSharp.Classic.Models;
using MoeSharp.Nn;
using MoeSharp.Training;
using MoeSharp.Tensors;

namespace MoeSharp.Classic.Training;

/// <summary>Settings of <see cref="MultiTaskTrainer"/>, validated by <see cref="Validate"/>, which names the bad field.</summary>
public sealed record MultiTaskTrainOptions
{
    /// <summary>Passes over the training rows.</summary>
    public int Epochs { get; init; } = 30;
    /// <summary>Rows per AdamW step.</summary>
    public int BatchSize { get; init; } = 128;
    /// <summary>Peak learning rate; it decays along a cosine to <see cref="MinLearningRateFraction"/> of itself by the last step.</summary>
    public float LearningRate { get; init; } = 1e-3f;

    /// <summary>The learning rate at the last step, as a fraction of <see cref="LearningRate"/>.</summary>
    public float MinLearningRateFraction { get; init; } = 0.1f;
    /// <summary>AdamW's decoupled weight decay.</summary>
    public float WeightDecay { get; init; }
    /// <summary>Seeds the batch order.</summary>
    public ulong Seed { get; init; } = 1;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first field out of range.</summary>
    public void Validate()
    {
        if (Epochs < 0) throw new ArgumentException($"MultiTaskTrainOptions.Epochs: must be non-negative, got {Epochs}.", nameof(Epochs));
        if (BatchSize <= 0) throw new ArgumentException($"MultiTaskTrainOptions.BatchSize: must be positive, got {BatchSize}.", nameof(BatchSize));
        if (!(LearningRate > 0)) throw new ArgumentException($"MultiTaskTrainOptions.LearningRate: must be positive, got {LearningRate}.", nameof(LearningRate));
        if (MinLearningRateFraction is < 0 or > 1) throw new ArgumentException($"MultiTaskTrainOptions.MinLearningRateFraction: must be in [0, 1], got {MinLearningRateFraction}.", nameof(MinLearningRateFraction));
        if (!(WeightDecay >= 0)) throw new ArgumentException($"MultiTaskTrainOptions.WeightDecay: must be non-negative, got {WeightDecay}.", nameof(WeightDecay));
    }
}

/// <summary>
/// Trains an <see cref="IMultiTaskModel"/> on the sum over tasks of each task's mean squared error, by mini-batch
/// AdamW with a cosine learning-rate decay. Labels Y [N,T] are task-major within each row.
/// </summary>
public static class MultiTaskTrainer
{
    /// <summary>The summed loss Σ_t mean_n (f_t(x_n) − y_nt)² of a batch, on the tape.</summary>
    public static Tensor Loss(Tape tape, IMultiTaskModel model, Tensor x, float[] y)
    {
        int n = x.Dim(0), tasks = model.Tasks;
        if (y.Length != n * tasks) throw new ArgumentException($"{y.Length} labels for {n} rows of {tasks} tasks.", nameof(y));
        var outputs = model.Forward(tape, x);
        var scale = Enumerable.Repeat(1f / n, n).ToArray();
        Tensor? total = null;
        for (int t = 0; t < tasks; t++)
        {
            var target = new float[n];
            for (int r = 0; r < n; r++) target[r] = y[r * tasks + t];
            var mse = tape.WeightedSum(tape.SquaredError(outputs[t], target), scale);
            total = total is null ? mse : tape.Add(total, mse);
        }
        return total!;
    }

    /// <summary>Trains and returns the mean training loss of each epoch.</summary>
    public static IReadOnlyList<double> Train(IMultiTaskModel model, Tensor x, float[] y, MultiTaskTrainOptions options)
    {
        options.Validate();
        int n = x.Dim(0), d = x.Dim(1), tasks = model.Tasks, b = Math.Min(options.BatchSize, n);
        var optimizer = new AdamW(model.Arena, weightDecay: options.WeightDecay);
        var tape = new Tape();
        var rng = new Rng(options.Seed);
        var order = Enumerable.Range(0, n).ToArray();
        var xb = new Tensor(b, d);
        var yb = new float[b * tasks];
        var losses = new List<double>();
        int perEpoch = n / b, step = 0;
        var schedule = new CosineSchedule(options.LearningRate, 0, options.Epochs * perEpoch, options.LearningRate * options.MinLearningRateFraction);
        for (int epoch = 0; epoch < options.Epochs; epoch++)
        {
            rng.Shuffle(order.AsSpan());
            double sum = 0;
            int batches = 0;
            for (int start = 0; start + b <= n; start += b)
            {
                for (int i = 0; i < b; i++)
                {
                    int r = order[start + i];
                    x.Span.Slice(r * d, d).CopyTo(xb.Span.Slice(i * d, d));
                    y.AsSpan(r * tasks, tasks).CopyTo(yb.AsSpan(i * tasks, tasks));
                }
                model.Arena.ZeroGrad();
                var loss = Loss(tape, model, xb, yb);
                if (!float.IsFinite(loss[0]))
                {
                    tape.Reset();
                    throw new NonFiniteException($"Multi-task training: the loss became {loss[0]} in epoch {epoch + 1}.");
                }
                sum += loss[0];
                batches++;
                tape.Backward(loss);
                tape.Reset();
                optimizer.Step(schedule.At(step++));
            }
            losses.Add(sum / Math.Max(1, batches));
        }
        return losses;
    }

    /// <summary>Each task's mean squared error [T] on x [N,D], y [N,T].</summary>
    public static double[] Evaluate(IMultiTaskModel model, Tensor x, float[] y)
    {
        int n = x.Dim(0), tasks = model.Tasks;
        var tape = new Tape();
        var mse = new double[tasks];
        using (tape.NoGrad())
        {
            var outputs = model.Forward(tape, x);
            for (int t = 0; t < tasks; t++)
            {
                for (int r = 0; r < n; r++)
                {
                    double diff = outputs[t][r] - y[r * tasks + t];
                    mse[t] += diff * diff / n;
                }
            }
        }
        return mse;
    }
}
