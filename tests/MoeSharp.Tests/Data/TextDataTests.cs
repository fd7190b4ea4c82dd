using MoeSharp.Data;
using MoeSharp.Tensors;

namespace MoeSharp.Tests.Data;

public class TextDataTests
{
    [Fact]
    public void CharTokenizerRoundTripsAndNamesUnknownCharacters()
    {
        var tok = CharTokenizer.FromText("hello world");
        Assert.Equal(8, tok.VocabSize); // ' ', d, e, h, l, o, r, w
        Assert.Equal("low hold", tok.Decode(tok.Encode("low hold")));
        Assert.Equal([3, 2, 4, 4, 5], tok.Encode("hello"));
        var ex = Assert.Throws<ArgumentException>(() => tok.Encode("hex"));
        Assert.Contains("'x'", ex.Message);
        Assert.Contains("position 2", ex.Message);
    }

    [Fact]
    public void DatasetSplitsHeadAndTailAndSamplesShiftedWindows()
    {
        var tokens = Enumerable.Range(0, 100).ToArray();
        var data = new TextDataset(tokens, 0.9);
        Assert.Equal(90, data.Train.Length);
        Assert.Equal(90, data.Validation[0]);
        var x = new int[3 * 8];
        var y = new int[3 * 8];
        data.Sample(new Rng(1), validation: false, 3, 8, x, y);
        for (int i = 0; i < x.Length; i++) Assert.Equal(x[i] + 1, y[i]);
        Assert.All(y, t => Assert.True(t < 90));
    }

    [Fact]
    public void SameSeedSameBatches()
    {
        var data = new TextDataset(Enumerable.Range(0, 500).ToArray());
        var a = new int[40];
        var b = new int[40];
        data.Sample(new Rng(7), false, 4, 10, a, new int[40]);
        data.Sample(new Rng(7), false, 4, 10, b, new int[40]);
        Assert.Equal(a, b);
    }
}
