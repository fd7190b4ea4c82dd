namespace MoeSharp.Tensors;

/// <summary>
/// Reuses storage by exact length, and the tensor object itself when the shape matches too. A training step rents
/// the same shapes every step, so after the first step every rent is served from the pool and the step allocates
/// neither storage nor tensor objects.
/// </summary>
public sealed class TensorPool
{
    private readonly Dictionary<int, List<Tensor>> _free = [];

    /// <summary>A tensor with uninitialised contents (left over from an earlier use).</summary>
    public Tensor Rent(params ReadOnlySpan<int> shape)
    {
        int n = Shapes.Count(shape);
        if (_free.TryGetValue(n, out var free) && free.Count > 0)
        {
            // Newest first; a tensor of the same shape is handed out again as is, so no wrapper is allocated.
            for (int i = free.Count - 1; i >= 0; i--)
            {
                var t = free[i];
                if (!t.Shape.SequenceEqual(shape)) continue;
                free[i] = free[^1];
                free.RemoveAt(free.Count - 1);
                t.Grad = null;
                t.RequiresGrad = false;
                t.Name = null;
                return t;
            }
            var storage = free[^1].Storage;
            free.RemoveAt(free.Count - 1);
            return new Tensor(storage, 0, shape.ToArray());
        }
        return new Tensor(GC.AllocateUninitializedArray<float>(n), 0, shape.ToArray());
    }

    /// <summary>Gives storage back; the tensor and every view of it must not be used afterwards.</summary>
    public void Return(Tensor t)
    {
        if (t.Offset != 0 || t.Storage.Length != t.Length) return; // a view: its owner returns the storage
        if (!_free.TryGetValue(t.Length, out var free)) _free[t.Length] = free = [];
        free.Add(t);
    }
}
