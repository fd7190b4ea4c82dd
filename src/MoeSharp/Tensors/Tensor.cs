namespace MoeSharp.Tensors;

/// <summary>
/// A row-major float32 tensor: a shape over a window of a flat array. Views (<see cref="Reshape"/>,
/// <see cref="Rows"/>) share storage; a tensor rented from a <see cref="TensorPool"/> is valid until it is returned.
/// </summary>
public sealed class Tensor
{
    private readonly int[] _shape;

    /// <summary>Wraps <paramref name="storage"/>[offset, offset + count(shape)) without copying.</summary>
    public Tensor(float[] storage, int offset, params int[] shape)
    {
        ArgumentNullException.ThrowIfNull(storage);
        _shape = (int[])shape.Clone();
        Length = Shapes.Count(_shape);
        if (offset < 0 || offset + (long)Length > storage.Length)
            throw new ArgumentException(
                $"A tensor of shape {Shapes.Format(_shape)} at offset {offset} does not fit storage of {storage.Length} elements.");
        Storage = storage;
        Offset = offset;
    }

    /// <summary>A new zero-filled tensor.</summary>
    public Tensor(params int[] shape) : this(new float[Shapes.Count(shape)], 0, shape) { }

    /// <summary>The flat array this tensor is a window of; views share it.</summary>
    public float[] Storage { get; }
    /// <summary>Index of the first element in <see cref="Storage"/>.</summary>
    public int Offset { get; }
    /// <summary>Element count: the product of the shape.</summary>
    public int Length { get; }
    /// <summary>Dimensions, outermost first (row-major).</summary>
    public ReadOnlySpan<int> Shape => _shape;
    /// <summary>Number of dimensions (0 for a scalar).</summary>
    public int Rank => _shape.Length;

    /// <summary>Gradient, when this tensor takes part in autograd.</summary>
    public Tensor? Grad { get; set; }

    /// <summary>Whether autograd records ops on this tensor and gives it a gradient.</summary>
    public bool RequiresGrad { get; set; }

    /// <summary>Optional name, used in error messages (for example the layer that produced a NaN).</summary>
    public string? Name { get; set; }

    /// <summary>The elements, row-major, as a span over <see cref="Storage"/>.</summary>
    public Span<float> Span => Storage.AsSpan(Offset, Length);

    /// <summary>Size of dimension <paramref name="axis"/>; negative counts from the end.</summary>
    public int Dim(int axis) => _shape[axis < 0 ? _shape.Length + axis : axis];

    /// <summary>Number of rows when viewed as a matrix whose last dimension is the row length.</summary>
    public int RowCount => Rank == 0 ? 1 : Length / Math.Max(1, _shape[^1]);

    /// <summary>Element <paramref name="i"/> of the flat row-major layout; out of range throws naming the shape.</summary>
    public float this[int i]
    {
        get => Storage[Offset + CheckIndex(i)];
        set => Storage[Offset + CheckIndex(i)] = value;
    }

    private int CheckIndex(int i) => (uint)i < (uint)Length ? i
        : throw new IndexOutOfRangeException($"Index {i} is outside a tensor of shape {Shapes.Format(_shape)}.");

    /// <summary>
    /// A view with another shape and the same element count. The view is outside autograd: reshaping a tensor
    /// that carries gradients would silently cut the graph, so that is an error.
    /// </summary>
    public Tensor Reshape(params int[] shape)
    {
        if (RequiresGrad) throw new InvalidOperationException($"Reshaping {this} would detach it from autograd; reshape its data before it takes part in an op.");
        if (Shapes.Count(shape) != Length)
            throw new ArgumentException($"Cannot reshape {Shapes.Format(_shape)} ({Length} elements) to {Shapes.Format(shape)}.");
        return new Tensor(Storage, Offset, shape);
    }

    /// <summary>A view of rows [start, start + count) along the first dimension.</summary>
    public Tensor Rows(int start, int count)
    {
        if (Rank == 0) throw new InvalidOperationException("A scalar tensor has no rows.");
        if (start < 0 || count < 0 || start + count > _shape[0])
            throw new ArgumentOutOfRangeException(nameof(start), $"Rows [{start}, {start + count}) are outside {Shapes.Format(_shape)}.");
        var shape = (int[])_shape.Clone();
        shape[0] = count;
        int rowSize = _shape[0] == 0 ? 0 : Length / _shape[0];
        return new Tensor(Storage, Offset + start * rowSize, shape);
    }

    /// <summary>A copy with its own storage.</summary>
    public Tensor Clone()
    {
        var t = new Tensor(_shape);
        Span.CopyTo(t.Span);
        return t;
    }

    /// <summary>A copy of the elements, row-major.</summary>
    public float[] ToArray() => Span.ToArray();

    /// <summary>Wraps <paramref name="data"/> (no copy) as a tensor of <paramref name="shape"/>, whose element count must equal its length.</summary>
    public static Tensor FromArray(float[] data, params int[] shape)
    {
        if (Shapes.Count(shape) != data.Length)
            throw new ArgumentException($"Shape {Shapes.Format(shape)} needs {Shapes.Count(shape)} elements, got {data.Length}.");
        return new Tensor(data, 0, shape);
    }

    /// <summary>Shape and name, as used in error messages, e.g. <c>Tensor[4,8] h0</c>.</summary>
    public override string ToString() => $"Tensor{Shapes.Format(_shape)}{(Name is null ? "" : " " + Name)}";
}
