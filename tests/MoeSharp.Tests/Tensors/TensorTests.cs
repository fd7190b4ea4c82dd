using MoeSharp.Tensors;

namespace MoeSharp.Tests.Tensors;

public class TensorTests
{
    [Fact]
    public void RowViewsShareStorageWithTheirParent()
    {
        var t = Tensor.FromArray(Enumerable.Range(0, 12).Select(i => (float)i).ToArray(), 4, 3);
        var rows = t.Rows(1, 2); // rows 1 and 2: elements 3..8
        Assert.Equal([2, 3], rows.Shape.ToArray());
        Assert.Equal(3, rows.Offset);
        Assert.Equal([3f, 4, 5, 6, 7, 8], rows.ToArray());
        rows[0] = -1;
        Assert.Equal(-1, t[3]);
        var flat = rows.Reshape(6);
        flat[5] = -2;
        Assert.Equal(-2, t[8]);
    }

    [Fact]
    public void ReshapeRefusesATensorInTheGraphAndAWrongCount()
    {
        var t = new Tensor(2, 3) { RequiresGrad = true, Name = "h" };
        var detach = Assert.Throws<InvalidOperationException>(() => t.Reshape(6));
        Assert.Contains("Tensor[2,3] h", detach.Message);
        var count = Assert.Throws<ArgumentException>(() => new Tensor(2, 3).Reshape(4, 2));
        Assert.Contains("[2,3] (6 elements) to [4,2]", count.Message);
    }

    [Fact]
    public void OutOfRangeAccessNamesTheIndexAndShape()
    {
        var t = new Tensor(2, 2);
        var ex = Assert.Throws<IndexOutOfRangeException>(() => t[4]);
        Assert.Contains("Index 4", ex.Message);
        Assert.Contains("[2,2]", ex.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => t.Rows(1, 2));
        var fit = Assert.Throws<ArgumentException>(() => new Tensor(new float[5], 2, 2, 2));
        Assert.Contains("offset 2", fit.Message);
    }

    [Fact]
    public void ShapeCountRejectsNegativeAndOversizedShapes()
    {
        Assert.Equal(24, Shapes.Count([2, 3, 4]));
        Assert.Equal(1, Shapes.Count([]));
        Assert.Contains("negative", Assert.Throws<ArgumentException>(() => Shapes.Count([2, -1])).Message);
        Assert.Contains("more than", Assert.Throws<ArgumentException>(() => Shapes.Count([1 << 16, 1 << 16])).Message);
    }

    [Fact]
    public void ThePoolReusesReturnedStorageOfTheSameLengthButNotViews()
    {
        var pool = new TensorPool();
        var a = pool.Rent(4, 8);
        pool.Return(a.Rows(0, 2)); // a view: ignored
        pool.Return(a);
        var b = pool.Rent(8, 4); // same element count, another shape
        Assert.Same(a.Storage, b.Storage);
        Assert.Equal([8, 4], b.Shape.ToArray());
        var c = pool.Rent(8, 4); // the pool is empty again
        Assert.NotSame(b.Storage, c.Storage);
    }
}
