using MoeSharp.Autograd;
using MoeSharp.Dispatch;
using MoeSharp.Layers;
using MoeSharp.Nn;
using MoeSharp.Tensors;

namespace MoeSharp.Tests.Dispatch;

public class MoeWorkspaceTests
{
    private static readonly MoeOptions Options = new()
    {
        Dim = 12, Experts = 4, TopK = 2, ExpertHidden = 20, InitStd = 0.4f, CapacityFactor = 0.75f, ZLossCoef = 0.01f,
    };

    /// <summary>
    /// Two forwards of one layer on one tape before Reset: if the second reused the first's sort buffers, the first's
    /// backward would read the second's rows and its gradients would be wrong by O(1). Reference: each forward on a
    /// tape of its own. Tolerance rtol 1e-5, atol 1e-6: the weight gradients sum the two contributions in another
    /// order; the input gradients follow the same ops in the same order.
    /// </summary>
    [Fact]
    public void TwoForwardsOnOneTapeBeforeResetGiveTheGradientsOfSeparateTapes()
    {
        var arena = new ParameterArena();
        var layer = new MoeLayer(Options, arena, "moe");
        arena.Build(5);
        var x1 = Numerics.RandomTensor(7, 1f, 20, 12); // [T,D]
        var x2 = Numerics.RandomTensor(8, 1f, 20, 12); // [T,D] same T: a workspace of the same size would fit
        var c1 = Numerics.Random(20 * 12, 9);           // [T,D] upstream weights
        var c2 = Numerics.Random(20 * 12, 10);          // [T,D]
        x1.RequiresGrad = x2.RequiresGrad = true;

        Tensor Loss(Tape tape, Tensor x, float[] c)
        {
            var r = layer.Forward(tape, x);
            return tape.Add(tape.WeightedSum(r.Output, c), r.AuxLoss!);
        }

        var separate = new float[arena.Grads.Length];
        var dx1 = new float[x1.Length];
        var dx2 = new float[x2.Length];
        foreach (var (x, c, dx) in new[] { (x1, c1, dx1), (x2, c2, dx2) })
        {
            var alone = new Tape();
            alone.Backward(Loss(alone, x, c));
            x.Grad!.Span.CopyTo(dx);
            alone.Reset();
        }
        arena.Grads.CopyTo(separate, 0);
        arena.ZeroGrad();

        var tape = new Tape();
        var both = tape.Add(Loss(tape, x1, c1), Loss(tape, x2, c2));
        tape.Backward(both);
        Numerics.Close(dx1, x1.Grad!.Span, 1e-5f, 1e-6f, "dx of the first forward");
        Numerics.Close(dx2, x2.Grad!.Span, 1e-5f, 1e-6f, "dx of the second forward");
        Numerics.Close(separate, arena.Grads, 1e-5f, 1e-6f, "parameter gradients");
    }

    [Fact]
    public void AWorkspaceIsLeasedUntilItsTapeResetsAndOnlyWhileRecording()
    {
        MoeWorkspace[] pool = [];
        var tape = new Tape();
        var first = MoeWorkspace.Rent(ref pool, tape, 8, 4, 16);
        var second = MoeWorkspace.Rent(ref pool, tape, 8, 4, 16);
        Assert.NotSame(first, second);
        tape.Reset();
        Assert.Same(first, MoeWorkspace.Rent(ref pool, tape, 8, 4, 16));
        Assert.Same(second, MoeWorkspace.Rent(ref pool, tape, 8, 4, 16));
        Assert.Equal(2, pool.Length);

        var inference = new Tape();
        using (inference.NoGrad())
        {
            var free = MoeWorkspace.Rent(ref pool, inference, 8, 4, 16);
            Assert.Same(free, MoeWorkspace.Rent(ref pool, inference, 8, 4, 16)); // nothing reads it after the forward
        }
        // Tapes dropped without Reset keep their leases, but the pool keeps only the newest few.
        for (int i = 0; i < 20; i++) MoeWorkspace.Rent(ref pool, new Tape(), 8, 4, 16);
        Assert.True(pool.Length <= 5, $"{pool.Length} workspaces kept");
    }
}
