using System.Diagnostics;
using System.Globalization;
using MoeSharp.Formats;
using MoeSharp.Kernels;
using MoeSharp.Layers;
using MoeSharp.Models;
using MoeSharp.Nn;
using MoeSharp.Routing;
using MoeSharp.Tensors;

namespace MoeSharp.Bench;

/// <summary>
/// `batch`: aggregate decode tokens/s of <see cref="BatchGenerator"/> at several numbers of concurrent streams, on a
/// Mixtral-shaped model with random fp32 weights (8 experts, top-2, GQA 4:1, untied head). Every stream gets the
/// same-length prompt and greedy decode; all are queued before the first step. Decode is timed from the moment the
/// last stream got its first token (every prompt prefilled) to the end, counting only the tokens made in that span.
///   batch [--hidden 512] [--layers 4] [--expert-hidden 1792] [--vocab 32000] [--streams 1,4,16,32] [--prompt 16]
///         [--tokens 48] [--threads 2] [--quantize q8_0|bf16|...]   (projections, embedding and experts stored in that format)
///   batch --gemm-rows [--hidden 512] [--expert-hidden 1792] [--threads 2]
/// </summary>
internal static class BatchBench
{
    public static int Run(string[] args)
    {
        int Int(string key, int fallback)
        {
            int i = Array.IndexOf(args, key);
            return i >= 0 && i + 1 < args.Length ? int.Parse(args[i + 1], CultureInfo.InvariantCulture) : fallback;
        }
        int hidden = Int("--hidden", 512), layers = Int("--layers", 4), expertHidden = Int("--expert-hidden", 1792), vocab = Int("--vocab", 32000);
        int promptLength = Int("--prompt", 16), tokens = Int("--tokens", 48), threads = Int("--threads", 2);
        if (args.Contains("--gemm-rows")) return GemmRows(hidden, expertHidden, threads);
        int si = Array.IndexOf(args, "--streams");
        int[] streams = si >= 0 && si + 1 < args.Length ? args[si + 1].Split(',').Select(int.Parse).ToArray() : [1, 4, 16, 32];
        var config = new ModelConfig
        {
            Vocab = vocab, DModel = hidden, Layers = layers, Heads = 16, KvHeads = 4, Context = promptLength + tokens,
            RopeTheta = 1e6f, Moe = new MoeOptions { Experts = 8, TopK = 2, ExpertHidden = expertHidden, Router = RouterKind.SoftmaxTopK },
        };
        int qi = Array.IndexOf(args, "--quantize");
        WeightFormat? format = qi >= 0 && qi + 1 < args.Length ? Enum.Parse<WeightFormat>(args[qi + 1], ignoreCase: true) : null;
        string weights = format?.ToString().ToLowerInvariant() ?? "f32";
        var clock = Stopwatch.StartNew();
        MoeTransformer model;
        using (Workers.Limit(threads)) model = format is { } f ? new MoeTransformer(config, new RandomStored(f, seed: 1)) : new MoeTransformer(config, seed: 1);
        Console.WriteLine($"model hidden={hidden} layers={layers} experts=8x{expertHidden} top2 vocab={vocab} weights={weights} arena={model.Arena.Length / 1e6:F1}M " +
                          $"active={model.ActiveParameters / 1e6:F1}M init_s={clock.Elapsed.TotalSeconds:F1}");
        Measure(model, 4, promptLength, 8, threads); // warm-up: the JIT's final tier
        {
            // The same single stream through Generator.Stream, the sequential path, for a side-by-side ratio.
            var prompt = new int[promptLength];
            var t = new double[tokens];
            int i = 0;
            var sw = Stopwatch.StartNew();
            foreach (var _ in Generator.Stream(model, prompt, tokens, new SamplingOptions { Temperature = 0, Threads = threads })) t[i++] = sw.Elapsed.TotalSeconds;
            Console.WriteLine($"sequential impl=moesharp weights={weights} threads={threads} streams=1 prompt={promptLength} tokens={tokens} " +
                              $"decode_tok_s={(tokens - 1) / (t[^1] - t[0]):F1} ttft_ms={t[0] * 1e3:F1}");
        }
        foreach (int s in streams)
        {
            var (decode, ttft50, itl50, itl95) = Measure(model, s, promptLength, tokens, threads);
            Console.WriteLine($"batch impl=moesharp weights={weights} threads={threads} streams={s} prompt={promptLength} tokens={tokens} " +
                              $"decode_tok_s={decode:F1} ttft_p50_ms={ttft50 * 1e3:F1} itl_p50_ms={itl50 * 1e3:F2} itl_p95_ms={itl95 * 1e3:F2}");
        }
        return 0;
    }

    /// <summary>
    /// `batch --gemm-rows`: microseconds of one expert up-projection x·Wᵀ (W [H, D], as ExpertFfnOp calls it) for
    /// M = 1..32 rows, in interleaved rounds, and each M's time per row against M = 1: how the cost of a step grows
    /// as more decode rows share an expert, across the GEMM's switch from its unpacked path (M ≤ 2) to the packed one.
    /// </summary>
    private static int GemmRows(int dim, int hidden, int threads)
    {
        int[] rows = [1, 2, 3, 4, 8, 16, 32];
        var rng = new Random(1);
        var w = new float[hidden * dim]; // [H, D]
        var x = new float[32 * dim]; // [32, D]
        var y = new float[32 * hidden]; // [32, H]
        for (int i = 0; i < w.Length; i++) w[i] = (float)rng.NextDouble() - 0.5f;
        for (int i = 0; i < x.Length; i++) x[i] = (float)rng.NextDouble() - 0.5f;
        var times = new List<double>[rows.Length];
        for (int j = 0; j < rows.Length; j++) times[j] = [];
        using var limit = Workers.Limit(threads);
        for (int round = 0; round < 7; round++)
            for (int j = 0; j < rows.Length; j++)
            {
                int m = rows[j];
                times[j].Add(Harness.Median(() => Gemm.Multiply(x, w, y, m, hidden, dim, transB: true), repeats: 5, minSeconds: 0.05));
            }
        double one = times[0].Order().ElementAt(3);
        for (int j = 0; j < rows.Length; j++)
        {
            double t = times[j].Order().ElementAt(3);
            Console.WriteLine($"gemm-rows impl=moesharp m={rows[j]} n={hidden} k={dim} threads={threads} us={t * 1e6:F1} time_vs_m1={t / one:F2} per_row_vs_m1={t / one / rows[j]:F2}");
        }
        return 0;
    }

    /// <summary>Aggregate decode tokens/s, and the medians of time to first token and the p50/p95 of the gap between a stream's tokens.</summary>
    private static (double Decode, double Ttft50, double Itl50, double Itl95) Measure(MoeTransformer model, int streams, int promptLength, int tokens, int threads)
    {
        var generator = new BatchGenerator(model, new BatchOptions { MaxBatch = streams, MaxQueue = streams, Threads = threads, KvBudgetBytes = long.MaxValue }, start: false);
        var rng = new Tensors.Rng((ulong)streams);
        var greedy = new SamplingOptions { Temperature = 0 };
        var requests = new IAsyncEnumerable<GeneratedToken>[streams];
        for (int s = 0; s < streams; s++)
        {
            var prompt = new int[promptLength];
            for (int j = 0; j < prompt.Length; j++) prompt[j] = rng.NextInt(model.Config.Vocab);
            requests[s] = generator.Generate(prompt, tokens, greedy);
        }
        var clock = Stopwatch.StartNew();
        generator.Start();
        var times = new double[streams][]; // [S][tokens] seconds from the start to each token
        var consumers = new Task[streams];
        for (int s = 0; s < streams; s++)
        {
            int at = s;
            consumers[s] = Task.Run(async () =>
            {
                var t = new double[tokens];
                int i = 0;
                await foreach (var _ in requests[at]) t[i++] = clock.Elapsed.TotalSeconds;
                times[at] = t;
            });
        }
        Task.WaitAll(consumers);
        generator.DisposeAsync().AsTask().Wait();
        double allStarted = times.Max(t => t[0]), end = times.Max(t => t[^1]);
        int decoded = times.Sum(t => t.Count(x => x > allStarted));
        var firsts = times.Select(t => t[0]).Order().ToArray();
        var gaps = times.SelectMany(t => t.Skip(1).Zip(t, (b, a) => b - a)).Order().ToArray();
        return (decoded / (end - allStarted), firsts[firsts.Length / 2], gaps[gaps.Length / 2], gaps[(int)(gaps.Length * 0.95)]);
    }

    /// <summary>
    /// Random weights for the storable parameters, drawn as each one's <see cref="Init"/> says and quantized once to
    /// <paramref name="format"/>, so the benchmark measures stored-weight decode without a checkpoint on disk.
    /// </summary>
    private sealed class RandomStored(WeightFormat format, ulong seed) : IWeightSource
    {
        private ulong _next = seed;

        public StoredWeight? Stored(Parameter p)
        {
            if (p.Init.Kind != InitKind.Normal || p.Shape.Length < 2 || p.Shape[^1] % format.BlockSize() != 0) return null;
            int rows = p.Shape[^2], cols = p.Shape[^1], count = p.Shape.Length == 3 ? p.Shape[0] : 1;
            long rowBytes = format.RowBytes(cols);
            var rng = new Rng(_next++);
            var values = new float[cols]; // [cols] one row before quantization
            var matrices = new QuantizedMatrix[count];
            for (int m = 0; m < count; m++)
            {
                var data = new byte[rows * rowBytes]; // [rows, rowBytes]
                for (int r = 0; r < rows; r++)
                {
                    rng.FillNormal(values, 0, p.Init.Scale);
                    Quantizer.QuantizeRow(format, values, data.AsSpan((int)(r * rowBytes), (int)rowBytes));
                }
                matrices[m] = new QuantizedMatrix(data, format, rows, cols);
            }
            return new StoredWeight(matrices);
        }

        public void Dispose() { }
    }
}
