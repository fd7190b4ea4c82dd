using MoeSharp.Formats;
using MoeSharp.IO;
using MoeSharp.Routing;
using MoeSharp.Tests.Cli;
using MoeSharp.Tests.Models;

namespace MoeSharp.Tests.IO;

/// <summary>
/// deepseek2 and gpt-oss GGUF files that differ from the checked-in ones (Golden/&lt;arch&gt;/*.gguf) the way other
/// converters' files or damaged files do: each rewritten here from a checked-in file with some tensors or metadata
/// dropped, replaced or added.
/// </summary>
public class GgufArchitectureTests : TempFolderTest
{
    private static string Golden(string arch, string file = "model-f32.gguf") => Path.Combine(ArchitectureGoldenTests.Folder(arch), file);

    /// <summary>
    /// A copy of <paramref name="source"/> without the tensors <paramref name="drop"/> names, with the metadata of
    /// <paramref name="metadata"/> replacing (or, when null, removing) the file's own, and the F32 tensors of
    /// <paramref name="add"/> ([name, ggml dims, values]) appended.
    /// </summary>
    private string Rewrite(string source, string[] drop, Dictionary<string, GgufValue?> metadata, params (string Name, long[] Dims, float[] Values)[] add)
    {
        using var file = GgufFile.Open(source);
        var writer = new GgufWriter();
        foreach (var (key, value) in file.Metadata)
            if (!metadata.ContainsKey(key)) writer.Add(key, value);
        foreach (var (key, value) in metadata)
            if (value is not null) writer.Add(key, value);
        foreach (var t in file.Tensors)
            if (!drop.Contains(t.Name)) writer.AddTensor(t.Name, t.GgmlType, t.Dims, file.TensorBytes(t).ToArray());
        foreach (var (name, dims, values) in add)
        {
            var bytes = new byte[values.Length * 4];
            Buffer.BlockCopy(values, 0, bytes, 0, bytes.Length);
            writer.AddTensor(name, WeightFormat.F32, dims, bytes);
        }
        string path = Path.Combine(Folder, "rewritten.gguf");
        writer.Write(path);
        return path;
    }

    /// <summary>
    /// A deepseek2 file as converters before the MLA split wrote it: kv_b_proj whole as attn_kv_b (taken here from
    /// the HF checkpoint, [H·(dn+dv), r]), key_length and value_length the per-head widths, no *_mla keys. It loads to
    /// the HF folder's parameters exactly, as the split file does.
    /// </summary>
    [Fact]
    public void ALegacyDeepseekFileWithAWholeKvBLoadsTheSameModel()
    {
        using var hf = SafetensorsFile.Open(Path.Combine(ArchitectureGoldenTests.Folder("deepseek_v3"), "model.safetensors"));
        var drop = new List<string>();
        var add = new List<(string, long[], float[])>();
        for (int layer = 0; layer < 3; layer++)
        {
            drop.Add($"blk.{layer}.attn_k_b.weight");
            drop.Add($"blk.{layer}.attn_v_b.weight");
            add.Add(($"blk.{layer}.attn_kv_b.weight", [16, 4 * (8 + 6)], hf.ReadFloat32($"model.layers.{layer}.self_attn.kv_b_proj.weight")));
        }
        string path = Rewrite(Golden("deepseek_v3"), [.. drop], new()
        {
            ["deepseek2.attention.key_length"] = GgufValue.Of(12u), ["deepseek2.attention.value_length"] = GgufValue.Of(6u),
            ["deepseek2.attention.key_length_mla"] = null, ["deepseek2.attention.value_length_mla"] = null,
        }, [.. add]);
        var legacy = ModelStore.Open(path, maxContext: 64);
        var reference = ModelStore.Open(ArchitectureGoldenTests.Folder("deepseek_v3"), maxContext: 64);
        Assert.Equal((8, 6), (legacy.Config.Mla!.QkNopeHeadDim, legacy.Config.Mla.VHeadDim));
        foreach (var p in reference.Arena.Parameters)
            Numerics.BitwiseEqual(ArchitectureGoldenTests.ParameterValues(p), ArchitectureGoldenTests.ParameterValues(legacy.Arena[p.Name]), $"legacy deepseek2 {p.Name}");
    }

    /// <summary>
    /// expert_gating_func picks the router: softmax (1, and its absence, as llama.cpp reads old V2 files) is V2's,
    /// whose groups rank by their best score, sigmoid (2) V3's; the group keys reach both.
    /// </summary>
    [Fact]
    public void TheGatingFunctionPicksTheDeepseekRouter()
    {
        var groups = new Dictionary<string, GgufValue?>
        {
            ["deepseek2.expert_group_count"] = GgufValue.Of(4u), ["deepseek2.expert_group_used_count"] = GgufValue.Of(2u),
        };
        var v2 = ModelStore.OpenGguf(Rewrite(Golden("deepseek_v2"), [], groups)).Config.Moe!;
        Assert.Equal((RouterKind.SoftmaxTopK, 4, 2, 2f, false), (v2.Router, v2.Groups, v2.TopGroups, v2.RoutedScaling, v2.NormalizeTopK));
        groups["deepseek2.expert_gating_func"] = null;
        Assert.Equal(RouterKind.SoftmaxTopK, ModelStore.OpenGguf(Rewrite(Golden("deepseek_v2"), [], groups)).Config.Moe!.Router);
        var v3 = ModelStore.OpenGguf(Golden("deepseek_v3")).Config.Moe!;
        Assert.Equal((RouterKind.SigmoidBias, 4, 2, 2.5f, true), (v3.Router, v3.Groups, v3.TopGroups, v3.RoutedScaling, v3.NormalizeTopK));
    }

    public static TheoryData<string, string, string, string> BadFiles() => new()
    {
        { "deepseek_v3", "drop blk.2.ffn_down_shexp.weight", "the file has no tensor 'blk.2.ffn_down_shexp.weight' (for parameter 'model.layers.2.block_sparse_moe.shared_expert.down_proj.weight'", "" },
        { "deepseek_v3", "drop blk.1.attn_v_b.weight", "the file has no tensor 'blk.1.attn_v_b.weight', the other half of parameter 'model.layers.1.self_attn.kv_b_proj.weight'", "" },
        { "deepseek_v3", "drop blk.1.exp_probs_b.bias", "the file has no tensor 'blk.1.exp_probs_b.bias'", "" },
        { "deepseek_v3", "deepseek2.expert_gating_func 3", "deepseek2.expert_gating_func 3 is not supported; expected 1 (softmax, DeepSeek-V2) or 2 (sigmoid, DeepSeek-V3).", "" },
        { "deepseek_v3", "deepseek2.expert_group_used_count 5", "deepseek2.expert_group_used_count must be in [1, deepseek2.expert_group_count = 4], got 5.", "" },
        { "deepseek_v2", "deepseek2.rope.scaling.type longrope", "deepseek2.rope.scaling.type 'longrope' is not supported; expected \"yarn\" or none.", "" },
        { "gpt_oss", "drop blk.1.attn_sinks.weight", "the file has no tensor 'blk.1.attn_sinks.weight' (for parameter 'model.layers.1.self_attn.sinks'", "model-mxfp4.gguf" },
        { "gpt_oss", "drop blk.2.ffn_up_exps.weight", "the file has no tensor 'blk.2.ffn_up_exps.weight'", "model-mxfp4.gguf" },
    };

    /// <summary>A file missing a tensor, or with metadata MoeSharp does not read, is one line naming the file and the problem.</summary>
    [Theory]
    [MemberData(nameof(BadFiles))]
    public void ABadFileIsOneLineNamingWhatIsWrong(string arch, string change, string message, string file)
    {
        string path = BadFile(arch, change, file);
        var ex = Assert.Throws<InvalidDataException>(() => ModelStore.Open(path));
        Assert.StartsWith(path + ": ", ex.Message);
        Assert.Contains(message, ex.Message);
        Assert.DoesNotContain('\n', ex.Message);
    }

    /// <summary>`moe generate` on a GGUF missing a tensor prints that one line and exits 2.</summary>
    [Fact]
    public async Task GenerateOnAFileMissingATensorIsOneLineAndExitCode2()
    {
        string path = BadFile("deepseek_v2", "drop blk.1.attn_k_b.weight", "");
        MoeCli.UserError(await MoeCli.Run("generate", "--model", path, "--prompt-ids", "1", "--max-tokens", "1"),
            "the file has no tensor 'blk.1.attn_k_b.weight', the other half of parameter 'model.layers.1.self_attn.kv_b_proj.weight'");
    }

    /// <summary>The golden file of <paramref name="arch"/> with "drop TENSOR" or "KEY VALUE" applied.</summary>
    private string BadFile(string arch, string change, string file)
    {
        string[] words = change.Split(' ');
        string source = Golden(arch, file is "" ? "model-f32.gguf" : file);
        return words[0] == "drop"
            ? Rewrite(source, [words[1]], [])
            : Rewrite(source, [], new() { [words[0]] = uint.TryParse(words[1], out uint n) ? GgufValue.Of(n) : GgufValue.Of(words[1]) });
    }
}
