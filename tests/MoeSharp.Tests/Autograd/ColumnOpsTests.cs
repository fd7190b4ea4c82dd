using MoeSharp.Tensors;

namespace MoeSharp.Tests.Autograd;

/// <summary>The column slice against finite differences (ε = 1e-2) and against hand-placed values.</summary>
public class ColumnOpsTests
{
    [Fact]
    public void ColumnsGradient() => GradCheck.Run("Columns", (t, x) => t.Columns(x[0], 2, 3),
        [Numerics.RandomTensor(1, 1, 4, 6)], eps: 1e-2f, rtol: 1e-3f, atol: 1e-4f);

    [Fact]
    public void ColumnsThenConcatRebuildsTheInput()
    {
        var tape = new MoeSharp.Autograd.Tape();
        var x = Tensor.FromArray([1f, 2f, 3f, 4f, 5f, 6f], 2, 3);
        var middle = tape.Columns(x, 1, 1);
        Assert.Equal([2, 1], middle.Shape.ToArray());
        Assert.Equal([2f, 5f], middle.ToArray());
        Assert.Equal(x.ToArray(), tape.Concat([tape.Columns(x, 0, 1), middle, tape.Columns(x, 2, 1)]).ToArray());
    }

    [Fact]
    public void ColumnsOutsideTheInputAreRefused()
    {
        var ex = Assert.Throws<ArgumentException>(() => new MoeSharp.Autograd.Tape().Columns(Tensor.FromArray([1f, 2f], 1, 2), 1, 2));
        Assert.Contains("[1, 3) is outside the input's 2 columns", ex.Message);
    }
}
