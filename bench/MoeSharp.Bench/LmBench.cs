using System.Diagnostics;
using MoeSharp.Models;
using MoeSharp.Autograd;
using MoeSharp.Kernels;
using MoeSharp.Nn;
using MoeSharp.Tensors;
using MoeSharp.Training;

namespace MoeSharp.Bench;

/// <summary>
/// Training-step throughput of the char-level LM (nanoGPT's "baby GPT" sizes by default) and where the time goes,
/// per op, forward and backward. `lm-profile --threads 1,2`.
/// </summary>
internal static class LmBench
{
    public static int Profile(string[] args)
    {
        int at = Array.IndexOf(args, "--preset");
        string preset = at >= 0 && at + 1 < args.Length ? args[at + 1] : "dense";
        var config = Presets.Get(preset, 65);
        const int batch = 12, steps = 30;
        foreach (int threads in Harness.ThreadList(args))
        {
            using var limit = Workers.Limit(threads);
            var model = new MoeTransformer(config, 1);
            var optimizer = new AdamW(model.Arena);
            var rng = new Rng(1);
            var ids = Enumerable.Range(0, batch * config.Context).Select(_ => rng.NextInt(config.Vocab)).ToArray();
            var targets = Enumerable.Range(0, batch * config.Context).Select(_ => rng.NextInt(config.Vocab)).ToArray();
            var tape = new Tape();
            for (int i = 0; i < 5; i++) Step(model, optimizer, tape, ids, targets, batch); // warm-up
            var profile = new OpProfile();
            tape.Profile = profile;
            var sw = Stopwatch.StartNew();
            for (int i = 0; i < steps; i++)
            {
                profile.Mark();
                Step(model, optimizer, tape, ids, targets, batch);
            }
            double perStep = sw.Elapsed.TotalSeconds / steps;
            Console.WriteLine($"lm impl=moesharp preset={preset} phase=train threads={threads} tok_s={batch * config.Context / perStep:F0} ms_per_step={perStep * 1e3:F2}");
            foreach (var (op, f, b, calls) in profile.Rows)
                Console.WriteLine($"#   {op,-16} fwd {f / steps * 1e3,7:F2} ms  bwd {b / steps * 1e3,7:F2} ms  ({calls / steps} calls/step)");
        }
        return 0;
    }

    /// <summary>
    /// `lm`: training steps per second (forward, backward, AdamW) and greedy KV-cache generation (batch 1, a
    /// 16-token prompt, 200 new tokens) for the dense and mixtral presets, in bench/peer/lm.py's line format.
    /// </summary>
    public static int Run(string[] args)
    {
        const int batch = 12, steps = 40, prompt = 16, newTokens = 200;
        foreach (int threads in Harness.ThreadList(args))
            foreach (string preset in new[] { "dense", "mixtral" })
            {
                using var limit = Workers.Limit(threads);
                var config = Presets.Get(preset, 65);
                var model = new MoeTransformer(config, 1);
                var optimizer = new AdamW(model.Arena);
                var rng = new Rng(1);
                var ids = Enumerable.Range(0, batch * config.Context).Select(_ => rng.NextInt(config.Vocab)).ToArray();
                var tape = new Tape();
                for (int i = 0; i < 5; i++) Step(model, optimizer, tape, ids, ids, batch);
                var sw = Stopwatch.StartNew();
                for (int i = 0; i < steps; i++) Step(model, optimizer, tape, ids, ids, batch);
                Console.WriteLine($"lm impl=moesharp preset={preset} phase=train threads={threads} tok_s={steps * batch * config.Context / sw.Elapsed.TotalSeconds:F0}");
                // Generation runs past the training context, so this copy of the model has a longer RoPE table.
                var long_ = new MoeTransformer(config with { Context = prompt + newTokens }, 1);
                var start = ids[..prompt];
                Generator.Greedy(long_, start, newTokens); // warm-up
                sw.Restart();
                Generator.Greedy(long_, start, newTokens);
                Console.WriteLine($"lm impl=moesharp preset={preset} phase=generate threads={threads} tok_s={newTokens / sw.Elapsed.TotalSeconds:F0}");
            }
        return 0;
    }

    private static void Step(MoeTransformer model, AdamW optimizer, Tape tape, int[] ids, int[] targets, int batch)
    {
        model.Arena.ZeroGrad();
        tape.Backward(model.Loss(tape, ids, targets, batch, training: true).Loss);
        tape.Reset();
        optimizer.Step(1e-4f);
    }
}
