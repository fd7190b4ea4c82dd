using System.Diagnostics;
using MoeSharp.Autograd;
using MoeSharp.IO;
using MoeSharp.Kernels;
using MoeSharp.Models;
using MoeSharp.Nn;
using MoeSharp.Tensors;
using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;

namespace MoeSharp.Tests.Models;

/// <summary>
/// <see cref="MoeTransformer.ForwardBatch"/> against each sequence run alone (the same call with that one sequence,
/// as <see cref="Generator"/> runs it), for the six tiny architectures of the golden tests (Mixtral as the preset
/// built in memory; Qwen3-MoE, OLMoE, Qwen2-MoE, DeepSeek-V3 and GPT-OSS from Golden/) and the other presets (the
/// Switch preset's capacity factor makes its MoE layers run per sequence). 1 to 5 sequences at different positions
/// bring mixed prefill and decode rows, twice in a row.
/// <para>
/// Bitwise equality holds where every product's result for a row depends on that row alone. <c>Gemm</c> now
/// guarantees that for its rows (<c>GemmTests.RowResultDoesNotDependOnM</c>), and in-process 8 of the 10 models are
/// bitwise equal; the two with Qwen2-MoE's sigmoid-gated shared expert (qwen2_moe, qwen-moe) still differ in the last
/// bit on the vector paths (up to 1 ulp of the logits seen; which op is not found yet). In-process the logits are
/// therefore held to rtol 1e-4 plus 1e-5 of the row's largest logit, and the greedy token must be the same; in a child
/// process with hardware intrinsics off (the scalar paths, where a row's result is its own) the logits must be
/// bitwise equal for all ten.
/// </para>
/// </summary>
public class BatchForwardTests
{
    private const string ScalarVariable = "MOESHARP_BATCH_ROWS_SCALAR";

    public static TheoryData<string> Models() =>
        ["mixtral", "qwen3_moe", "olmoe", "qwen2_moe", "deepseek_v3", "gpt_oss", "dense", "qwen-moe", "deepseek", "switch"];

    internal static MoeTransformer Load(string name) => Presets.Names.Contains(name)
        ? new MoeTransformer(Presets.Get(name, 23) with { DModel = 16, Heads = 2, Layers = 2, DFF = 32, Context = 32 }, seed: 3)
        : ModelStore.Open(ArchitectureGoldenTests.Folder(name), maxContext: 32);

    [Theory]
    [Trait("Category", "BatchRows")]
    [MemberData(nameof(Models))]
    public void EachSequenceOfABatchGetsTheLogitsItGetsAlone(string name)
    {
        var model = Load(name);
        bool scalar = Gemm.VectorBits == 0;
        int vocab = model.Config.Vocab;
        var tape = new Tape();
        using var _ = tape.NoGrad();
        for (int sequences = 1; sequences <= 5; sequences++)
        {
            var rng = new Rng((ulong)(sequences * 31 + name.Length));
            var batched = new KvCache[sequences];
            var alone = new KvCache[sequences];
            for (int s = 0; s < sequences; s++)
            {
                // Sequence s starts at its own position: a cached prefix of 0..9 tokens, the same in both caches.
                batched[s] = model.NewCache();
                alone[s] = model.NewCache();
                int prefix = rng.NextInt(10);
                if (prefix == 0) continue;
                int[] ids = Ids(rng, prefix, vocab);
                model.ForwardBatch(tape, [ids], [batched[s]]);
                model.ForwardBatch(tape, [ids], [alone[s]]);
                tape.Reset();
            }
            for (int step = 0; step < 2; step++)
            {
                // Even sequences decode one token; odd ones bring 2..5 (a prompt, or a chunk of one).
                var ids = new int[sequences][];
                for (int s = 0; s < sequences; s++) ids[s] = Ids(rng, s % 2 == 0 ? 1 : 2 + rng.NextInt(4), vocab);
                float[] together = model.ForwardBatch(tape, ids, batched).Logits.ToArray(); // [S, V]
                tape.Reset();
                for (int s = 0; s < sequences; s++)
                {
                    float[] own = model.ForwardBatch(tape, [ids[s]], [alone[s]]).Logits.ToArray(); // [1, V]
                    tape.Reset();
                    var row = together.AsSpan(s * vocab, vocab);
                    string what = $"{name}: {sequences} sequences, step {step}, sequence {s}";
                    Assert.Equal(alone[s].Length, batched[s].Length);
                    if (scalar) Numerics.BitwiseEqual(own, row, what);
                    else Numerics.Close(own, row, 1e-4f, 1e-5f * MathF.Abs(TensorPrimitives.MaxMagnitude(own)), what);
                    Assert.True(TensorPrimitives.IndexOfMax(own) == TensorPrimitives.IndexOfMax(row), $"{what}: greedy token differs");
                }
            }
        }
    }

    /// <summary>The theory above in a child process with every hardware intrinsic off, where it demands bitwise equality.</summary>
    [Fact]
    public async Task WithTheScalarGemmABatchIsBitwiseEqualToEachSequenceAlone()
    {
        if (Environment.GetEnvironmentVariable(ScalarVariable) is not null) Assert.Skip("already inside the scalar child run");
        var start = new ProcessStartInfo(Environment.ProcessPath!)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add("-trait");
        start.ArgumentList.Add("Category=BatchRows");
        if (Path.GetFileNameWithoutExtension(Environment.ProcessPath) == "dotnet")
            start.ArgumentList.Insert(0, typeof(BatchForwardTests).Assembly.Location);
        start.Environment["DOTNET_EnableHWIntrinsic"] = "0";
        start.Environment[ScalarVariable] = "1";
        using var child = Process.Start(start)!;
        var stdout = child.StandardOutput.ReadToEndAsync(TestContext.Current.CancellationToken);
        var stderr = child.StandardError.ReadToEndAsync(TestContext.Current.CancellationToken);
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        await child.WaitForExitAsync(timeout.Token);
        string output = await stdout + await stderr;
        Assert.True(child.ExitCode == 0, $"batched rows differ with the scalar GEMM:\n{output}");
        Assert.Contains("Failed: 0", output);
        Assert.DoesNotContain("Total: 0,", output);
    }

    [Fact]
    [Trait("Category", "BatchRows")]
    public void TheChildRunReallyHasTheScalarGemm()
    {
        if (Environment.GetEnvironmentVariable(ScalarVariable) is not null) Assert.Equal(0, Gemm.VectorBits);
    }

    [Fact]
    public void ABadBatchIsNamed()
    {
        var model = Load("mixtral");
        var tape = new Tape();
        using var _ = tape.NoGrad();
        var ex = Assert.Throws<ArgumentException>(() => model.ForwardBatch(tape, [[1], []], [model.NewCache(), model.NewCache()]));
        Assert.Contains("Sequence 1", ex.Message);
        ex = Assert.Throws<ArgumentException>(() => model.ForwardBatch(tape, [[1], [2]], [model.NewCache()]));
        Assert.Contains("2 sequences and 1 caches", ex.Message);
        var full = model.NewCache(2);
        var ioe = Assert.Throws<InvalidOperationException>(() => model.ForwardBatch(tape, [[1], [2, 3, 4]], [model.NewCache(), full]));
        Assert.Contains("holds 2 positions; 3 are needed", ioe.Message);
    }

    /// <summary>
    /// The last-row-only prefill gives the logits the all-rows cached forward gives its last row (rtol 1e-4, plus
    /// 1e-5 of the largest logit: the LM head's GEMM has one row instead of n, see the class summary).
    /// </summary>
    [Theory]
    [MemberData(nameof(Models))]
    public void ThePrefillComputesTheLastRowOnly(string name)
    {
        var model = Load(name);
        int vocab = model.Config.Vocab;
        int[] prompt = Ids(new Rng(5), 9, vocab);
        var tape = new Tape();
        using var _ = tape.NoGrad();
        float[] all = model.Forward(tape, prompt, model.NewCache()).Logits.ToArray(); // [9, V]
        var last = model.ForwardBatch(tape, [prompt], [model.NewCache()]).Logits; // [1, V]
        Assert.Equal([1, vocab], last.Shape.ToArray());
        var expected = all.AsSpan(8 * vocab, vocab);
        Numerics.Close(expected, last.Span, 1e-4f, 1e-5f * MathF.Abs(TensorPrimitives.MaxMagnitude(expected)), name);
    }

    private static int[] Ids(Rng rng, int n, int vocab)
    {
        var ids = new int[n];
        for (int i = 0; i < n; i++) ids[i] = rng.NextInt(vocab);
        return ids;
    }
}
