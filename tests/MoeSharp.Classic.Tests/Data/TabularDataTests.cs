using MoeSharp.Classic.Data;
using MoeSharp.Tensors;

namespace MoeSharp.Classic.Tests.Data;

public class TabularDataTests
{
    private static CsvTable Parse(string text) => CsvTable.Parse(new StringReader(text), "test.csv");

    [Fact]
    public void ParsesNumbersUnderTheHeader()
    {
        var t = Parse("a,b,label\n1,2.5,0\n-3,1e-2,1\n\n");
        Assert.Equal(["a", "b", "label"], t.Columns);
        Assert.Equal(2, t.Rows);
        Assert.Equal(0.01, t[1, 1]);
        Assert.Equal([0.0, 1.0], t.Column("label"));
    }

    [Theory]
    [InlineData("a,b\n1,2\n3,\n", "test.csv line 3 (data row 2), column 'b': missing value")]
    [InlineData("a,b\n1,NA\n", "test.csv line 2 (data row 1), column 'b': missing value 'NA'")]
    [InlineData("a,sex\n1,2\n3,male\n", "test.csv line 3 (data row 2), column 'sex': 'male' is not a number")]
    [InlineData("a,b\n1,2,3\n", "test.csv line 2 (data row 1): 3 fields, but the header has 2 columns")]
    [InlineData("a,a\n1,2\n", "column 'a' appears twice (columns 1 and 2)")]
    [InlineData("", "test.csv: the file is empty")]
    [InlineData("a,b\n", "test.csv: the header is followed by no data rows")]
    public void BadFilesNameTheRowAndColumn(string text, string message)
    {
        var ex = Assert.Throws<InvalidDataException>(() => Parse(text));
        Assert.Contains(message, ex.Message);
    }

    [Fact]
    public void AnAbsentTargetColumnListsTheColumns()
    {
        var ex = Assert.Throws<ArgumentException>(() => TabularSchema.Fit(Parse("a,b\n1,2\n"), "label"));
        Assert.Contains("no column named 'label'; the columns are 'a', 'b'", ex.Message);
    }

    [Fact]
    public void ASingleClassIsAnError()
    {
        var ex = Assert.Throws<InvalidDataException>(() => TabularSchema.Fit(Parse("a,label\n1,3\n2,3\n"), "label", TabularTask.Classification));
        Assert.Contains("target column 'label' has a single class (3) across 2 rows", ex.Message);
    }

    [Fact]
    public void SchemaInfersTheTaskStandardisesAndMapsClasses()
    {
        var table = Parse("x,y,label\n0,10,5\n2,10,7\n4,10,5\n6,10,9\n");
        var schema = TabularSchema.Fit(table, "label");
        Assert.Equal(TabularTask.Classification, schema.Task);
        Assert.Equal([5.0, 7.0, 9.0], schema.ClassValues);
        var data = schema.Encode(table);
        Assert.Equal([0, 1, 0, 2], data.Labels);
        // x: mean 3, population std √5; the constant column y gets std 1 so it maps to 0.
        Numerics.Close([-3 / MathF.Sqrt(5), 0, -1 / MathF.Sqrt(5), 0, 1 / MathF.Sqrt(5), 0, 3 / MathF.Sqrt(5), 0], data.X.Span, 1e-6f, 1e-7f, "standardised inputs");
        var regression = TabularSchema.Fit(Parse("x,t\n1,1.5\n2,2.5\n"), "t");
        Assert.Equal(TabularTask.Regression, regression.Task);
        Assert.Equal(2.5, regression.DecodeValue(regression.Encode(Parse("x,t\n1,1.5\n2,2.5\n")).Targets[1]), 1e-6);
    }

    [Fact]
    public void PredictionInputsNeedEveryFeatureColumn()
    {
        var schema = TabularSchema.Fit(Parse("x,z,label\n0,1,0\n1,0,1\n"), "label");
        var ex = Assert.Throws<ArgumentException>(() => schema.Inputs(Parse("x,label\n0,0\n")));
        Assert.Contains("needs feature column 'z'", ex.Message);
    }

    [Fact]
    public void PartitionFromAColumnNeedsOneValuePerExpert()
    {
        Assert.Equal([1, 0, 1, 2], Partition.FromColumn([5, 2, 5, 9], 3, "region"));
        var ex = Assert.Throws<ArgumentException>(() => Partition.FromColumn([5, 2, 5, 9], 2, "region"));
        Assert.Contains("Partition column 'region' has 3 distinct values", ex.Message);
    }

    [Fact]
    public void KMeansFindsWellSeparatedClusters()
    {
        var rng = new Rng(1);
        float[][] centres = [[0, 0], [10, 0], [0, 10]];
        var x = new float[90 * 2];
        for (int r = 0; r < 90; r++)
            for (int j = 0; j < 2; j++) x[r * 2 + j] = centres[r % 3][j] + 0.5f * rng.NextNormal();
        var a = Partition.KMeans(Tensor.FromArray(x, 90, 2), 3, seed: 4);
        for (int r = 3; r < 90; r++) Assert.Equal(a[r % 3], a[r]);
        Assert.Equal(3, a.Distinct().Count());
    }

    [Fact]
    public void StratifiedFoldsCoverEveryRowOnceAndKeepClassShares()
    {
        var labels = Enumerable.Range(0, 100).Select(r => r < 30 ? 1 : 0).ToArray();
        var folds = Folds.Split(100, 5, seed: 1, labels);
        Assert.Equal(Enumerable.Range(0, 100), folds.SelectMany(f => f).Order());
        Assert.All(folds, f => Assert.Equal(6, f.Count(r => labels[r] == 1)));
        Assert.Equal(80, Folds.Complement(100, folds[0]).Length);
    }

    [Fact]
    public void AStratifiedHoldoutIsDisjointAndKeepsClassShares()
    {
        // 30 % of class 1, and a class with a single row that must stay in training.
        var labels = Enumerable.Range(0, 101).Select(r => r == 100 ? 2 : r < 30 ? 1 : 0).ToArray();
        var test = Folds.Holdout(101, 0.2, seed: 1, labels);
        var train = Folds.Complement(101, test);
        Assert.Empty(test.Intersect(train));
        Assert.Equal(Enumerable.Range(0, 101), test.Concat(train).Order());
        Assert.Equal(6, test.Count(r => labels[r] == 1));
        Assert.Equal(14, test.Count(r => labels[r] == 0));
        Assert.Contains(100, train);
        Assert.Equal(test, Folds.Holdout(101, 0.2, seed: 1, labels));
        Assert.NotEqual(test, Folds.Holdout(101, 0.2, seed: 2, labels));
    }

    [Fact]
    public void AnUnstratifiedHoldoutTakesTheRoundedShare()
    {
        var test = Folds.Holdout(101, 0.2, seed: 1);
        Assert.Equal(20, test.Length);
        Assert.Equal(test.Length, test.Distinct().Count());
        Assert.All(test, r => Assert.InRange(r, 0, 100));
        Assert.Empty(Folds.Holdout(101, 0, seed: 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => Folds.Holdout(10, 0.6, seed: 1));
    }
}
