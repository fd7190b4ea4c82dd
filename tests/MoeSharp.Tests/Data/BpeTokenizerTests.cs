using System.Text.Json;
using MoeSharp.Data;
using MoeSharp.Tests.Cli;
using MoeSharp.Tests.IO;

namespace MoeSharp.Tests.Data;

/// <summary>BPE through Microsoft.ML.Tokenizers with a hand-written vocabulary and merges.</summary>
public class BpeTokenizerTests : TempFolderTest
{
    /// <summary>Single characters plus the merges t+h → th, th+e → the, a+t → at.</summary>
    private (string Vocab, string Merges) Files()
    {
        var symbols = "abcdefghijklmnopqrstuvwxyz .,\n".Select(c => c.ToString()).Concat(["th", "the", "at"]).ToArray();
        string vocab = Path.Combine(Folder, "vocab.json");
        File.WriteAllText(vocab, JsonSerializer.Serialize(symbols.Select((s, i) => (s, i)).ToDictionary(p => p.s, p => p.i)));
        string merges = Path.Combine(Folder, "merges.txt");
        File.WriteAllText(merges, "#version: 0.2\nt h\nth e\na t\n");
        return (vocab, merges);
    }

    [Fact]
    public void MergesApplyAndTextRoundTrips()
    {
        var (vocab, merges) = Files();
        var bpe = new BpeTextTokenizer(vocab, merges);
        Assert.Equal(33, bpe.VocabSize);
        var ids = bpe.Encode("the cat");
        Assert.Equal([31, 26, 2, 32], ids); // "the", " ", "c", "at"
        Assert.Equal("the cat", bpe.Decode(ids));
    }

    [Fact]
    public void MissingFileIsNamed()
    {
        var ex = Assert.Throws<FileNotFoundException>(() => new BpeTextTokenizer(Path.Combine(Folder, "nope.json"), "x"));
        Assert.Contains("nope.json", ex.Message);
    }

    [Fact]
    public async Task TrainsAndGeneratesWithBpe()
    {
        var (vocab, merges) = Files();
        string data = Path.Combine(Folder, "text.txt");
        File.WriteAllText(data, string.Concat(Enumerable.Repeat("the cat sat on the mat, then the rat ate the hat.\n", 40)));
        string config = Path.Combine(Folder, "tiny.json");
        File.WriteAllText(config, MoeCli.TinyConfig);
        string run = Path.Combine(Folder, "run");
        var train = await MoeCli.Run("train", "--data", data, "--bpe-vocab", vocab, "--bpe-merges", merges, "--config", config,
            "--steps", "3", "--batch", "2", "--eval-every", "3", "--eval-batches", "1", "--out", run);
        Assert.True(train.ExitCode == 0, train.Stderr + train.Stdout);
        Assert.Contains("vocab 33", train.Stdout);
        var gen = await MoeCli.Run("generate", "--model", run, "--prompt", "the c", "--max-tokens", "4", "--seed", "1");
        Assert.True(gen.ExitCode == 0, gen.Stderr);
        Assert.StartsWith("the c", gen.Stdout);
    }
}
