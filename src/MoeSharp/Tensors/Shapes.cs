namespace MoeSharp.Tensors;

/// <summary>Shape arithmetic and the checks that produce messages naming both shapes.</summary>
public static class Shapes
{
    /// <summary>Element count of <paramref name="shape"/>; throws on a negative dimension or more than <see cref="Array.MaxLength"/> elements.</summary>
    public static int Count(ReadOnlySpan<int> shape)
    {
        long n = 1;
        foreach (int d in shape)
        {
            if (d < 0) throw new ArgumentException($"Shape {Format(shape)} has a negative dimension.");
            n *= d;
            if (n > Array.MaxLength) throw new ArgumentException($"Shape {Format(shape)} has more than {Array.MaxLength} elements.");
        }
        return (int)n;
    }

    /// <summary>The shape as <c>[a,b,c]</c>, for error messages.</summary>
    public static string Format(ReadOnlySpan<int> shape) => "[" + string.Join(",", shape.ToArray()) + "]";

    /// <summary>Throws unless <paramref name="a"/> and <paramref name="b"/> have the same shape.</summary>
    public static void Same(string op, Tensor a, Tensor b)
    {
        if (!a.Shape.SequenceEqual(b.Shape))
            throw new ArgumentException($"{op}: shapes {Format(a.Shape)} and {Format(b.Shape)} must match.");
    }

    /// <summary>Throws unless the last dimension of <paramref name="t"/> is <paramref name="size"/>.</summary>
    public static void LastDim(string op, Tensor t, int size, string what)
    {
        if (t.Rank == 0 || t.Dim(-1) != size)
            throw new ArgumentException($"{op}: {what} has shape {Format(t.Shape)}; its last dimension must be {size}.");
    }
}
