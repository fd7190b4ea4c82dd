using System.Globalization;
using System.Text.RegularExpressions;
using MoeSharp.Classic.Data;
using MoeSharp.Tensors;

namespace MoeSharp.Tests.Cli;

/// <summary>Console output is process-wide, so these tests run alone.</summary>
[CollectionDefinition("Console", DisableParallelization = true)]
public sealed class ConsoleCollection;

[Collection("Console")]
public sealed class FitPredictTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "moesharp-cli-" + Guid.NewGuid().ToString("N"));

    public FitPredictTests() => Directory.CreateDirectory(_dir);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>Runs `moe` in process; returns the exit code, standard output and standard error.</summary>
    private static (int Code, string Out, string Error) Moe(params string[] args)
    {
        var (stdout, stderr) = (Console.Out, Console.Error);
        var (o, e) = (new StringWriter(), new StringWriter());
        Console.SetOut(o);
        Console.SetError(e);
        try
        {
            return (MoeSharp.Cli.MoeCommand.Run(args), o.ToString(), e.ToString());
        }
        finally
        {
            Console.SetOut(stdout);
            Console.SetError(stderr);
        }
    }

    private string Csv(string name, string text)
    {
        string path = Path.Combine(_dir, name);
        File.WriteAllText(path, text);
        return path;
    }

    /// <summary>Two clusters with a label that flips inside each, plus a region column.</summary>
    private string Good()
    {
        var lines = new List<string> { "a,b,region,label" };
        for (int i = 0; i < 60; i++)
        {
            double a = (i % 2 == 0 ? -3 : 3) + (i % 7) / 7.0, b = (i % 5) / 5.0 - 0.5;
            lines.Add(FormattableString.Invariant($"{a},{b},{i % 2},{(b > 0 ^ a > 0 ? 1 : 0)}"));
        }
        return Csv("good.csv", string.Join('\n', lines));
    }

    [Fact]
    public void FitThenPredictRoundTrip()
    {
        string csv = Good(), model = Path.Combine(_dir, "model"), preds = Path.Combine(_dir, "preds.csv");
        var fit = Moe("fit", "--csv", csv, "--target", "label", "--experts", "linear,tree", "--partition", "region", "--phases", "experts,gate,em",
            "--em-iterations", "3", "--epochs", "5", "--out", model);
        Assert.True(fit.Code == 0, fit.Error);
        Assert.Contains("classification, 2 classes", fit.Out);
        foreach (var f in new[] { "model.safetensors", "config.json", "report.html", "report.txt" }) Assert.True(File.Exists(Path.Combine(model, f)), f);
        var predict = Moe("predict", "--model", model, "--csv", csv, "--out", preds, "--timeout-ms", "5000");
        Assert.True(predict.Code == 0, predict.Error);
        Assert.Contains("accuracy", predict.Out);
        var rows = File.ReadAllLines(preds);
        Assert.Equal("a,b,region,label,prediction,p_0,p_1", rows[0]);
        Assert.Equal(61, rows.Length);
    }

    [Fact]
    public void AHierarchicalFitSavesAndPredicts()
    {
        string csv = Good(), model = Path.Combine(_dir, "hme");
        var fit = Moe("fit", "--csv", csv, "--target", "label", "--experts", "2*linear", "--groups", "2", "--em-iterations", "2", "--out", model);
        Assert.True(fit.Code == 0, fit.Error);
        Assert.Contains("group 1 expert 1", fit.Out);
        var predict = Moe("predict", "--model", model, "--csv", csv, "--out", Path.Combine(_dir, "p.csv"));
        Assert.True(predict.Code == 0, predict.Error);
    }

    [Theory]
    [InlineData("x,y,label\n1,2,0\n3,,1\n", "label", "line 3 (data row 2), column 'y': missing value")]
    [InlineData("x,colour,label\n1,2,0\n3,red,1\n", "label", "column 'colour': 'red' is not a number")]
    [InlineData("x,y\n1,2\n3,4\n", "label", "no column named 'label'; the columns are 'x', 'y'")]
    [InlineData("x,label\n1,1\n2,1\n3,1\n", "label", "target column 'label' has a single class (1)")]
    [InlineData("x,label\n1,0\n2,1\n3,0\n", "label", "3 rows are fewer than the 4 experts")]
    public void BadInputGivesOneLineNamingTheProblem(string text, string target, string message)
    {
        var (code, _, error) = Moe("fit", "--csv", Csv("bad.csv", text), "--target", target, "--out", Path.Combine(_dir, "m"));
        Assert.Equal(2, code);
        Assert.StartsWith("error: ", error);
        Assert.Contains(message, error);
        Assert.Single(error.Trim().Split('\n'));
    }

    [Fact]
    public void AnExpertThatDivergesIsNamed()
    {
        var (code, _, error) = Moe("fit", "--csv", Good(), "--target", "label", "--experts", "linear,mlp", "--lr", "1e30", "--expert-epochs", "3", "--out", Path.Combine(_dir, "m"));
        Assert.Equal(2, code);
        Assert.Contains("Expert 1 (mlp)", error);
        Assert.Contains("NaN", error);
    }

    [Fact]
    public void UnknownExpertKindsAndPhasesAreNamed()
    {
        Assert.Contains("unknown kind 'forest'", Moe("fit", "--csv", Good(), "--target", "label", "--experts", "mlp,forest").Error);
        Assert.Contains("unknown phase 'warmup'", Moe("fit", "--csv", Good(), "--target", "label", "--phases", "experts,warmup").Error);
        Assert.Contains("Partition column 'b' has 5 distinct values", Moe("fit", "--csv", Good(), "--target", "label", "--experts", "2*linear", "--partition", "b").Error);
    }

    /// <summary>200 rows of two random features and a label that is a coin flip: nothing to learn, much to memorise.</summary>
    private (string Path, string[] Lines) Noise()
    {
        var rng = new Rng(5);
        var lines = new List<string> { "a,b,label" };
        for (int i = 0; i < 200; i++) lines.Add(FormattableString.Invariant($"{rng.NextFloat()},{rng.NextFloat()},{(rng.NextFloat() < 0.5f ? 0 : 1)}"));
        return (Csv("noise.csv", string.Join('\n', lines)), lines.ToArray());
    }

    private static double Number(string text, string pattern)
    {
        var m = Regex.Match(text, pattern);
        Assert.True(m.Success, $"no match for '{pattern}' in:\n{text}");
        return double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture);
    }

    [Fact]
    public void FitScoresTheRowsItHeldOutNotTheOnesItMemorised()
    {
        var (csv, lines) = Noise();
        string model = Path.Combine(_dir, "noise"), memorised = Path.Combine(_dir, "memorised");
        string[] tree = ["--target", "label", "--experts", "tree", "--tree-depth", "30", "--phases", "experts"];
        // On its own training rows a deep tree is perfect: that is the score fit used to print.
        var all = Moe(["fit", "--csv", csv, .. tree, "--test-fraction", "0", "--out", memorised]);
        Assert.True(all.Code == 0, all.Error);
        Assert.Equal(1.0, Number(all.Out, @"no rows held out \(--test-fraction 0\): accuracy ([0-9.]+) on the training rows"));

        var fit = Moe(["fit", "--csv", csv, .. tree, "--out", model]);
        Assert.True(fit.Code == 0, fit.Error);
        double heldOut = Number(fit.Out, @"held-out 20%, stratified: accuracy ([0-9.]+) \(40 rows the model never saw\)");
        // Coin-flip labels: chance is 0.5, with a standard deviation of 0.08 over 40 rows; 0.8 is almost 4 of them.
        Assert.InRange(heldOut, 0.2, 0.8);

        // The same rows, found independently from the split's public definition, scored by `predict`.
        var labels = lines.Skip(1).Select(l => l[^1] - '0').ToArray();
        var test = Folds.Holdout(200, 0.2, seed: 1, labels);
        Assert.Equal(40, test.Length);
        string heldOutCsv = Csv("held-out.csv", string.Join('\n', test.Select(r => lines[r + 1]).Prepend(lines[0])));
        var predict = Moe("predict", "--model", model, "--csv", heldOutCsv, "--out", Path.Combine(_dir, "p.csv"));
        Assert.True(predict.Code == 0, predict.Error);
        Assert.Equal(heldOut, Number(predict.Out, @"accuracy ([0-9.]+)"));
        Assert.Contains("saved the model trained on the other 160 rows", fit.Out);
    }

    [Fact]
    public void CrossValidationScoresEachFoldAndRefitsOnEveryRow()
    {
        var fit = Moe("fit", "--csv", Good(), "--target", "label", "--experts", "2*linear", "--epochs", "5", "--cv", "3", "--out", Path.Combine(_dir, "cv"));
        Assert.True(fit.Code == 0, fit.Error);
        Assert.Contains("fold 3/3: accuracy", fit.Out);
        Assert.Matches(@"3-fold cross-validation, stratified: accuracy [0-9.]+ ± [0-9.]+", fit.Out);
        Assert.Contains("saved the model refit on all 60 rows", fit.Out);
    }

    [Theory]
    [InlineData("--test-fraction", "0.7", "--test-fraction: expected a number from 0 to 0.5, got '0.7'")]
    [InlineData("--cv", "1", "--cv must be 0 (off) or between 2 and the 60 rows, got 1")]
    public void BadScoringOptionsNameTheOption(string option, string value, string message)
    {
        var (code, _, error) = Moe("fit", "--csv", Good(), "--target", "label", option, value, "--out", Path.Combine(_dir, "m"));
        Assert.Equal(2, code);
        Assert.Contains(message, error);
        Assert.Single(error.Trim().Split('\n'));
        Assert.Contains("give one of them", Moe("fit", "--csv", Good(), "--target", "label", "--cv", "3", "--test-fraction", "0.3").Error);
    }
}
