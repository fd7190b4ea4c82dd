using MoeSharp.Autograd;
using MoeSharp.Kernels;
using MoeSharp.Nn;
using MoeSharp.Tensors;

namespace MoeSharp.Tests.Nn;

public class ModuleTests
{
    [Fact]
    public void LinearEqualsXWTransposedPlusBiasFromTheTwin()
    {
        var arena = new ParameterArena();
        var linear = new Linear(arena, "fc", 7, 5, bias: true);
        arena.Build(3);
        linear.Bias!.Value.Span.Fill(0.25f);
        var x = Numerics.RandomTensor(1, 1, 4, 7);
        var y = linear.Forward(new Tape(), x);
        var twin = new float[4 * 5];
        Gemm.MultiplyReference(x.Span, linear.Weight.Value.Span, twin, 4, 5, 7, transB: true);
        for (int i = 0; i < twin.Length; i++) twin[i] += 0.25f;
        Numerics.Close(twin, y.Span, 1e-6f, 1e-6f, "linear");
    }

    [Fact]
    public void ArenaViewsShareTheFlatBuffers()
    {
        var arena = new ParameterArena();
        var a = arena.Add("a", [2, 3], Init.Ones);
        var b = arena.Add("b", [4], Init.Constant(2));
        arena.Build(0);
        Assert.Equal(10, arena.Length);
        Assert.Equal([1f, 1, 1, 1, 1, 1, 2, 2, 2, 2], arena.Values);
        b.Value.Grad![1] = 5;
        Assert.Equal(5f, arena.Grads[7]);
        Assert.Throws<InvalidOperationException>(() => arena.Add("c", [1], Init.Zeros));
        Assert.Same(a, arena["a"]);
    }

    [Fact]
    public void DuplicateParameterNameIsAnError()
    {
        var arena = new ParameterArena();
        arena.Add("w", [1], Init.Zeros);
        var ex = Assert.Throws<ArgumentException>(() => arena.Add("w", [2], Init.Zeros));
        Assert.Contains("'w'", ex.Message);
    }

    [Fact]
    public void ShapeMismatchNamesBothShapes()
    {
        var ex = Assert.Throws<ArgumentException>(() => new Tape().Add(new Tensor(2, 3), new Tensor(3, 2)));
        Assert.Contains("[2,3]", ex.Message);
        Assert.Contains("[3,2]", ex.Message);
        ex = Assert.Throws<ArgumentException>(() => new Tape().Linear(new Tensor(2, 3), new Tensor(4, 5)));
        Assert.Contains("[4,5]", ex.Message);
    }
}
