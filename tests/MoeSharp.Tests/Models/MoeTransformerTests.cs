using MoeSharp.Autograd;
using MoeSharp.IO;
using MoeSharp.Models;
using MoeSharp.Tensors;
using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;

namespace MoeSharp.Tests.Models;

public class MoeTransformerTests
{
    private static ModelConfig Tiny(string preset) => Presets.Get(preset, 23) with { DModel = 16, Heads = 2, Layers = 2, DFF = 32, Context = 12 };

    public static TheoryData<string> PresetNames() => [.. Presets.Names];

    [Theory]
    [MemberData(nameof(PresetNames))]
    public void EveryPresetBuildsTrainsAndCachesConsistently(string preset)
    {
        var model = new MoeTransformer(Tiny(preset), seed: 3);
        var rng = new Rng(1);
        var ids = Enumerable.Range(0, 2 * 12).Select(_ => rng.NextInt(23)).ToArray();
        var tape = new Tape();
        var (loss, ce, output) = model.Loss(tape, ids, ids, batch: 2, training: true);
        Assert.InRange(ce[0], MathF.Log(23) - 0.1f, MathF.Log(23) + 0.1f);
        Assert.Equal(preset == "dense" ? 0 : 2, output.Moe.Count);
        Assert.Equal(preset != "dense", output.AuxLoss is not null);
        tape.Backward(loss);
        Assert.All(model.Arena.Grads, g => Assert.True(float.IsFinite(g)));
        tape.Reset();
        // KV-cache inference equals a full recompute (dropless presets; capacity depends on the batch's token count).
        if (model.Config.Moe?.CapacityFactor > 0) return;
        float[] full;
        using (tape.NoGrad()) full = model.Forward(tape, ids[..12], batch: 1).Logits.ToArray();
        tape.Reset();
        var cache = model.NewCache();
        var stepwise = new List<float>();
        using (tape.NoGrad())
        {
            stepwise.AddRange(model.Forward(tape, ids[..5], cache).Logits.ToArray());
            for (int i = 5; i < 12; i++) stepwise.AddRange(model.Forward(tape, [ids[i]], cache).Logits.ToArray());
        }
        Numerics.Close(full, stepwise.ToArray(), 1e-5f, 1e-5f, "cached logits");
    }

    [Fact]
    public void ActiveParametersFollowTopK()
    {
        var mixtral = new MoeTransformer(Presets.Get("mixtral", 65));
        var dense = new MoeTransformer(Presets.Get("dense", 65));
        // Mixtral preset: 8 experts of 256 with top-2 activate 2·256 = 512 hidden units, as the dense MLP of 512,
        // and add a router of 8·128 per layer.
        Assert.Equal(dense.Arena.Length + 4 * 8 * 128, mixtral.ActiveParameters);
        Assert.True(mixtral.Arena.Length > 3 * dense.Arena.Length);
    }

    [Fact]
    public void SafetensorsRoundTripIsBitwise()
    {
        var model = new MoeTransformer(Tiny("qwen-moe"), seed: 5);
        string path = Path.Combine(Path.GetTempPath(), $"moesharp-{Guid.NewGuid():N}.safetensors");
        try
        {
            ModelStore.Save(path, model.Arena);
            var copy = new MoeTransformer(Tiny("qwen-moe"), seed: 99);
            using (var source = SafetensorsModel.Open(path)) ModelStore.Load(copy.Arena, source);
            Numerics.BitwiseEqual(model.Arena.Values, copy.Arena.Values, "weights");
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void ConfigJsonRoundTripsAndNamesBadFields()
    {
        var config = Presets.Get("deepseek", 40);
        Assert.Equal(config.ToJson(), ModelConfig.FromJson(config.ToJson(), "test").ToJson());
        Assert.Contains("\"d_ff\": 512", config.ToJson());
        var ex = Assert.Throws<ArgumentException>(() => ModelConfig.FromJson(config.ToJson().Replace("\"top_k\": 4", "\"top_k\": 40"), "cfg.json"));
        Assert.Contains("cfg.json", ex.Message);
        Assert.Contains("TopK", ex.Message);
        Assert.Throws<InvalidDataException>(() => ModelConfig.FromJson("{\"layers\": 2, \"colour\": 1}", "cfg.json"));
        Assert.Throws<ArgumentException>(() => Presets.Get("nope", 10));
    }

    [Fact]
    public void SamplingIsSeededAndRespectsTopKAndTopP()
    {
        var model = new MoeTransformer(Tiny("mixtral"), seed: 2);
        int[] prompt = [1, 2, 3];
        var opts = new SamplingOptions { Temperature = 1.2f, TopK = 5, Seed = 11 };
        var a = Generator.Stream(model, prompt, 6, opts).Select(t => t.Id).ToArray();
        var b = Generator.Stream(model, prompt, 6, opts).Select(t => t.Id).ToArray();
        Assert.Equal(a, b);
        // top-k = 1 and top-p → 0⁺ both reduce sampling to the argmax.
        var greedy = Generator.Greedy(model, prompt, 6);
        Assert.Equal(greedy, Generator.Stream(model, prompt, 6, new SamplingOptions { TopK = 1, Seed = 3 }).Select(t => t.Id).ToArray());
        Assert.Equal(greedy, Generator.Stream(model, prompt, 6, new SamplingOptions { TopP = 1e-6f, Seed = 4 }).Select(t => t.Id).ToArray());
        // Past the context of 12 the window slides. Reference: a full recompute, no cache, over the same window
        // (when the view is full, it restarts from the last 3/4 of the text).
        var longRun = Generator.Greedy(model, prompt, 30);
        var view = new List<int>(prompt);
        var history = new List<int>(prompt);
        var tape = new Tape();
        for (int i = 0; i < 30; i++)
        {
            int next;
            using (tape.NoGrad())
            {
                var logits = model.Forward(tape, view.ToArray(), batch: 1).Logits.Span;
                next = TensorPrimitives.IndexOfMax(logits.Slice((view.Count - 1) * 23, 23));
            }
            tape.Reset();
            Assert.Equal(next, longRun[i]);
            history.Add(next);
            view = view.Count == 12 ? history.GetRange(history.Count - 9, 9) : [.. view, next];
        }
        Assert.Throws<ArgumentException>(() => Generator.Greedy(model, new int[13], 1)); // a prompt longer than the context
    }
}
