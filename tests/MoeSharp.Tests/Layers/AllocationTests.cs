using MoeSharp.Autograd;
using MoeSharp.Kernels;
using MoeSharp.Layers;
using MoeSharp.Models;
using MoeSharp.Nn;
using MoeSharp.Tensors;

namespace MoeSharp.Tests.Layers;

/// <summary>
/// Bytes allocated by training steps 3 to 10, after the tape's pool has warmed up, measured with
/// <see cref="GC.GetAllocatedBytesForCurrentThread"/> on one worker thread: with more threads each parallel loop
/// hands its job object to the pool, and that allocation is Workers' own, not the MoE path's.
/// Not zero yet; the bounds are the measured bytes (deterministic: 10,768 per layer step, 32,752 per LM step on
/// 2026-11-28) rounded up, and every remaining allocation is one of:
/// <list type="bullet">
/// <item>a Node object per recorded op (17 per layer step, 58 per LM step) and a Tensor object with its shape
/// arrays per tape rent (Autograd/Tape.cs, Tensors/TensorPool.cs): the float storage itself is pooled;</item>
/// <item>the routing index arrays that live until backward: top-k values and indices [T·K], token offsets [T+1],
/// and Assignment's expert offsets [E+1], row→pair, pair→row and row→token [T·K], plus the work-item arrays;</item>
/// <item>what the step hands to its caller: MoeResult, RouterOutput, the AuxLosses dictionary and RoutingStats
/// with its [E] and [E·E] arrays.</item>
/// </list>
/// A smaller bound needs pooled tape nodes and an MoE workspace whose lease ends at Tape.Reset.
/// </summary>
public class AllocationTests
{
    private static long StepBytes(Action step)
    {
        using var serial = Workers.Limit(1);
        step();
        step();
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int s = 3; s <= 10; s++) step();
        return (GC.GetAllocatedBytesForCurrentThread() - before) / 8;
    }

    [Fact]
    public void MoeLayerStepAllocatesWithinTheStatedBound()
    {
        var arena = new ParameterArena();
        var layer = new MoeLayer(new MoeOptions { Dim = 16, Experts = 4, TopK = 2, ExpertHidden = 32, InitStd = 0.3f }, arena, "moe");
        arena.Build(1);
        var x = Numerics.RandomTensor(2, 1f, 64, 16); // [T,D]
        var c = Numerics.Random(64 * 16, 3);           // [T,D] fixed upstream weights
        var tape = new Tape();
        int nodes = 0;
        long bytes = StepBytes(() =>
        {
            tape.Reset();
            var r = layer.Forward(tape, x);
            tape.Backward(tape.Add(tape.WeightedSum(r.Output, c), r.AuxLoss!));
            nodes = tape.Nodes.Count;
        });
        Assert.True(bytes <= 11_000, $"MoE layer: {bytes} bytes per step ({nodes} tape nodes); the stated bound is 11,000.");
    }

    [Fact]
    public void TinyLmStepAllocatesWithinTheStatedBound()
    {
        var model = new MoeTransformer(Presets.Get("mixtral", 23) with { DModel = 16, Heads = 2, Layers = 2, DFF = 32, Context = 12 }, seed: 3);
        var ids = new int[2 * 12];
        for (int i = 0; i < ids.Length; i++) ids[i] = (i * 7) % 23;
        var targets = new int[ids.Length];
        for (int i = 0; i < ids.Length; i++) targets[i] = (ids[i] + 1) % 23;
        var tape = new Tape();
        int nodes = 0;
        long bytes = StepBytes(() =>
        {
            tape.Reset();
            model.Arena.ZeroGrad();
            var (loss, _, _) = model.Loss(tape, ids, targets, 2, training: true, step: 5);
            tape.Backward(loss);
            nodes = tape.Nodes.Count;
        });
        Assert.True(bytes <= 33_000, $"tiny LM: {bytes} bytes per step ({nodes} tape nodes); the stated bound is 33,000.");
    }
}
