namespace MoeSharp.Tensors;

/// <summary>
/// Reuses storage by exact length. A training step allocates the same activation sizes every step, so after the
/// first step every rent is served from the pool and the step allocates nothing.
/// </summary>
public sealed class TensorPool
{
    private readonly Dictionary<int, Stack<float[]>> _free = [];

    /// <summary>A tensor with uninitialised contents (left over from an earlier use).</summary>
    public Tensor Rent(params int[] shape)
    {
        int n = Shapes.Count(shape);
        float[] storage = _free.TryGetValue(n, out var stack) && stack.Count > 0
            ? stack.Pop()
            : GC.AllocateUninitializedArray<float>(n);
        return new Tensor(storage, 0, shape);
    }

    /// <summary>Gives storage back; the tensor and every view of it must not be used afterwards.</summary>
    public void Return(Tensor t)
    {
        if (t.Offset != 0 || t.Storage.Length != t.Length) return; // a view: its owner returns the storage
        if (!_free.TryGetValue(t.Length, out var stack)) _free[t.Length] = stack = new Stack<float[]>();
        stack.Push(t.Storage);
    }
}
