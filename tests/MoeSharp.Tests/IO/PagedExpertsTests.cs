using System.Runtime.InteropServices;
using MoeSharp.Autograd;
using MoeSharp.Formats;
using MoeSharp.IO;
using MoeSharp.Models;
using MoeSharp.Tests.Cli;

namespace MoeSharp.Tests.IO;

/// <summary>
/// <see cref="ModelLoadOptions.MaxMemoryBytes"/> on the tiny Mixtral of <see cref="StoredWeightsTests"/> (2 layers × 4
/// experts), as a Q8_0 GGUF file and as an F32 safetensors folder used in place: experts paged through a cache of
/// fewer slots than experts compute exactly what the resident model computes, within the budget.
/// </summary>
public sealed class PagedExpertsTests : TempFolderTest
{
    private static readonly int[] Prompt = [3, 14, 15, 92, 65, 35, 89, 79];

    private string Checkpoint(string kind)
    {
        string folder = StoredWeightsTests.WriteMixtral(Path.Combine(Folder, "hf"));
        if (kind == "safetensors") return folder;
        string gguf = Path.Combine(Folder, "model.q8_0.gguf");
        using (var source = ModelStore.Open(folder)) ModelStore.SaveGguf(source, gguf, WeightFormat.Q8_0, "llama");
        return gguf;
    }

    /// <summary>Bytes the non-expert weights and KV cache take: what a huge budget leaves the cache subtracted from it.</summary>
    private static (long Resident, long Slot) Measure(string checkpoint)
    {
        const long huge = 1L << 40;
        using var model = ModelStore.Open(checkpoint, new ModelLoadOptions { InPlace = true, MaxMemoryBytes = huge });
        var cache = model.ExpertCache!;
        Assert.Equal(huge - cache.BudgetBytes, cache.ResidentBytes);
        Assert.Equal(2 * 4, cache.Experts);
        return (cache.ResidentBytes, cache.SlotBytes);
    }

    /// <summary>The prompt's logits [8, V] (prefill: MatMul per expert), then 4 greedy decode steps' logits [1, V] (MatVec) through the KV cache.</summary>
    private static List<float[]> Run(MoeTransformer model)
    {
        var tape = new Tape();
        var kv = model.NewCache();
        var all = new List<float[]>();
        int[] ids = Prompt;
        using (tape.NoGrad())
            for (int step = 0; step < 5; step++)
            {
                var logits = model.Forward(tape, ids, kv).Logits.Span.ToArray();
                all.Add(logits);
                int v = model.Config.Vocab, best = 0;
                var last = logits.AsSpan(logits.Length - v);
                for (int i = 1; i < v; i++) if (last[i] > last[best]) best = i;
                ids = [best];
                tape.Reset();
            }
        return all;
    }

    /// <summary>Same kernels over the same bytes, so the outputs are bitwise equal (tolerance 0), whatever the slot count.</summary>
    [Theory]
    [InlineData("gguf", 1)]
    [InlineData("gguf", 3)]
    [InlineData("safetensors", 3)]
    public void PagedOutputsEqualResidentOnesBitwiseWithinTheBudget(string kind, int slots)
    {
        string checkpoint = Checkpoint(kind);
        var (resident, slot) = Measure(checkpoint);
        long max = resident + slots * slot;
        using var reference = ModelStore.Open(checkpoint, new ModelLoadOptions { InPlace = true });
        using var paged = ModelStore.Open(checkpoint, new ModelLoadOptions { InPlace = true, MaxMemoryBytes = max });
        var cache = paged.ExpertCache!;
        Assert.Equal(slots, cache.Capacity);
        Assert.Same(cache.Layers[0], paged.MoeLayers[0].Bank.Paged);
        var expected = Run(reference);
        var actual = Run(paged);
        for (int s = 0; s < expected.Count; s++)
            Assert.True(MemoryMarshal.AsBytes(expected[s].AsSpan()).SequenceEqual(MemoryMarshal.AsBytes(actual[s].AsSpan())), $"step {s}: paged logits differ from resident ones");
        var total = cache.Total();
        Assert.True(total.Misses >= 8 - slots, $"{total.Misses} misses: fewer than the experts that cannot all stay");
        Assert.Equal(total.Misses * slot, total.BytesRead);
        Assert.True(cache.BytesHeld <= cache.BudgetBytes, $"{cache.BytesHeld} bytes of slots over a budget of {cache.BudgetBytes}");
        Assert.True(resident + cache.BytesHeld <= max, $"{resident} resident + {cache.BytesHeld} held > --max-memory {max}");
    }

    [Fact]
    public void ABudgetTooSmallForOneExpertOrForTheNonExpertWeightsIsOneClearError()
    {
        string gguf = Checkpoint("gguf");
        var (resident, slot) = Measure(gguf);
        var ex = Assert.Throws<ArgumentException>(() => ModelStore.Open(gguf, new ModelLoadOptions { MaxMemoryBytes = resident + slot - 1 }));
        Assert.Equal($"{gguf}: --max-memory leaves {(slot - 1) / 1e6:F1} MB ({slot - 1:N0} bytes) for routed experts; one expert takes {slot / 1e6:F1} MB ({slot:N0} bytes): raise --max-memory by at least 0.0 MB (1 bytes).", ex.Message);
        ex = Assert.Throws<ArgumentException>(() => ModelStore.Open(gguf, new ModelLoadOptions { MaxMemoryBytes = resident / 2 }));
        Assert.Equal($"{gguf}: --max-memory {resident / 2 / 1e9:G4} GB is not enough: the non-expert weights and the KV cache alone take {resident / 1e6:F1} MB ({resident:N0} bytes).", ex.Message);
    }

    /// <summary>
    /// A NaN in every expert of layer 0: a resident load refuses the file, naming the tensor; a paged load does not read
    /// the experts to check them (that would read the whole file past the cache), and the first expert paged in is
    /// refused instead, naming the file, the layer and the expert.
    /// </summary>
    [Fact]
    public void APagedLoadChecksEachExpertWhenItFirstComesIn()
    {
        string good = StoredWeightsTests.WriteMixtral(Path.Combine(Folder, "hf"));
        string bad = Path.Combine(Folder, "nan");
        Directory.CreateDirectory(bad);
        File.Copy(Path.Combine(good, "config.json"), Path.Combine(bad, "config.json"));
        using (var model = ModelStore.Open(good))
        {
            var w1 = model.Arena["model.layers.0.block_sparse_moe.experts.w1"];
            int per = w1.Length / w1.Shape[0];
            for (int e = 0; e < w1.Shape[0]; e++) w1.Value.Span[e * per + 5] = float.NaN;
            ModelStore.Save(Path.Combine(bad, "model.safetensors"), model.Arena);
        }
        var resident = Assert.Throws<InvalidDataException>(() => ModelStore.Open(bad, new ModelLoadOptions { InPlace = true }));
        Assert.Contains("'model.layers.0.block_sparse_moe.experts.0.w1.weight' holds NaN at flat index 5", resident.Message);

        using var paged = ModelStore.Open(bad, new ModelLoadOptions { InPlace = true, MaxMemoryBytes = 1L << 40 });
        Assert.Equal(0, paged.ExpertCache!.Total().BytesRead);
        var thrown = Record.Exception(() => Run(paged));
        var error = Assert.IsType<InvalidDataException>(thrown is AggregateException a ? a.Flatten().InnerExceptions[0] : thrown);
        Assert.Matches(@"model\.safetensors: expert \d of model\.layers\.0\.block_sparse_moe\.experts holds NaN at flat index 5 of its W1 \[256, 256\] F32 at byte [\d,]+; weights must be finite\.", error.Message);
    }

    [Fact]
    public async Task TheCliRefusesATooSmallBudgetInOneLine()
    {
        string gguf = Checkpoint("gguf");
        var r = await MoeCli.Run("generate", "--model", gguf, "--prompt-ids", "1,2,3", "--max-tokens", "2", "--max-memory", "0.000001");
        MoeCli.UserError(r, gguf, "--max-memory 1E-06 GB is not enough");
        r = await MoeCli.Run("bench", "--model", gguf, "--max-memory", "-1");
        MoeCli.UserError(r, "--max-memory: expected a positive number of GB, got '-1'");
    }
}
