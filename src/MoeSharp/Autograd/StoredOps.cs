using MoeSharp.Formats;
using MoeSharp.Tensors;

namespace MoeSharp.Autograd;

/// <summary>
/// Inference-only ops over weights kept in a storage format (<see cref="QuantizedMatrix"/>): they have no backward,
/// so they refuse to run while the tape records gradients for their input.
/// </summary>
public sealed partial class Tape
{
    /// <summary>
    /// y [N,out] = x [N,in] · Wᵀ + b with W stored [out,in]: rows of a prompt (see <see cref="PromptRows"/>) through
    /// <see cref="QuantizedMatrix.Prefill"/>, the others through the matrix-vector arithmetic. Inference only.
    /// </summary>
    public Tensor StoredLinear(Tensor x, QuantizedMatrix w, Tensor? b = null, string? name = null)
    {
        int outF = w.Rows, inF = w.Cols;
        Shapes.LastDim("StoredLinear", x, inF, $"input (stored weight {name} [{outF}, {inF}] {w.Format})");
        if (b is not null && (b.Rank != 1 || b.Dim(0) != outF))
            throw new ArgumentException($"StoredLinear: bias has shape {Shapes.Format(b.Shape)}; expected [{outF}].");
        if (Tracks(x) || b is not null && Tracks(b)) throw InferenceOnly(name, w.Format);
        int n = x.RowCount;
        Span<int> shape = stackalloc int[x.Rank]; // x's shape with the last dimension replaced
        x.Shape.CopyTo(shape);
        shape[^1] = outF;
        var y = Output(false, shape);
        w.MatMul(x.Span, y.Span, n, PromptMask(n));
        if (b is not null)
            for (int r = 0; r < n; r++)
                TensorPrimitives.Add(y.Span.Slice(r * outF, outF), b.Span, y.Span.Slice(r * outF, outF));
        return y;
    }

    private bool[]? _promptRows; // [N] of the pass in progress, or null

    /// <summary>
    /// Marks which rows of the inference pass in progress belong to a prompt (a sequence bringing more than one
    /// token), until the returned scope is disposed: stored products run those rows through
    /// <see cref="QuantizedMatrix.Prefill"/> and the others through the matrix-vector arithmetic. A flag depends
    /// on the row's own sequence alone, so a sequence gets the same arithmetic batched or alone. Null: no prompt rows.
    /// </summary>
    internal PromptScope PromptRows(bool[]? rows)
    {
        var previous = _promptRows;
        _promptRows = rows;
        return new PromptScope(this, previous);
    }

    /// <summary>The prompt flags of an op over <paramref name="rows"/> rows: the pass's, when the op sees all its rows; else none.</summary>
    internal ReadOnlySpan<bool> PromptMask(int rows) => _promptRows is { } mask && mask.Length == rows ? mask : default;

    /// <summary>Restores the prompt flags in force before <see cref="PromptRows"/>.</summary>
    internal readonly struct PromptScope(Tape tape, bool[]? previous) : IDisposable
    {
        public void Dispose() => tape._promptRows = previous;
    }

    /// <summary>Rows of the stored table [V,D] picked by <paramref name="ids"/> [N], dequantized → [N,D]. Inference only: the output takes no gradient.</summary>
    public Tensor StoredEmbedding(QuantizedMatrix table, int[] ids, string? name = null)
    {
        int d = table.Cols;
        var y = Output(false, ids.Length, d);
        for (int i = 0; i < ids.Length; i++)
        {
            if ((uint)ids[i] >= (uint)table.Rows)
                throw new ArgumentOutOfRangeException(nameof(ids), $"Token id {ids[i]} at position {i} is outside the vocabulary [0, {table.Rows}).");
            table.DequantizeRow(ids[i], y.Span.Slice(i * d, d));
        }
        return y;
    }

    /// <summary>The error for an op over a stored weight on a tape that records gradients.</summary>
    internal static InvalidOperationException InferenceOnly(string? name, WeightFormat format) =>
        new($"Weight '{name}' is stored as {format} for inference, but the tape records gradients; run inference under Tape.NoGrad(), and train with fp32 weights.");
}
