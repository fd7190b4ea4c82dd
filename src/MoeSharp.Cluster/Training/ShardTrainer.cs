using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;
using MoeSharp.Autograd;
using MoeSharp.Dispatch;
using MoeSharp.Experts;
using MoeSharp.Nn;
using MoeSharp.Tensors;

namespace MoeSharp.Cluster.Training;

/// <summary>
/// One shard's experts in training: their fp32 weights in an arena of their own (a bank of E_s experts copied from
/// the layer's), their gradients, and their AdamW moments. Each forward is recorded on a tape kept until its backward;
/// each backward's weight gradients are added into its worker's buffer, and <see cref="Reduce"/> sums the buffers in
/// worker order, so the step does not depend on the order in which workers' calls arrived.
/// </summary>
/// <remarks>Dimensions: R rows of a call, D model width, E_s the shard's experts.</remarks>
public sealed class ShardTrainer
{
    private readonly Dictionary<int, int> _local = []; // global expert → index in the shard's bank
    private readonly Dictionary<(int Worker, long Handle), (Tape Tape, Tensor Xs, Tensor Ys)> _pending = [];
    private readonly SortedDictionary<int, float[]> _perWorker = []; // worker → [arena] its weight gradients this step
    private readonly HashSet<int> _contributed = [];
    private readonly Stack<Tape> _tapes = new();

    /// <summary>Copies the experts <paramref name="setup"/> names out of <paramref name="source"/> (fp32) and makes their AdamW.</summary>
    public ShardTrainer(ExpertBank source, ExpertTrainingSetup setup)
    {
        if (source.IsStored)
            throw new ArgumentException($"ExpertBank {source.Name}: its weights are stored (quantized or mapped); training needs the checkpoint opened in fp32.");
        Experts = [.. setup.Experts];
        Array.Sort(Experts);
        for (int i = 0; i < Experts.Length; i++)
        {
            int e = Experts[i];
            if (e < 0 || e >= source.Experts || (i > 0 && Experts[i - 1] == e))
                throw new ArgumentException($"ExpertBank {source.Name}: a training shard's experts must be distinct and in [0, {source.Experts}); got [{string.Join(", ", setup.Experts)}].");
            _local[e] = i;
        }
        Arena = new ParameterArena();
        Bank = new ExpertBank(Arena, source.Name, Experts.Length, source.Dim, source.Hidden, source.Activation, bias: source.B1 is not null, clamp: source.Clamp);
        Arena.Build(0, initialize: false);
        var from = Parameters(source);
        var to = Parameters(Bank);
        for (int p = 0; p < to.Length; p++)
        {
            int each = to[p].Length / Experts.Length; // elements of one expert's slice
            for (int i = 0; i < Experts.Length; i++)
                from[p].Value.Span.Slice(Experts[i] * each, each).CopyTo(to[p].Value.Span.Slice(i * each, each));
        }
        Optimizer = new AdamW(Arena, setup.Beta1, setup.Beta2, setup.Eps, setup.WeightDecay);
    }

    /// <summary>The layer's experts this shard trains, ascending (global indices).</summary>
    public int[] Experts { get; }

    /// <summary>The arena of the shard's weights and gradients.</summary>
    public ParameterArena Arena { get; }

    /// <summary>The shard's experts as a bank of E_s experts, in <see cref="Experts"/> order.</summary>
    public ExpertBank Bank { get; }

    /// <summary>The experts' optimizer; its moments live here and nowhere else.</summary>
    public AdamW Optimizer { get; }

    /// <summary>Forwards recorded and waiting for their backward.</summary>
    public int Pending => _pending.Count;

    /// <summary>The experts' outputs [R,D] for the section's rows; the activations are kept under (worker, handle) unless the handle is negative.</summary>
    public float[] Forward(int worker, long handle, TrainingSection rows)
    {
        int d = Bank.Dim;
        var offsets = Offsets(rows.Experts, rows.Rows); // [E_s+1]
        int count = offsets[^1];
        if (rows.Data.Length != count * d)
            throw new ArgumentException($"ExpertBank {Bank.Name}: {rows.Data.Length} values for {count} rows of width {d}.");
        if (handle >= 0 && _pending.ContainsKey((worker, handle)))
            throw new ArgumentException($"ExpertBank {Bank.Name}: worker {worker} sent forward {handle} twice.");
        var tape = _tapes.Count > 0 ? _tapes.Pop() : new Tape();
        var xs = tape.Allocate(count, d); // [R,D]
        rows.Data.CopyTo(xs.Span);
        if (handle < 0)
        {
            float[] answer;
            using (tape.NoGrad()) answer = ExpertRows.Forward(tape, xs, offsets, Bank).Span[..(count * d)].ToArray();
            Release(tape);
            return answer;
        }
        xs.RequiresGrad = true;
        var ys = ExpertRows.Forward(tape, xs, offsets, Bank); // [R,D]
        _pending[(worker, handle)] = (tape, xs, ys);
        return ys.Span[..(count * d)].ToArray();
    }

    /// <summary>dxs [R,D] for forward (worker, handle) from the section's gate-weighted upstream rows [R,D], adding the weight gradients into the worker's buffer.</summary>
    public float[] Backward(int worker, long handle, TrainingSection section)
    {
        var dys = section.Data;
        if (!_pending.Remove((worker, handle), out var saved))
            throw new ArgumentException($"ExpertBank {Bank.Name}: no forward {handle} of worker {worker} waits for its backward.");
        var (tape, xs, ys) = saved;
        if (dys.Length != ys.Length)
        {
            Release(tape);
            throw new ArgumentException($"ExpertBank {Bank.Name}: {dys.Length} upstream values for {ys.RowCount} rows of width {Bank.Dim}.");
        }
        // The expert FFN overwrites a lazily zeroed gradient, so each backward leaves exactly its own rows' gradients.
        Arena.ZeroGrad();
        tape.Backward(ys, dys);
        var dxs = xs.Grad!.Span.ToArray();
        if (!_perWorker.TryGetValue(worker, out var sum)) _perWorker[worker] = sum = new float[Arena.Length];
        if (_contributed.Add(worker)) Array.Clear(sum);
        TensorPrimitives.Add(sum, Arena.Grads, sum);
        Release(tape);
        return dxs;
    }

    /// <summary>The arena's gradients = Σ over this step's workers, in worker order; returns their squared L2 norm.</summary>
    public double Reduce()
    {
        if (_pending.Count > 0)
            throw new InvalidOperationException($"ExpertBank {Bank.Name}: {_pending.Count} forwards still wait for their backward; a step reduces after every backward.");
        var grads = Arena.Grads;
        Array.Clear(grads);
        foreach (var (worker, sum) in _perWorker)
            if (_contributed.Contains(worker)) TensorPrimitives.Add(grads, sum, grads);
        double sumSq = 0;
        foreach (var p in Arena.Parameters) sumSq += TensorPrimitives.SumOfSquares(grads.AsSpan(p.Offset, p.Length));
        return sumSq;
    }

    /// <summary>Clip scale, then AdamW step number <paramref name="stepsBefore"/> + 1, then the step's gradients are forgotten.</summary>
    public void Apply(long stepsBefore, float lr, float scale)
    {
        if (Optimizer.Steps != stepsBefore)
            throw new InvalidOperationException($"ExpertBank {Bank.Name}: the caller is at step {stepsBefore}, this shard's optimizer at {Optimizer.Steps}; its moments belong to another run.");
        var grads = Arena.Grads;
        if (scale != 1) TensorPrimitives.Multiply(grads, scale, grads);
        Optimizer.Step(lr);
        _contributed.Clear();
        Array.Clear(grads);
    }

    /// <summary>The experts' weights, per parameter.</summary>
    public ShardWeights Weights()
    {
        var ps = Parameters(Bank);
        var values = new float[ps.Length][];
        for (int i = 0; i < ps.Length; i++) values[i] = ps[i].Value.Span.ToArray();
        return new ShardWeights([.. Experts], values);
    }

    /// <summary>A bank's parameters in registration order: W1, W3 (SwiGLU), W2, then B1, B3, B2 when it has biases.</summary>
    internal static Parameter[] Parameters(ExpertBank bank)
    {
        var list = new List<Parameter> { bank.W1 };
        if (bank.W3 is not null) list.Add(bank.W3);
        list.Add(bank.W2);
        if (bank.B1 is not null) list.Add(bank.B1);
        if (bank.B3 is not null) list.Add(bank.B3);
        if (bank.B2 is not null) list.Add(bank.B2);
        return [.. list];
    }

    /// <summary>[E_s+1] offsets of the call's rows in the shard's bank; the experts must be the shard's, ascending.</summary>
    private int[] Offsets(int[] experts, int[] rows)
    {
        if (experts.Length != rows.Length)
            throw new ArgumentException($"ExpertBank {Bank.Name}: {experts.Length} experts with {rows.Length} row counts.");
        var offsets = new int[Experts.Length + 1];
        int previous = -1;
        for (int i = 0; i < experts.Length; i++)
        {
            if (!_local.TryGetValue(experts[i], out int j) || j <= previous || rows[i] < 0)
                throw new ArgumentException($"ExpertBank {Bank.Name}: expert {experts[i]} with {rows[i]} rows; this shard trains experts [{string.Join(", ", Experts)}], ascending, with non-negative rows.");
            offsets[j + 1] = rows[i];
            previous = j;
        }
        for (int j = 0; j < Experts.Length; j++) offsets[j + 1] += offsets[j];
        return offsets;
    }

    private void Release(Tape tape)
    {
        tape.Reset();
        _tapes.Push(tape);
    }
}
