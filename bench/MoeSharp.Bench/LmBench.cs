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
            double zero = 0, reset = 0, update = 0;
            var sw = Stopwatch.StartNew();
            for (int i = 0; i < steps; i++)
            {
                long t0 = Stopwatch.GetTimestamp();
                model.Arena.ZeroGrad();
                long t1 = Stopwatch.GetTimestamp();
                profile.Mark();
                tape.Backward(model.Loss(tape, ids, targets, batch, training: true).Loss);
                long t2 = Stopwatch.GetTimestamp();
                tape.Reset();
                long t3 = Stopwatch.GetTimestamp();
                optimizer.Step(1e-4f);
                long t4 = Stopwatch.GetTimestamp();
                zero += Stopwatch.GetElapsedTime(t0, t1).TotalSeconds;
                reset += Stopwatch.GetElapsedTime(t2, t3).TotalSeconds;
                update += Stopwatch.GetElapsedTime(t3, t4).TotalSeconds;
            }
            double perStep = sw.Elapsed.TotalSeconds / steps;
            Console.WriteLine($"lm impl=moesharp preset={preset} phase=train threads={threads} tok_s={batch * config.Context / perStep:F0} ms_per_step={perStep * 1e3:F2}");
            string Share(double seconds) => $"{seconds / steps / perStep * 100,5:F1}%";
            foreach (var (op, f, b, calls) in profile.Rows)
                Console.WriteLine($"#   {op,-17} fwd {f / steps * 1e3,7:F2} ms  bwd {b / steps * 1e3,7:F2} ms  {Share(f + b)}  ({calls / steps} calls/step)");
            Console.WriteLine($"#   {"ZeroGrad",-17} {zero / steps * 1e3,7:F2} ms  {Share(zero)}");
            Console.WriteLine($"#   {"Tape.Reset",-17} {reset / steps * 1e3,7:F2} ms  {Share(reset)}");
            Console.WriteLine($"#   {"AdamW",-17} {update / steps * 1e3,7:F2} ms  {Share(update)}");
        }
        return 0;
    }

    /// <summary>
    /// The internal switches between an old path (false) and its replacement (true) that `lm-ab` toggles. A change
    /// under measurement adds its switch here and both paths stay callable until it is kept or dropped; with none
    /// listed, `lm-ab` runs A against A and shows the noise floor.
    /// </summary>
    private static readonly Dictionary<string, Action<bool>> Switches = [];

    /// <summary>
    /// `lm-ab --switch NAME[,NAME] [--preset mixtral] [--threads 2] [--rounds 9] [--steps 8]`: the training step with
    /// the named switches off (A, the old paths) and on (B), interleaved A B / B A in rounds on one model, so both
    /// see the same machine load; prints per-variant medians [min, max] of ms per step and of the ops' profiled
    /// ms, and the ratio A/B of the medians.
    /// </summary>
    public static int Ab(string[] args)
    {
        string Arg(string name, string fallback)
        {
            int i = Array.IndexOf(args, name);
            return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
        }
        string preset = Arg("--preset", "mixtral");
        var names = Arg("--switch", string.Join(',', Switches.Keys)).Split(',', StringSplitOptions.RemoveEmptyEntries);
        foreach (string n in names)
            if (!Switches.ContainsKey(n))
            {
                Console.Error.WriteLine($"lm-ab: unknown --switch '{n}'; expected one of: {(Switches.Count == 0 ? "(none under test)" : string.Join(", ", Switches.Keys))}.");
                return 2;
            }
        int rounds = int.Parse(Arg("--rounds", "9")), steps = int.Parse(Arg("--steps", "8"));
        void Set(bool on)
        {
            foreach (string n in names) Switches[n](on);
        }
        var config = Presets.Get(preset, 65);
        const int batch = 12;
        foreach (int threads in Harness.ThreadList(args))
        {
            using var limit = Workers.Limit(threads);
            var model = new MoeTransformer(config, 1);
            var optimizer = new AdamW(model.Arena);
            var rng = new Rng(1);
            var ids = Enumerable.Range(0, batch * config.Context).Select(_ => rng.NextInt(config.Vocab)).ToArray();
            var tape = new Tape();
            var times = new List<double>[2];
            var cpu = new List<double>[2]; // process CPU ms per step: under foreign load it counts our work, not the wait for a core
            var ops = new Dictionary<string, List<double>>[2];
            for (int v = 0; v < 2; v++)
            {
                times[v] = [];
                cpu[v] = [];
                ops[v] = [];
                Set(v == 1);
                for (int i = 0; i < 5; i++) Step(model, optimizer, tape, ids, ids, batch); // warm-up, each path JIT-compiled
            }
            for (int r = 0; r < rounds; r++)
                for (int k = 0; k < 2; k++)
                {
                    int v = (r + k) % 2; // A B, then B A, so neither always runs second
                    Set(v == 1);
                    var profile = new OpProfile();
                    tape.Profile = profile;
                    double optimizerSeconds = 0;
                    var cpu0 = Process.GetCurrentProcess().TotalProcessorTime;
                    var sw = Stopwatch.StartNew();
                    for (int i = 0; i < steps; i++)
                    {
                        model.Arena.ZeroGrad();
                        profile.Mark();
                        tape.Backward(model.Loss(tape, ids, ids, batch, training: true).Loss);
                        tape.Reset();
                        long t0 = Stopwatch.GetTimestamp();
                        optimizer.Step(1e-4f);
                        optimizerSeconds += Stopwatch.GetElapsedTime(t0).TotalSeconds;
                    }
                    times[v].Add(sw.Elapsed.TotalSeconds / steps * 1e3);
                    cpu[v].Add((Process.GetCurrentProcess().TotalProcessorTime - cpu0).TotalMilliseconds / steps);
                    tape.Profile = null;
                    void Add(string op, double seconds)
                    {
                        if (!ops[v].TryGetValue(op, out var list)) ops[v][op] = list = [];
                        list.Add(seconds / steps * 1e3);
                    }
                    foreach (var (op, f, b, _) in profile.Rows) Add(op, f + b);
                    Add("AdamW", optimizerSeconds);
                }
            Set(true);
            static string Stat(List<double> x)
            {
                var s = x.Order().ToArray();
                return $"{s[s.Length / 2],8:F2} [{s[0]:F2}, {s[^1]:F2}]";
            }
            static double Median(List<double> x) => x.Order().ElementAt(x.Count / 2);
            Console.WriteLine($"lm-ab preset={preset} threads={threads} switch={string.Join(',', names)} rounds={rounds} steps={steps}");
            Console.WriteLine($"  {"ms/step",-17} A {Stat(times[0])}  B {Stat(times[1])}  A/B {Median(times[0]) / Median(times[1]):F3}");
            Console.WriteLine($"  {"cpu ms/step",-17} A {Stat(cpu[0])}  B {Stat(cpu[1])}  A/B {Median(cpu[0]) / Median(cpu[1]):F3}");
            foreach (var op in ops[0].Keys.OrderByDescending(o => Median(ops[0][o])))
                if (ops[1].TryGetValue(op, out var b) && ops[0][op].Count == b.Count)
                    Console.WriteLine($"  {op,-17} A {Stat(ops[0][op])}  B {Stat(b)}  A/B {Median(ops[0][op]) / Math.Max(1e-9, Median(b)):F3}");
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
