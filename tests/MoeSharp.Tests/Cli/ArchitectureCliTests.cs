using System.Text.Json.Nodes;
using MoeSharp.IO;
using MoeSharp.Tests.IO;
using MoeSharp.Tests.Models;

namespace MoeSharp.Tests.Cli;

public class ArchitectureCliTests : TempFolderTest
{
    /// <summary>`moe generate` on each tiny architecture folder prints llama.cpp's 16 greedy ids (Golden/&lt;arch&gt;/expected.safetensors).</summary>
    [Theory]
    [MemberData(nameof(ArchitectureGoldenTests.Architectures), MemberType = typeof(ArchitectureGoldenTests))]
    public async Task GeneratePrintsLlamaCppsGreedyIds(string arch)
    {
        string folder = ArchitectureGoldenTests.Folder(arch);
        using var expected = SafetensorsFile.Open(Path.Combine(folder, "expected.safetensors"));
        var r = await MoeCli.Run("generate", "--model", folder, "--prompt-ids", string.Join(",", expected.ReadInt32("prompt")),
            "--max-tokens", "16", "--temperature", "0", "--print-ids");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Equal(string.Join(",", expected.ReadInt32("ids")), r.Stdout.Trim());
    }

    /// <summary>`moe generate --model x.gguf` on each checked-in GGUF (see ArchitectureGoldenTests.TheConvertedGgufLoadsToTheSameModel) prints llama.cpp's ids.</summary>
    [Theory]
    [InlineData("qwen2_moe", "model-f32.gguf")]
    [InlineData("deepseek_v2", "model-f32.gguf")]
    [InlineData("deepseek_v3", "model-f32.gguf")]
    [InlineData("gpt_oss", "model-mxfp4.gguf")]
    public async Task GenerateReadsAGgufFile(string arch, string file)
    {
        string folder = ArchitectureGoldenTests.Folder(arch);
        using var expected = SafetensorsFile.Open(Path.Combine(folder, "expected.safetensors"));
        var r = await MoeCli.Run("generate", "--model", Path.Combine(folder, file), "--prompt-ids", string.Join(",", expected.ReadInt32("prompt")),
            "--max-tokens", "16", "--temperature", "0", "--print-ids");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Equal(string.Join(",", expected.ReadInt32("ids")), r.Stdout.Trim());
    }

    [Fact]
    public async Task AnUnknownModelTypeIsOneLineAndExitCode2()
    {
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(ArchitectureGoldenTests.Folder("olmoe"), "config.json")))!;
        config["model_type"] = "olmoe2";
        File.WriteAllText(Path.Combine(Folder, "config.json"), config.ToJsonString());
        MoeCli.UserError(await MoeCli.Run("generate", "--model", Folder, "--prompt-ids", "1", "--max-tokens", "1"),
            "model_type 'olmoe2' is not supported", "mixtral, qwen2_moe, qwen3_moe, olmoe");
    }
}
