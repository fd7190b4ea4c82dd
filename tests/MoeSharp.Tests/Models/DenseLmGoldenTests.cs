using MoeSharp.Models;
using MoeSharp.Autograd;
using MoeSharp.IO;
using MoeSharp.Nn;
using MoeSharp.Training;

namespace MoeSharp.Tests.Models;

/// <summary>
/// The dense LM against an independent plain-PyTorch implementation (gen_dense_lm.py beside this file, run with
/// Debian's torch 1.13 in fp32): logits, loss, every parameter gradient, and 20 AdamW steps. fp32 with a different
/// summation order; the generator measured its own fp32-vs-fp64 drift at ≤ 1.2e-7 on the loss and ≤ 5.4e-7 of
/// each gradient's scale, so the tolerances below leave a margin of 10-100× while a real bug moves things by ≥ 1e-3.
/// </summary>
public class DenseLmGoldenTests
{
    private static (MoeTransformer Model, SafetensorsFile Golden, int[] Input, int[] Target, int Batch) Load()
    {
        var golden = SafetensorsFile.Open(Path.Combine(TestPaths.RepoRoot, "tests", "MoeSharp.Tests", "Golden", "dense_lm.safetensors"));
        var m = golden.Metadata;
        var config = new ModelConfig
        {
            Vocab = int.Parse(m["V"]), DModel = int.Parse(m["D"]), Layers = int.Parse(m["L"]), Heads = int.Parse(m["NH"]),
            DFF = int.Parse(m["F"]), Context = int.Parse(m["T"]), NormEps = float.Parse(m["eps"]), RopeTheta = float.Parse(m["theta"]),
        };
        var model = new MoeTransformer(config);
        using (var source = SafetensorsModel.Open(golden.Path)) ModelStore.Load(model.Arena, source);
        return (model, golden, golden.ReadInt32("input"), golden.ReadInt32("target"), int.Parse(m["B"]));
    }

    [Fact]
    public void LogitsLossAndGradientsMatchPyTorch()
    {
        var (model, golden, input, target, batch) = Load();
        using var _ = golden;
        var tape = new Tape();
        var logits = model.Forward(tape, input, batch).Logits;
        Numerics.Close(golden.ReadFloat32("logits"), logits.Span, 0, 1e-5f, "logits");
        var loss = tape.CrossEntropy(logits, target);
        Assert.Equal(golden.ReadFloat32("loss")[0], loss[0], 1e-5f);
        tape.Backward(loss);
        foreach (var p in model.Arena.Parameters)
        {
            var expected = golden.ReadFloat32("grad." + p.Name);
            float scale = expected.Max(MathF.Abs);
            Numerics.Close(expected, p.Value.Grad!.Span, 0, 1e-4f * scale, "grad." + p.Name);
        }
    }

    [Fact]
    public void TwentyAdamWStepsFollowPyTorch()
    {
        var (model, golden, input, target, batch) = Load();
        using var _ = golden;
        var expected = golden.ReadFloat32("adamw_losses");
        var opt = new AdamW(model.Arena, 0.9f, 0.999f, 1e-8f, weightDecay: 0.1f, decayAll: true);
        var tape = new Tape();
        var losses = new float[expected.Length];
        for (int step = 0; step < expected.Length; step++)
        {
            model.Arena.ZeroGrad();
            var loss = model.Loss(tape, input, target, batch).Loss;
            losses[step] = loss[0];
            if (step < expected.Length - 1)
            {
                tape.Backward(loss);
                opt.Step(1e-2f);
            }
            tape.Reset();
        }
        // The losses fall from 3.63 to 0.14; 1e-4 absolute still separates a single wrong moment update.
        Numerics.Close(expected, losses, 0, 1e-4f, "AdamW losses");
    }
}
