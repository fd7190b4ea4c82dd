using System.Runtime.InteropServices;
using MoeSharp.Experts;
using MoeSharp.Formats;
using MoeSharp.Models;
using MoeSharp.Nn;

namespace MoeSharp.IO;

public static partial class ModelStore
{
    /// <summary>
    /// Pages <paramref name="model"/>'s routed experts (stored in place; expert e of parameter p lies in the file at
    /// <paramref name="locate"/>(p, e)) through an
    /// <see cref="ExpertCache"/> whose slots get what <paramref name="maxMemory"/> leaves after the resident weights
    /// (fp32 arena, stored non-expert weights) and a KV cache for the model's whole context.
    /// </summary>
    /// <exception cref="ArgumentException">The resident part alone exceeds the budget, or what it leaves is less than one expert.</exception>
    private static void PageExperts(MoeTransformer model, string source, Func<Parameter, int, (string Path, long Offset)> locate, long maxMemory, ExpertCachePolicy policy)
    {
        var paged = new HashSet<Parameter>();
        var layers = new List<(string, FileMatrix[][])>();
        var banks = new List<ExpertBank>();
        foreach (var moe in model.MoeLayers)
        {
            var bank = moe.Bank;
            // Experts held in arrays (rearranged or quantized on load, as GPT-OSS's MXFP4) are not in the file as they
            // are computed with, so they stay resident and count as such below.
            Parameter[] weights = bank.W3 is null ? [bank.W1, bank.W2] : [bank.W1, bank.W3, bank.W2];
            if (moe.Router is null || bank.W1.Stored is not { } w1 || MemoryMarshal.TryGetArray(w1[0].Data, out _))
            {
                CheckResident(source, bank.Name, weights); // the load deferred their check to the cache (CheckOnLoad)
                continue;
            }
            var experts = new FileMatrix[bank.Experts][];
            for (int e = 0; e < bank.Experts; e++)
            {
                experts[e] = new FileMatrix[weights.Length];
                for (int i = 0; i < weights.Length; i++)
                {
                    var m = weights[i].Stored![e];
                    var (path, offset) = locate(weights[i], e);
                    experts[e][i] = new FileMatrix(path, offset, m.Format, m.Rows, m.Cols);
                }
            }
            foreach (var w in weights) paged.Add(w);
            layers.Add((bank.Name, experts));
            banks.Add(bank);
        }
        long resident = 8L * model.Arena.Length + KvBytes(model.Config); // arena values and gradients, [L, context, kv]
        foreach (var p in model.Arena.Parameters)
            if (p.Stored is { } w && !paged.Contains(p)) resident += w.Bytes;
        if (resident >= maxMemory)
            throw new ArgumentException($"{source}: --max-memory {maxMemory / 1e9:G4} GB is not enough: the non-expert weights and the KV cache alone take {ExpertCache.Describe(resident)}.");
        if (layers.Count == 0) return;
        var cache = new ExpertCache(source, maxMemory - resident, layers, policy) { ResidentBytes = resident };
        for (int i = 0; i < banks.Count; i++) banks[i].Paged = cache.Layers[i];
        model.ExpertCache = cache;
    }

    /// <summary>The NaN/infinity check of stored experts that stay resident under a paged load, naming the weight and expert.</summary>
    private static void CheckResident(string source, string bank, Parameter[] weights)
    {
        foreach (var w in weights)
        {
            if (w.Stored is not { } stored) continue;
            for (int e = 0; e < stored.Count; e++)
                if (stored[e].FirstNonFinite() is var (at, value))
                    throw new InvalidDataException($"{source}: expert {e} of {bank} holds {value} at flat index {at} of '{w.Name}'; weights must be finite.");
        }
    }

    /// <summary>Bytes of a KV cache over the model's whole context (see <see cref="MoeTransformer.NewCache"/>).</summary>
    private static long KvBytes(ModelConfig config)
    {
        long perLayer = config.Mla is { } mla ? mla.KvLoraRank + mla.QkRopeHeadDim : 2L * config.ResolvedKvHeads * config.ResolvedHeadDim;
        return config.Layers * config.Context * perLayer * sizeof(float);
    }
}
