using System.Globalization;
using MoeSharp.Tests.IO;

namespace MoeSharp.Tests.Cli;

/// <summary><c>moe eval --against fp32 --quantize F</c> end to end on the tiny Mixtral of <see cref="StoredWeightsTests"/>.</summary>
public sealed class EvalAgainstTests(TinyRun tiny) : TempFolderTest, IClassFixture<TinyRun>
{
    /// <summary>Two context windows of 64 plus the last target, as a file of comma-separated ids below the vocabulary of 256.</summary>
    private string WriteIds()
    {
        string path = Path.Combine(Folder, "ids.txt");
        File.WriteAllText(path, string.Join(',', Enumerable.Range(0, 129).Select(i => (i * 97 + 13) % 256)));
        return path;
    }

    private static Dictionary<string, string> Fields(MoeCli.Result r)
    {
        Assert.True(r.ExitCode == 0, r.Stderr);
        string line = r.Stdout.Split('\n').Single(l => l.StartsWith("quality ", StringComparison.Ordinal));
        return line.Split(' ').Skip(1).Select(f => f.Split('=', 2)).ToDictionary(f => f[0], f => f[1]);
    }

    private static double Number(Dictionary<string, string> f, string key) => double.Parse(f[key], CultureInfo.InvariantCulture);

    [Fact]
    public async Task F32IsExactlyTheReferenceAndQ4KIsFurtherFromItThanQ8()
    {
        string folder = StoredWeightsTests.WriteMixtral(Path.Combine(Folder, "hf"));
        string ids = WriteIds();
        string[] common = ["eval", "--model", folder, "--against", "fp32", "--ids", ids, "--threads", "2"];
        var f32 = Fields(await MoeCli.Run([.. common, "--quantize", "f32"]));
        Assert.Equal("128", f32["tokens"]);
        Assert.Equal(0.0, Number(f32, "kl"));
        Assert.Equal(1.0, Number(f32, "top1"));
        Assert.Equal(f32["ppl_fp32"], f32["ppl"]);
        Assert.Equal("8/8", f32["greedy_identical"]);

        var q8 = Fields(await MoeCli.Run([.. common, "--quantize", "q8_0"]));
        var q4 = Fields(await MoeCli.Run([.. common, "--quantize", "q4_k"]));
        Assert.Equal(f32["ppl_fp32"], q8["ppl_fp32"]);
        // Quantization changes the logits, so KL is positive; Q4_K's step is about 16× Q8_0's, so its KL (quadratic
        // in the logit error for small errors) is larger by far; the factor 4 leaves room for the blocks' own scales.
        Assert.True(Number(q8, "kl") > 0, $"q8_0 KL {q8["kl"]}");
        Assert.True(Number(q4, "kl") > 4 * Number(q8, "kl"), $"q4_k KL {q4["kl"]} against q8_0 KL {q8["kl"]}");
    }

    /// <summary>
    /// On a run folder the held-out tokens are its validation split, and the fp32 perplexity is the one plain
    /// <c>moe eval</c> reports over the same 4 windows of 16 (printed to 3 decimals, hence the tolerance 1e-3 relative;
    /// the two differ only in float against double accumulation of the cross-entropy).
    /// </summary>
    [Fact]
    public async Task OnARunFolderTheReferencePerplexityIsPlainEvals()
    {
        Assert.True(tiny.Train.ExitCode == 0, tiny.Train.Stderr);
        var bf16 = Fields(await MoeCli.Run("eval", "--model", tiny.Run, "--against", "fp32", "--quantize", "bf16", "--max-tokens", "64"));
        var plain = await MoeCli.Run("eval", "--model", tiny.Run, "--max-tokens", "64");
        Assert.True(plain.ExitCode == 0, plain.Stderr);
        string text = plain.Stdout[(plain.Stdout.IndexOf("perplexity ", StringComparison.Ordinal) + "perplexity ".Length)..];
        double perplexity = double.Parse(text[..text.IndexOfAny(['\n', '\r'])], CultureInfo.InvariantCulture);
        Assert.Equal("64", bf16["tokens"]);
        Assert.Equal(perplexity, Number(bf16, "ppl_fp32"), perplexity * 1e-3);
        Assert.True(Number(bf16, "kl") > 0, $"bf16 KL {bf16["kl"]}");
    }

    [Fact]
    public async Task MissingFormatOrHeldOutIdsAreOneLine()
    {
        string folder = StoredWeightsTests.WriteMixtral(Path.Combine(Folder, "hf"));
        MoeCli.UserError(await MoeCli.Run("eval", "--model", folder, "--against", "fp32", "--ids", WriteIds()), "--against fp32 needs --quantize");
        MoeCli.UserError(await MoeCli.Run("eval", "--model", folder, "--against", "fp32", "--quantize", "q8_0"), "is not a run folder", "--ids");
        MoeCli.UserError(await MoeCli.Run("eval", "--model", folder, "--against", "bf16", "--quantize", "q8_0"), "--against: expected fp32, got 'bf16'");
        File.WriteAllText(Path.Combine(Folder, "bad.txt"), "1,2,x");
        MoeCli.UserError(await MoeCli.Run("eval", "--model", folder, "--against", "fp32", "--quantize", "q8_0", "--ids", Path.Combine(Folder, "bad.txt")),
            "bad.txt: token 2 is 'x'");
    }
}
