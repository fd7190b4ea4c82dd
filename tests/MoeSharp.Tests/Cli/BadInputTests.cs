using System.Buffers.Binary;
using MoeSharp.IO;
using MoeSharp.Tests.IO;

namespace MoeSharp.Tests.Cli;

/// <summary>
/// Bad input through the `moe` command as a user types it: every case ends with one line on stderr naming the
/// thing at fault, exit code 2, and (for usage errors) nothing on stdout.
/// </summary>
public class BadInputTests(TinyRun tiny) : TempFolderTest, IClassFixture<TinyRun>
{
    public static TheoryData<string[], string[]> UsageErrors() => new()
    {
        { ["train", "--steps", "abc"], ["moe train: --steps", "positive integer", "'abc'"] },
        { ["train", "--lr", "NaN"], ["moe train: --lr", "positive number", "'NaN'"] },
        { ["train", "--stop-at", "0"], ["moe train: --stop-at", "'0'"] },
        { ["generate", "--model", "m", "--prompt", "12+3=", "--max-tokens", "-5"], ["moe generate: --max-tokens", "'-5'"] },
        { ["generate", "--model", "m", "--prompt", "12+3=", "--top-p", "2"], ["moe generate: --top-p", "(0, 1]", "'2'"] },
        { ["generate", "--model", "m", "--prompt", "12+3=", "--seed", "-1"], ["moe generate: --seed", "non-negative integer", "'-1'"] },
        { ["generate", "--model", "m", "--temperature", "-0.5"], ["moe generate: --temperature", "'-0.5'"] },
        { ["eval", "--model", "m", "--threads", "0"], ["moe eval: --threads", "'0'"] },
        { ["eval"], ["moe eval", "--model", "required"] },
        { ["bench", "--tokens", "1.5"], ["moe bench: --tokens", "'1.5'"] },
        { ["fit", "--csv", "a.csv", "--target", "y", "--gate-holdout", "0.9"], ["moe fit: --gate-holdout", "from 0 to 0.5", "'0.9'"] },
        { ["predict", "--model", "m", "--csv", "a.csv", "--timeout-ms", "0"], ["moe predict: --timeout-ms", "positive number"] },
        { ["train", "--stpes", "5"], ["moe train", "unknown option '--stpes'"] },
        { ["trian"], ["moe:", "unknown command 'trian'", "train"] },
        { [], ["moe:", "no command", "generate"] },
    };

    [Theory]
    [MemberData(nameof(UsageErrors))]
    public async Task UsageError(string[] args, string[] fragments)
    {
        var r = await MoeCli.Run(args);
        MoeCli.UserError(r, fragments);
        // Checked while parsing, so nothing (a prompt, a model summary) is printed first.
        Assert.Equal("", r.Stdout);
        // The CLI's names, never the library's parameter names.
        Assert.DoesNotContain("maxTokens", r.Stderr);
    }

    [Fact]
    public async Task DataThatIsABinaryFile()
    {
        var bytes = new byte[4096];
        new Random(1).NextBytes(bytes);
        bytes[100] = 0;
        string data = Write("program.bin", bytes);
        MoeCli.UserError(await MoeCli.Run("train", "--data", data, "--out", Path.Combine(Folder, "x")), "program.bin", "not text", "NUL byte at offset");
    }

    [Fact]
    public async Task DataThatIsNotUtf8()
    {
        // "é" in Latin-1 is the lone byte 0xE9, invalid in UTF-8: 1 character in 6 here.
        var latin1 = string.Concat(Enumerable.Repeat("café crème ", 100)).Select(c => (byte)c).ToArray();
        string data = Write("latin1.txt", latin1);
        MoeCli.UserError(await MoeCli.Run("train", "--data", data, "--out", Path.Combine(Folder, "x")), "latin1.txt", "not UTF-8", "byte offset 3");
    }

    [Fact]
    public async Task DataThatIsADirectory() =>
        MoeCli.UserError(await MoeCli.Run("eval", "--model", tiny.Run, "--data", Folder), Folder, "is a directory");

    public static TheoryData<string, float> NonFiniteWeights() => new()
    {
        { "generate", float.NaN },
        { "eval", float.PositiveInfinity },
    };

    [Theory]
    [MemberData(nameof(NonFiniteWeights))]
    public async Task ACheckpointWithANonFiniteWeight(string command, float value)
    {
        const string tensor = "model.layers.1.block_sparse_moe.experts.2.w1.weight";
        string run = CopyRun("nonfinite-" + command);
        SetWeights(run, tensor, (index, v) => index == 5 ? value : v);
        var r = await MoeCli.Run(Command(command, run));
        MoeCli.UserError(r, "model.safetensors", $"'{tensor}'", value.ToString(System.Globalization.CultureInfo.InvariantCulture), "index 5");
        Assert.Equal("", r.Stdout);
    }

    /// <summary>Finite weights whose activations overflow: a norm scale of 1e30 in layer 1 sends its FFN past float32.</summary>
    [Theory]
    [InlineData("generate")]
    [InlineData("eval")]
    public async Task ActivationsThatOverflow(string command)
    {
        string run = CopyRun("overflow-" + command);
        SetWeights(run, "model.layers.1.post_attention_layernorm.weight", (_, _) => 1e30f);
        var r = await MoeCli.Run(Command(command, run));
        MoeCli.UserError(r, "'model.layers.1.block_sparse_moe'", "finite input");
    }

    [Theory]
    [InlineData(1, "no parameter for checkpoint tensor 'model.layers.1.")]
    [InlineData(3, "no tensor 'model.layers.2.")]
    public async Task AConfigWithAnotherLayerCount(int layers, string fragment)
    {
        string run = CopyRun($"layers-{layers}");
        string config = Path.Combine(run, "config.json");
        File.WriteAllText(config, File.ReadAllText(config).Replace("\"layers\": 2,", $"\"layers\": {layers},"));
        MoeCli.UserError(await MoeCli.Run(Command("generate", run)), "model.safetensors", fragment, $"the config has {layers} layer{(layers == 1 ? "" : "s")}, the checkpoint 2");
    }

    private static string[] Command(string command, string run) => command == "generate"
        ? ["generate", "--model", run, "--prompt", "12+3=", "--max-tokens", "4", "--temperature", "0", "--print-ids"]
        : ["eval", "--model", run, "--max-tokens", "64"];

    private string CopyRun(string name)
    {
        Assert.True(tiny.Train.ExitCode == 0, tiny.Train.Stderr);
        string run = Path.Combine(Folder, name);
        Directory.CreateDirectory(run);
        foreach (var f in Directory.GetFiles(tiny.Run)) File.Copy(f, Path.Combine(run, Path.GetFileName(f)));
        return run;
    }

    /// <summary>Rewrites the F32 values of one tensor of the run's model.safetensors in place.</summary>
    private static void SetWeights(string run, string tensor, Func<int, float, float> value)
    {
        string path = Path.Combine(run, "model.safetensors");
        long begin, count;
        using (var file = SafetensorsFile.Open(path))
        {
            var entry = file[tensor];
            Assert.Equal(SafetensorsDType.F32, entry.DType);
            (begin, count) = (entry.Begin, entry.ElementCount);
        }
        byte[] bytes = File.ReadAllBytes(path);
        long data = 8 + (long)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        for (int i = 0; i < count; i++)
        {
            var at = bytes.AsSpan((int)(data + begin + 4 * i), 4);
            BinaryPrimitives.WriteSingleLittleEndian(at, value(i, BinaryPrimitives.ReadSingleLittleEndian(at)));
        }
        File.WriteAllBytes(path, bytes);
    }
}
