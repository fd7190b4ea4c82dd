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
    /// y [N,out] = x [N,in] · Wᵀ + b with W stored [out,in]: one row through <see cref="QuantizedMatrix.MatVec(ReadOnlySpan{float}, Span{float})"/>
    /// (decode), more through <see cref="QuantizedMatrix.MatMul(ReadOnlySpan{float}, Span{float}, int)"/> (prefill). Inference only.
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
        if (n == 1) w.MatVec(x.Span, y.Span);
        else w.MatMul(x.Span, y.Span, n);
        if (b is not null)
            for (int r = 0; r < n; r++)
                TensorPrimitives.Add(y.Span.Slice(r * outF, outF), b.Span, y.Span.Slice(r * outF, outF));
        return y;
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
