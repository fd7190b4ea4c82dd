using MoeSharp.Classic.Data;
using MoeSharp.Classic.Experts;
using MoeSharp.Tensors;

namespace MoeSharp.Classic.Tests.Experts;

public class TreeExpertTests
{
    private static TabularData Classes(float[] x, int features, int[] labels, int classes) =>
        new(Tensor.FromArray(x, labels.Length, features), TabularTask.Classification, labels, null, classes);

    [Fact]
    public void WeightedStumpMatchesTheHandDerivedGiniSplit()
    {
        // x = 1..4, y = 0,1,0,1. Unweighted, the splits at 1.5 and 3.5 tie (Gini decrease 2/3) and 1.5 comes first.
        // With weights (1,1,3,1): class weights 4 and 2; the decrease W·G(parent) − W_L·G(L) − W_R·G(R) is
        // 8/3 − (1·0 + 5·0.48) = 0.267 at 1.5, 8/3 − (2·0.5 + 4·0.375) = 0.167 at 2.5, 8/3 − (5·0.32 + 0) = 1.067 at 3.5.
        var data = Classes([1, 2, 3, 4], 1, [0, 1, 0, 1], 2);
        var tree = new TreeExpert(1, 2, TabularTask.Classification, new TreeExpertOptions { MaxDepth = 1 });
        tree.Fit(data, [1, 1, 1, 1]);
        Assert.Equal(1.5f, tree.Threshold[0]);
        tree.Fit(data, [1, 1, 3, 1]);
        Assert.Equal(3, tree.Nodes);
        Assert.Equal(0, tree.Feature[0]);
        Assert.Equal(3.5f, tree.Threshold[0]);
        // Leaves: left holds classes (1+3, 1) of weight 5, right only class 1.
        Numerics.Close([0.8f, 0.2f], tree.Value.Slice(tree.Left[0] * 2, 2), 1e-6f, 0, "left leaf");
        Numerics.Close([0f, 1f], tree.Value.Slice(tree.Right[0] * 2, 2), 1e-6f, 0, "right leaf");
    }

    [Fact]
    public void IntegerWeightsEqualRepeatedRows()
    {
        // Weighted CART's defining property: weight k is the row repeated k times.
        var rng = new Rng(3);
        int n = 30, d = 3;
        var x = new float[n * d];
        for (int i = 0; i < x.Length; i++) x[i] = MathF.Round(rng.NextFloat() * 10);
        var labels = Enumerable.Range(0, n).Select(_ => rng.NextInt(3)).ToArray();
        var weights = Enumerable.Range(0, n).Select(_ => (float)rng.NextInt(4)).ToArray();
        var weighted = new TreeExpert(d, 3, TabularTask.Classification, new TreeExpertOptions { MaxDepth = 4 });
        weighted.Fit(Classes(x, d, labels, 3), weights);
        var rows = Enumerable.Range(0, n).SelectMany(r => Enumerable.Repeat(r, (int)weights[r])).ToArray();
        var repeated = new TreeExpert(d, 3, TabularTask.Classification, new TreeExpertOptions { MaxDepth = 4 });
        repeated.Fit(Classes(x, d, labels, 3).Subset(rows), Enumerable.Repeat(1f, rows.Length).ToArray());
        Assert.Equal(repeated.Feature.ToArray(), weighted.Feature.ToArray());
        Assert.Equal(repeated.Threshold.ToArray(), weighted.Threshold.ToArray());
        Numerics.Close(repeated.Value, weighted.Value, 1e-6f, 1e-7f, "node values");
    }

    [Theory]
    [InlineData(TabularTask.Classification)]
    [InlineData(TabularTask.Regression)]
    public void MatchesANaiveWeightedCartReference(TabularTask task)
    {
        var rng = new Rng(11);
        int n = 40, d = 3, classes = 3;
        var x = new float[n * d];
        for (int i = 0; i < x.Length; i++) x[i] = rng.NextFloat() * 4 - 2;
        var labels = Enumerable.Range(0, n).Select(r => (x[r * d] > 0 ? 1 : 0) + (x[r * d + 2] > 0.5f ? 1 : 0)).ToArray();
        var targets = Enumerable.Range(0, n).Select(r => MathF.Sin(2 * x[r * d]) + x[r * d + 1] * x[r * d + 1] + 0.1f * rng.NextNormal()).ToArray();
        var w = Enumerable.Range(0, n).Select(_ => 0.1f + rng.NextFloat()).ToArray();
        var data = task == TabularTask.Classification
            ? Classes(x, d, labels, classes)
            : new TabularData(Tensor.FromArray(x, n, d), task, null, targets);
        var options = new TreeExpertOptions { MaxDepth = 3, MinSamplesLeaf = 2 };
        var tree = new TreeExpert(d, data.Outputs, task, options);
        tree.Fit(data, w);
        var reference = NaiveCart.Build(x, d, data, w, Enumerable.Range(0, n).ToArray(), 0, options);
        var expected = new float[n * data.Outputs];
        var actual = new float[n * data.Outputs];
        for (int r = 0; r < n; r++) NaiveCart.Predict(reference, x.AsSpan(r * d, d)).CopyTo(expected, r * data.Outputs);
        tree.Predict(x, actual);
        Numerics.Close(expected, actual, 1e-5f, 1e-6f, "predictions");
        Assert.Equal(NaiveCart.Count(reference), tree.Nodes);
        Assert.True(tree.Nodes > 5, $"the reference case should grow a real tree, got {tree.Nodes} nodes");
    }

    [Fact]
    public void ZeroWeightRowsAreIgnored()
    {
        var data = new TabularData(Tensor.FromArray([0, 1, 2, 3], 4, 1), TabularTask.Regression, null, [5, 5, 100, -100]);
        var tree = new TreeExpert(1, 1, TabularTask.Regression);
        tree.Fit(data, [1, 1, 0, 0]);
        Assert.Equal(1, tree.Nodes);
        Assert.Equal(5f, tree.Value[0]);
    }

    [Fact]
    public void ExportRestoreGivesTheSamePredictionsAndRejectsCyclicNodes()
    {
        var rng = new Rng(5);
        var x = Enumerable.Range(0, 60).Select(_ => rng.NextFloat()).ToArray();
        var data = Classes(x, 2, Enumerable.Range(0, 30).Select(r => x[2 * r] > 0.5f ? 1 : 0).ToArray(), 2);
        var tree = new TreeExpert(2, 2, TabularTask.Classification);
        tree.Fit(data, Enumerable.Repeat(1f, 30).ToArray());
        var state = tree.Export();
        var restored = (TreeExpert)state.Restore();
        var a = new float[60];
        var b = new float[60];
        tree.Predict(x, a);
        restored.Predict(x, b);
        Numerics.BitwiseEqual(a, b, "predictions");
        state.Get("left")[0] = 0; // the root pointing at itself
        var ex = Assert.Throws<FormatException>(() => state.Restore());
        Assert.Contains("node 0", ex.Message);
    }

    /// <summary>
    /// An independent weighted CART: every split candidate evaluated from scratch with the impurity formulas
    /// (Gini 1 − Σp², or weighted variance), ties to the first feature and lowest threshold.
    /// </summary>
    private static class NaiveCart
    {
        public sealed record Node(int Feature, float Threshold, Node? Left, Node? Right, float[] Value);

        public static Node Build(float[] x, int d, TabularData data, float[] w, int[] rows, int depth, TreeExpertOptions o)
        {
            var value = LeafValue(data, w, rows);
            if (depth >= o.MaxDepth || rows.Length < 2 * o.MinSamplesLeaf || Impurity(data, w, rows) <= 1e-12) return new Node(-1, 0, null, null, value);
            double parent = Weight(w, rows) * Impurity(data, w, rows);
            double best = 1e-12 * Weight(w, rows);
            (int F, float T)? split = null;
            for (int f = 0; f < d; f++)
            {
                var values = rows.Select(r => x[r * d + f]).Distinct().Order().ToArray();
                for (int i = 0; i + 1 < values.Length; i++)
                {
                    float t = (values[i] + values[i + 1]) / 2;
                    var left = rows.Where(r => x[r * d + f] <= t).ToArray();
                    var right = rows.Where(r => x[r * d + f] > t).ToArray();
                    if (left.Length < o.MinSamplesLeaf || right.Length < o.MinSamplesLeaf) continue;
                    double gain = parent - Weight(w, left) * Impurity(data, w, left) - Weight(w, right) * Impurity(data, w, right);
                    if (gain > best) (best, split) = (gain, (f, t));
                }
            }
            if (split is not var (sf, st)) return new Node(-1, 0, null, null, value);
            return new Node(sf, st,
                Build(x, d, data, w, rows.Where(r => x[r * d + sf] <= st).ToArray(), depth + 1, o),
                Build(x, d, data, w, rows.Where(r => x[r * d + sf] > st).ToArray(), depth + 1, o), value);
        }

        public static float[] Predict(Node node, ReadOnlySpan<float> x)
        {
            while (node.Feature >= 0) node = x[node.Feature] <= node.Threshold ? node.Left! : node.Right!;
            return node.Value;
        }

        public static int Count(Node? node) => node is null ? 0 : 1 + Count(node.Left) + Count(node.Right);

        private static double Weight(float[] w, int[] rows) => rows.Sum(r => (double)w[r]);

        private static double Impurity(TabularData data, float[] w, int[] rows)
        {
            double total = Weight(w, rows);
            if (data.IsClassification)
                return 1 - Enumerable.Range(0, data.Classes).Sum(c => Math.Pow(rows.Where(r => data.Labels[r] == c).Sum(r => (double)w[r]) / total, 2));
            double mean = rows.Sum(r => w[r] * (double)data.Targets[r]) / total;
            return rows.Sum(r => w[r] * Math.Pow(data.Targets[r] - mean, 2)) / total;
        }

        private static float[] LeafValue(TabularData data, float[] w, int[] rows)
        {
            double total = Weight(w, rows);
            return data.IsClassification
                ? Enumerable.Range(0, data.Classes).Select(c => (float)(rows.Where(r => data.Labels[r] == c).Sum(r => (double)w[r]) / total)).ToArray()
                : [(float)(rows.Sum(r => w[r] * (double)data.Targets[r]) / total)];
        }
    }
}
