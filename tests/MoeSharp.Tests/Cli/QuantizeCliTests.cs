using MoeSharp.Tests.IO;

namespace MoeSharp.Tests.Cli;

/// <summary><c>moe quantize</c> and <c>--quantize</c> on the inference commands, on the tiny Mixtral of <see cref="StoredWeightsTests"/>.</summary>
public sealed class QuantizeCliTests : TempFolderTest
{
    private static readonly string[] Greedy = ["--prompt-ids", "3,14,15,92,65", "--max-tokens", "8", "--temperature", "0", "--print-ids"];

    [Fact]
    public async Task QuantizeWritesAGgufThatGeneratesWhatQuantizeOnLoadGenerates()
    {
        string folder = StoredWeightsTests.WriteMixtral(Path.Combine(Folder, "hf"));
        string gguf = Path.Combine(Folder, "model.q8_0.gguf");
        var written = await MoeCli.Run("quantize", "--model", folder, "--format", "q8_0", "--out", gguf);
        Assert.True(written.ExitCode == 0, written.Stderr);
        Assert.Contains("llama, Q8_0", written.Stdout);
        var fromGguf = await MoeCli.Run(["generate", "--model", gguf, .. Greedy]);
        var onLoad = await MoeCli.Run(["generate", "--model", folder, "--quantize", "q8_0", .. Greedy]);
        var fp32 = await MoeCli.Run(["generate", "--model", folder, .. Greedy]);
        var f32 = await MoeCli.Run(["generate", "--model", folder, "--quantize", "f32", .. Greedy]);
        Assert.True(fromGguf.ExitCode == 0, fromGguf.Stderr);
        Assert.True(onLoad.ExitCode == 0, onLoad.Stderr);
        Assert.Equal(onLoad.Stdout, fromGguf.Stdout);
        Assert.Equal(fp32.Stdout, f32.Stdout);
        Assert.Equal(8, fp32.Stdout.Trim().Split(',').Length);
    }

    [Fact]
    public async Task BadFormatsAndShapesAreOneLine()
    {
        string folder = StoredWeightsTests.WriteMixtral(Path.Combine(Folder, "hf"));
        MoeCli.UserError(await MoeCli.Run(["generate", "--model", folder, "--quantize", "q5_0", .. Greedy]),
            "--quantize: expected one of f32, f16, bf16, q8_0, q6_k, q4_k, mxfp4, got 'q5_0'");
        MoeCli.UserError(await MoeCli.Run("quantize", "--model", folder, "--format", "int4", "--out", Path.Combine(Folder, "x.gguf")),
            "--format: expected one of");
        MoeCli.UserError(await MoeCli.Run("quantize", "--model", Path.Combine(Folder, "missing"), "--format", "q8_0", "--out", Path.Combine(Folder, "x.gguf")),
            "missing");
        string narrow = Path.Combine(Folder, "narrow");
        Directory.CreateDirectory(narrow);
        File.WriteAllText(Path.Combine(narrow, "config.json"), """
            { "model_type": "mixtral", "hidden_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64,
              "num_local_experts": 2, "num_experts_per_tok": 1, "vocab_size": 32, "max_position_embeddings": 16 }
            """);
        using (var doc = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(narrow, "config.json"))))
            MoeSharp.IO.ModelStore.Save(Path.Combine(narrow, "model.safetensors"),
                new MoeSharp.Models.MoeTransformer(MoeSharp.IO.ModelStore.FromHuggingFace(doc.RootElement, "test")).Arena);
        MoeCli.UserError(await MoeCli.Run("quantize", "--model", narrow, "--format", "q4_k", "--out", Path.Combine(Folder, "n.gguf")),
            "weight 'model.embed_tokens.weight' has rows of 64; Q4_K needs a multiple of 256");
        Assert.False(File.Exists(Path.Combine(Folder, "n.gguf")));
        MoeCli.UserError(await MoeCli.Run(["generate", "--model", narrow, "--quantize", "q6_k", .. Greedy]),
            "has rows of 64; Q6_K needs a multiple of 256");
    }
}
