using MoeSharp.Data;
using MoeSharp.Tests.IO;

namespace MoeSharp.Tests.Data;

public class LmDataTests : TempFolderTest
{
    private DataSource Source(bool bpe)
    {
        string data = Path.Combine(Folder, "data.txt"), vocab = Path.Combine(Folder, "vocab.json"), merges = Path.Combine(Folder, "merges.txt");
        File.WriteAllText(data, "the cat sat on the mat\n");
        File.WriteAllText(vocab, "{\"t\": 0, \"h\": 1}");
        File.WriteAllText(merges, "#version: 0.2\nt h\n");
        var source = new DataSource { Kind = "file", Path = data, BpeVocab = bpe ? vocab : null, BpeMerges = bpe ? merges : null };
        return source with { Sha256 = LmData.Hash(source) };
    }

    [Fact]
    public void TheHashCoversTheDataFileAndTheBpeFiles()
    {
        var plain = Source(bpe: false);
        Assert.Matches("^[0-9a-f]{64}$", plain.Sha256);
        var withBpe = Source(bpe: true);
        Assert.NotEqual(plain.Sha256, withBpe.Sha256);
        Assert.Null(LmData.Hash(new DataSource()));
        LmData.CheckUnchanged(withBpe);
        File.AppendAllText(withBpe.BpeMerges!, "a t\n");
        var error = Assert.Throws<InvalidDataException>(() => LmData.CheckUnchanged(withBpe));
        Assert.Contains("or its BPE vocab or merges changed since the run started", error.Message);
    }

    [Fact]
    public void AMissingFileIsNamed()
    {
        var source = Source(bpe: true);
        File.Delete(source.BpeVocab!);
        var error = Assert.Throws<FileNotFoundException>(() => LmData.CheckUnchanged(source));
        Assert.Contains("vocab.json", error.Message);
    }

    [Fact]
    public void AStrayInvalidByteInLongTextIsReadAsAReplacementCharacter()
    {
        // One invalid byte among 1,000 characters: under the 1 % that makes a file "not text".
        byte[] text = [0xEF, 0xBB, 0xBF, .. System.Text.Encoding.UTF8.GetBytes(new string('a', 500)), 0xFF, .. System.Text.Encoding.UTF8.GetBytes(new string('b', 499))];
        string path = Write("scraped.txt", text);
        string read = LmData.ReadText(path);
        Assert.Equal(1000, read.Length);
        Assert.Equal('\uFFFD', read[500]);
        Assert.Equal('a', read[0]);
    }
}
