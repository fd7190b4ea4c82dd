using System.Buffers;
using MoeSharp.Autograd;
using MoeSharp.Experts;
using MoeSharp.Formats;
using MoeSharp.Kernels;
using MoeSharp.Tensors;

namespace MoeSharp.Dispatch;

/// <summary>
/// The sparse expert FFN over stored expert weights (<see cref="Nn.StoredWeight"/>, one matrix per expert), for
/// inference: the same result as <see cref="ExpertFfnOp"/> computed with the stored matrices. Rows are grouped per
/// expert by the <see cref="Assignment"/>, and each expert that received rows multiplies all of them at once, so
/// its bytes are read once per call: rows of a prompt (<see cref="Tape.PromptRows"/>) through
/// <see cref="QuantizedMatrix.Prefill"/>, the others through the matrix-vector arithmetic, so a row's result does not
/// depend on the rows beside it. Each product spreads over the worker threads itself.
/// </summary>
/// <remarks>Dimensions: T tokens, D model width, H expert width, R placed rows.</remarks>
internal static class StoredExpertFfn
{
    /// <summary>y [T,D] = Σ over each token's pairs of weight·expert(x), with the bank's weights stored; nothing is recorded.</summary>
    public static Tensor StoredExpertFfnForward(this Tape tape, Tensor x, Assignment a, Tensor weights, ExpertBank bank)
    {
        int d = bank.Dim, h = bank.Hidden;
        Shapes.LastDim("StoredExpertFfn", x, d, "input");
        if (x.RowCount != a.Tokens) throw new ArgumentException($"StoredExpertFfn: input {Shapes.Format(x.Shape)} has {x.RowCount} rows; the assignment has {a.Tokens} tokens.");
        if (weights.Length != a.Pairs) throw new ArgumentException($"StoredExpertFfn: {weights.Length} gate weights for {a.Pairs} pairs.");
        var w1 = bank.W1.Stored;
        var w3 = bank.W3?.Stored;
        var w2 = bank.W2.Stored;
        if (w1 is null || w2 is null || (bank.W3 is not null && w3 is null))
            throw new InvalidOperationException($"ExpertBank {bank.Name}: either every expert weight is stored or none is; W1 {Describe(w1)}, W3 {(bank.W3 is null ? "absent" : Describe(w3))}, W2 {Describe(w2)}.");
        if (tape.IsRecording && (x.RequiresGrad || weights.RequiresGrad)) throw Tape.InferenceOnly(bank.W1.Name, w1.Format);
        if (a.Tokens == 1 && bank.Paged is null && MatVecGroup.Enabled) return DecodeForward(tape, x, a, weights, bank, w1, w3, w2);
        var b1 = bank.B1 is null ? default : bank.B1.Value.Span; // [E,H], empty without biases
        var b3 = bank.B3 is null ? default : bank.B3.Value.Span; // [E,H]
        var b2 = bank.B2 is null ? default : bank.B2.Value.Span; // [E,D]
        int rows = Math.Max(1, a.Placed);
        var xs = tape.Allocate(rows, d).Span;  // [R,D] gathered inputs
        var g = tape.Allocate(rows, h).Span;   // [R,H] w1 pre-activation
        var u = tape.Allocate(rows, h).Span;   // [R,H] w3 branch
        var act = tape.Allocate(rows, h).Span; // [R,H] activation, input of w2
        var ys = tape.Allocate(rows, d).Span;  // [R,D] expert outputs, before gating
        var xv = x.Span;
        // Prompt flags per placed row, from its token's: a row of a prompt takes the prefill path in every expert.
        var tokenPrompt = tape.PromptMask(a.Tokens); // [T] or empty
        bool[]? rowPrompt = tokenPrompt.IsEmpty ? null : ArrayPool<bool>.Shared.Rent(rows); // [R]
        if (rowPrompt is not null)
            for (int r = 0; r < a.Placed; r++) rowPrompt[r] = tokenPrompt[a.RowToken[r]];
        for (int e = 0; e < a.Experts; e++)
        {
            int r0 = a.ExpertOffsets[e], n = a.Load(e);
            if (n == 0) continue;
            for (int r = r0; r < r0 + n; r++) xv.Slice(a.RowToken[r] * d, d).CopyTo(xs.Slice(r * d, d));
            var rx = xs.Slice(r0 * d, n * d);
            var rg = g.Slice(r0 * h, n * h);
            var ract = act.Slice(r0 * h, n * h);
            var rys = ys.Slice(r0 * d, n * d);
            // A paged expert stays pinned in the cache while it computes; a resident one is used as stored.
            using var lease = bank.Paged is { } paged ? paged.Acquire(e) : default(ExpertLease?);
            var e1 = lease?.W1 ?? w1[e];
            var e3 = lease is { } l ? l.W3 : w3?[e];
            var e2 = lease?.W2 ?? w2[e];
            var prompt = rowPrompt is null ? default : rowPrompt.AsSpan(r0, n); // [n] or empty
            e1.MatMul(rx, rg, n, prompt);
            AddRows(rg, n, b1.IsEmpty ? default : b1.Slice(e * h, h));
            if (bank.Activation == ExpertActivation.SwiGlu)
            {
                var ru = u.Slice(r0 * h, n * h);
                e3!.MatMul(rx, ru, n, prompt);
                AddRows(ru, n, b3.IsEmpty ? default : b3.Slice(e * h, h));
                if (bank.Clamp is { } c) Activations.ClampedSwiGluForward(rg, ru, ract, c.Alpha, c.Limit);
                else Activations.SwiGluForward(rg, ru, ract);
            }
            else
            {
                Activations.GeluForward(rg, ract);
            }
            e2.MatMul(ract, rys, n, prompt);
            AddRows(rys, n, b2.IsEmpty ? default : b2.Slice(e * d, d));
        }
        if (rowPrompt is not null) ArrayPool<bool>.Shared.Return(rowPrompt);
        var y = tape.Output(false, x.RowCount, d);
        a.Combine(ys, weights.Span, y.Span, d);
        return y;
    }

    [ThreadStatic] private static QuantizedMatrix[]? t_matrices; // [2·placed]

    /// <summary>
    /// Decode (one token, so each selected expert has one row): every selected expert's W1 and W3 in one parallel
    /// loop over the one x, then each expert's bias and activation, then every W2 in one loop; 2 loops instead of 3
    /// per expert. <see cref="MatVecGroup"/> computes each output as that matrix's MatVec does, and the biases,
    /// activations and combine run per expert on the same slices as the general path, so the result is bitwise its.
    /// A paged bank keeps the general path, which pins one expert at a time.
    /// </summary>
    private static Tensor DecodeForward(Tape tape, Tensor x, Assignment a, Tensor weights, ExpertBank bank,
        Nn.StoredWeight w1, Nn.StoredWeight? w3, Nn.StoredWeight w2)
    {
        int d = bank.Dim, h = bank.Hidden, k = a.Placed;
        bool glu = bank.Activation == ExpertActivation.SwiGlu;
        var y = tape.Output(false, 1, d);
        var yv = y.Span; // [1,D]
        yv.Clear();
        if (k == 0) return y;
        var b1 = bank.B1 is null ? default : bank.B1.Value.Span; // [E,H], empty without biases
        var b3 = bank.B3 is null ? default : bank.B3.Value.Span; // [E,H]
        var b2 = bank.B2 is null ? default : bank.B2.Value.Span; // [E,D]
        if (t_matrices is null || t_matrices.Length < 2 * k) t_matrices = new QuantizedMatrix[Math.Max(2 * k, 16)];
        var matrices = t_matrices;
        Span<int> experts = stackalloc int[k]; // [R] the expert of each placed row
        for (int e = 0; e < a.Experts; e++)
            if (a.Load(e) == 1) experts[a.ExpertOffsets[e]] = e;
        int up = glu ? 2 * k : k;
        var gu = tape.Allocate(up, h).Span; // [2R,H] with SwiGLU, else [R,H]: w1 pre-activations, then the w3 branches
        var act = tape.Allocate(k, h).Span; // [R,H] activation, input of w2
        var ys = tape.Allocate(k, d).Span; // [R,D] expert outputs, before gating
        try
        {
            for (int r = 0; r < k; r++)
            {
                matrices[r] = w1[experts[r]];
                if (glu) matrices[k + r] = w3![experts[r]];
            }
            MatVecGroup.MatVec(matrices.AsSpan(0, up), x.Span, 1, gu);
            for (int r = 0; r < k; r++)
            {
                int e = experts[r];
                var rg = gu.Slice(r * h, h);
                var ract = act.Slice(r * h, h);
                AddRows(rg, 1, b1.IsEmpty ? default : b1.Slice(e * h, h));
                if (glu)
                {
                    var ru = gu.Slice((k + r) * h, h);
                    AddRows(ru, 1, b3.IsEmpty ? default : b3.Slice(e * h, h));
                    if (bank.Clamp is { } c) Activations.ClampedSwiGluForward(rg, ru, ract, c.Alpha, c.Limit);
                    else Activations.SwiGluForward(rg, ru, ract);
                }
                else
                {
                    Activations.GeluForward(rg, ract);
                }
                matrices[r] = w2[e];
            }
            MatVecGroup.MatVec(matrices.AsSpan(0, k), act, k, ys);
        }
        finally
        {
            // The matrices belong to the model: hold no reference past the call.
            Array.Clear(matrices, 0, up);
        }
        for (int r = 0; r < k; r++) AddRows(ys.Slice(r * d, d), 1, b2.IsEmpty ? default : b2.Slice(experts[r] * d, d));
        a.CombineToken(0, ys, weights.Span, yv);
        return y;
    }

    private static string Describe(Nn.StoredWeight? w) => w is null ? "fp32" : w.Format.ToString();

    /// <summary>Adds <paramref name="bias"/> [width] to each of the <paramref name="n"/> rows of <paramref name="rows"/>; nothing when empty.</summary>
    private static void AddRows(Span<float> rows, int n, ReadOnlySpan<float> bias)
    {
        if (bias.IsEmpty) return;
        int width = bias.Length;
        for (int r = 0; r < n; r++) TensorPrimitives.Add(rows.Slice(r * width, width), bias, rows.Slice(r * width, width));
    }
}
