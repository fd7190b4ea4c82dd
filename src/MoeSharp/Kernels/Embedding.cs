namespace MoeSharp.Kernels;

/// <summary>Row gather from a table [V,D] and its adjoint, the scatter-add of row gradients back into the table.</summary>
internal static class Embedding
{
    /// <summary>output[r,:] = table[ids[r],:].</summary>
    public static void Gather(ReadOnlySpan<float> table, ReadOnlySpan<int> ids, Span<float> output, int d)
    {
        int vocab = table.Length / d;
        for (int r = 0; r < ids.Length; r++)
        {
            int id = ids[r];
            if ((uint)id >= (uint)vocab)
                throw new ArgumentOutOfRangeException(nameof(ids), $"Token id {id} at position {r} is outside the vocabulary [0, {vocab}).");
            table.Slice(id * d, d).CopyTo(output.Slice(r * d, d));
        }
    }

    /// <summary>dtable[ids[r],:] += dout[r,:], rows visited in order so repeated ids sum deterministically.</summary>
    public static void ScatterAdd(ReadOnlySpan<float> dout, ReadOnlySpan<int> ids, Span<float> dtable, int d)
    {
        for (int r = 0; r < ids.Length; r++)
            TensorPrimitives.Add(dtable.Slice(ids[r] * d, d), dout.Slice(r * d, d), dtable.Slice(ids[r] * d, d));
    }
}
