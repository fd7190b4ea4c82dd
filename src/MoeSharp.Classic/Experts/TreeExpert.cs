using MoeSharp.Classic.Data;
using MoeSharp.Tensors;

namespace MoeSharp.Classic.Experts;

/// <summary>Settings of a <see cref="TreeExpert"/>, validated by <see cref="Validate"/>, which names the bad field.</summary>
public sealed record TreeExpertOptions
{
    /// <summary>Depth of the deepest leaf (the root is depth 0).</summary>
    public int MaxDepth { get; init; } = 6;

    /// <summary>A node with fewer rows of positive weight than this is not split.</summary>
    public int MinSamplesSplit { get; init; } = 2;

    /// <summary>Each child of a split keeps at least this many rows of positive weight.</summary>
    public int MinSamplesLeaf { get; init; } = 1;

    /// <summary>A split must lower the weighted impurity by at least this fraction of the root's total weight.</summary>
    public double MinImpurityDecrease { get; init; }

    /// <summary>Throws <see cref="ArgumentException"/> naming the first field out of range.</summary>
    public void Validate()
    {
        if (MaxDepth < 0) throw new ArgumentException($"TreeExpertOptions.MaxDepth: must be non-negative, got {MaxDepth}.", nameof(MaxDepth));
        if (MinSamplesSplit < 2) throw new ArgumentException($"TreeExpertOptions.MinSamplesSplit: must be at least 2, got {MinSamplesSplit}.", nameof(MinSamplesSplit));
        if (MinSamplesLeaf < 1) throw new ArgumentException($"TreeExpertOptions.MinSamplesLeaf: must be at least 1, got {MinSamplesLeaf}.", nameof(MinSamplesLeaf));
        if (!(MinImpurityDecrease >= 0)) throw new ArgumentException($"TreeExpertOptions.MinImpurityDecrease: must be non-negative, got {MinImpurityDecrease}.", nameof(MinImpurityDecrease));
    }
}

/// <summary>
/// A decision tree (CART) fitted on weighted rows, so EM can refit it on the gate's responsibilities. Splits are
/// axis-aligned, x[f] ≤ threshold goes left, with the threshold midway between consecutive distinct values; the
/// split chosen maximises the decrease in weighted Gini impurity (classification) or weighted squared error
/// (regression). Leaves hold the weighted class distribution or the weighted mean. Not differentiable: a mixture
/// trains it by refitting. Nodes are stored as flat arrays, the root at 0.
/// </summary>
public sealed class TreeExpert : IExpert
{
    /// <summary>The kind name saved in config.json and accepted by <c>moe fit --experts</c>.</summary>
    public const string KindName = "tree";

    private int[] _feature = [-1];
    private float[] _threshold = [0];
    private int[] _left = [-1], _right = [-1];
    private float[] _value;

    /// <summary>An unfitted tree (a single leaf) from <paramref name="inputs"/> features to <paramref name="outputs"/> classes (or one value).</summary>
    public TreeExpert(int inputs, int outputs, TabularTask task, TreeExpertOptions? options = null)
    {
        options ??= new TreeExpertOptions();
        options.Validate();
        ExpertChecks.Shape(inputs, outputs, task);
        Inputs = inputs;
        Outputs = outputs;
        Task = task;
        Options = options;
        // Before any fit the tree is one leaf: uniform class probabilities, or 0.
        _value = new float[outputs];
        if (task == TabularTask.Classification) Array.Fill(_value, 1f / outputs);
    }

    /// <inheritdoc/>
    public string Kind => KindName;
    /// <inheritdoc/>
    public int Inputs { get; }
    /// <inheritdoc/>
    public int Outputs { get; }
    /// <inheritdoc/>
    public TabularTask Task { get; }
    /// <summary>The settings it was built with.</summary>
    public TreeExpertOptions Options { get; }

    /// <summary>Number of nodes, leaves included.</summary>
    public int Nodes => _feature.Length;

    /// <summary>[nodes] split feature, −1 at a leaf.</summary>
    public ReadOnlySpan<int> Feature => _feature;

    /// <summary>[nodes] split threshold (x ≤ threshold goes left).</summary>
    public ReadOnlySpan<float> Threshold => _threshold;

    /// <summary>[nodes] child indices, −1 at a leaf.</summary>
    public ReadOnlySpan<int> Left => _left;

    /// <summary>[nodes] right child indices (x above the threshold goes right), −1 at a leaf.</summary>
    public ReadOnlySpan<int> Right => _right;

    /// <summary>[nodes, O] each node's class distribution or mean (leaves are what predictions use).</summary>
    public ReadOnlySpan<float> Value => _value;

    /// <inheritdoc/>
    public void Predict(ReadOnlySpan<float> x, Span<float> output)
    {
        int n = ExpertChecks.Rows(this, x, output), d = Inputs, o = Outputs;
        for (int i = 0; i < n; i++)
        {
            int node = 0;
            while (_feature[node] >= 0)
                node = x[i * d + _feature[node]] <= _threshold[node] ? _left[node] : _right[node];
            _value.AsSpan(node * o, o).CopyTo(output.Slice(i * o, o));
        }
    }

    /// <inheritdoc/>
    public void Fit(TabularData data, ReadOnlySpan<float> weights)
    {
        ExpertChecks.Data(this, data, weights);
        var rows = new List<int>();
        double total = 0;
        for (int r = 0; r < weights.Length; r++)
            if (weights[r] > 0) { rows.Add(r); total += weights[r]; }
        if (rows.Count == 0) return;
        var builder = new Builder(this, data, weights.ToArray(), total);
        builder.Build(rows.ToArray(), 0);
        _feature = builder.Feature.ToArray();
        _threshold = builder.Threshold.ToArray();
        _left = builder.Left.ToArray();
        _right = builder.Right.ToArray();
        _value = builder.Value.ToArray();
    }

    /// <summary>Grows the tree depth-first, pre-order, so node indices follow scikit-learn's numbering.</summary>
    private sealed class Builder(TreeExpert tree, TabularData data, float[] w, double rootWeight)
    {
        public readonly List<int> Feature = [], Left = [], Right = [];
        public readonly List<float> Threshold = [], Value = [];
        private readonly int _o = tree.Outputs, _d = tree.Inputs;
        private readonly bool _classes = tree.Task == TabularTask.Classification;

        public int Build(int[] rows, int depth)
        {
            int node = Feature.Count;
            var stats = Stats(rows);
            Feature.Add(-1);
            Threshold.Add(0);
            Left.Add(-1);
            Right.Add(-1);
            double weight = stats[_o];
            for (int j = 0; j < _o; j++) Value.Add((float)(_classes ? stats[j] / weight : stats[0] / weight));
            var opt = tree.Options;
            if (depth >= opt.MaxDepth || rows.Length < opt.MinSamplesSplit || rows.Length < 2 * opt.MinSamplesLeaf || Pure(stats, rows)) return node;
            var (feature, threshold, gain) = BestSplit(rows, stats);
            if (feature < 0 || gain <= opt.MinImpurityDecrease * rootWeight || gain <= 1e-12 * weight) return node;
            var left = rows.Where(r => data.X.Span[r * _d + feature] <= threshold).ToArray();
            var right = rows.Where(r => data.X.Span[r * _d + feature] > threshold).ToArray();
            Feature[node] = feature;
            Threshold[node] = threshold;
            Left[node] = Build(left, depth + 1);
            Right[node] = Build(right, depth + 1);
            return node;
        }

        /// <summary>
        /// [O+2]: classification: weighted count per class, then total weight, then Σw·0; regression: Σw·y, then
        /// total weight W, then Σw·y².
        /// </summary>
        private double[] Stats(int[] rows)
        {
            var s = new double[_o + 2];
            foreach (int r in rows)
            {
                double wr = w[r];
                if (_classes) s[data.Labels[r]] += wr;
                else
                {
                    s[0] += wr * data.Targets[r];
                    s[_o + 1] += wr * data.Targets[r] * data.Targets[r];
                }
                s[_o] += wr;
            }
            return s;
        }

        private bool Pure(double[] s, int[] rows)
        {
            if (_classes)
            {
                for (int j = 0; j < _o; j++) if (s[j] >= s[_o] * (1 - 1e-12)) return true;
                return false;
            }
            float first = data.Targets[rows[0]];
            return rows.All(r => data.Targets[r] == first);
        }

        /// <summary>
        /// The split with the largest decrease in weighted impurity W·I(parent) − W_L·I(L) − W_R·I(R). For Gini,
        /// W·I = W − Σ_c w_c²/W; for squared error, W·I = Σw·y² − (Σw·y)²/W; so the decrease is
        /// score(L) + score(R) − score(parent) with score = Σ_c w_c²/W (or (Σw·y)²/W). Ties keep the first candidate,
        /// features in order, thresholds ascending.
        /// </summary>
        private (int Feature, float Threshold, double Gain) BestSplit(int[] rows, double[] parent)
        {
            int n = rows.Length, minLeaf = tree.Options.MinSamplesLeaf;
            double parentScore = Score(parent, 0, parent[_o]);
            int bestFeature = -1;
            float bestThreshold = 0;
            double bestGain = 0;
            var keys = new float[n];
            var order = new int[n];
            var left = new double[_o + 1]; // running class weights (or Σw·y), then W
            for (int f = 0; f < _d; f++)
            {
                for (int i = 0; i < n; i++)
                {
                    order[i] = rows[i];
                    keys[i] = data.X.Span[rows[i] * _d + f];
                }
                Array.Sort(keys, order);
                Array.Clear(left);
                for (int i = 0; i < n - 1; i++)
                {
                    int r = order[i];
                    if (_classes) left[data.Labels[r]] += w[r];
                    else left[0] += w[r] * data.Targets[r];
                    left[_o] += w[r];
                    if (keys[i] == keys[i + 1] || i + 1 < minLeaf || n - i - 1 < minLeaf) continue;
                    double gain = Score(left, 0, left[_o]) + RightScore(parent, left) - parentScore;
                    if (gain > bestGain)
                    {
                        bestGain = gain;
                        bestFeature = f;
                        bestThreshold = Midpoint(keys[i], keys[i + 1]);
                    }
                }
            }
            return (bestFeature, bestThreshold, bestGain);
        }

        private double Score(double[] s, int offset, double weight)
        {
            if (weight <= 0) return 0;
            double sum = 0;
            for (int j = 0; j < (_classes ? _o : 1); j++) sum += s[offset + j] * s[offset + j];
            return sum / weight;
        }

        private double RightScore(double[] parent, double[] left)
        {
            double weight = parent[_o] - left[_o];
            if (weight <= 0) return 0;
            double sum = 0;
            for (int j = 0; j < (_classes ? _o : 1); j++)
            {
                double v = parent[j] - left[j];
                sum += v * v;
            }
            return sum / weight;
        }

        /// <summary>(a + b)/2, or a when rounding to float would put the midpoint on b (then b would go left too).</summary>
        private static float Midpoint(float a, float b)
        {
            float m = (float)((a + (double)b) / 2);
            return m < b ? m : a;
        }
    }

    /// <inheritdoc/>
    public ExpertState Export()
    {
        var settings = ExpertChecks.Settings(this);
        settings["max_depth"] = Options.MaxDepth;
        settings["min_samples_split"] = Options.MinSamplesSplit;
        settings["min_samples_leaf"] = Options.MinSamplesLeaf;
        settings["min_impurity_decrease"] = Options.MinImpurityDecrease;
        int nodes = Nodes;
        // Node indices and features are small integers, exact in float32 below 2²⁴.
        return new ExpertState(Kind, settings, new Dictionary<string, Tensor>
        {
            ["feature"] = Tensor.FromArray(_feature.Select(v => (float)v).ToArray(), nodes),
            ["threshold"] = Tensor.FromArray((float[])_threshold.Clone(), nodes),
            ["left"] = Tensor.FromArray(_left.Select(v => (float)v).ToArray(), nodes),
            ["right"] = Tensor.FromArray(_right.Select(v => (float)v).ToArray(), nodes),
            ["value"] = Tensor.FromArray((float[])_value.Clone(), nodes, Outputs),
        });
    }

    /// <summary>Rebuilds a tree expert from what <see cref="Export"/> saved; a missing or inconsistent tensor is an error naming it.</summary>
    public static TreeExpert Restore(ExpertState state)
    {
        var s = state.Settings;
        var options = new TreeExpertOptions
        {
            MaxDepth = s["max_depth"]?.GetValue<int>() ?? 6,
            MinSamplesSplit = s["min_samples_split"]?.GetValue<int>() ?? 2,
            MinSamplesLeaf = s["min_samples_leaf"]?.GetValue<int>() ?? 1,
            MinImpurityDecrease = s["min_impurity_decrease"]?.GetValue<double>() ?? 0,
        };
        var tree = new TreeExpert(state.Int("inputs"), state.Int("outputs"), state.Task, options);
        var feature = state.Get("feature").ToArray();
        int nodes = feature.Length;
        var threshold = state.Get("threshold").ToArray();
        var left = state.Get("left").ToArray();
        var right = state.Get("right").ToArray();
        var value = state.Get("value").ToArray();
        if (nodes == 0 || threshold.Length != nodes || left.Length != nodes || right.Length != nodes || value.Length != nodes * tree.Outputs)
            throw new FormatException($"Saved tree expert: node arrays disagree ({nodes} features, {threshold.Length} thresholds, {left.Length}/{right.Length} children, {value.Length} values for {tree.Outputs} outputs).");
        tree._feature = feature.Select(v => (int)v).ToArray();
        tree._threshold = threshold;
        tree._left = left.Select(v => (int)v).ToArray();
        tree._right = right.Select(v => (int)v).ToArray();
        tree._value = value;
        // A corrupt file must not send Predict out of bounds or round in a cycle: children come after their parent.
        for (int i = 0; i < nodes; i++)
        {
            bool leaf = tree._feature[i] < 0;
            if (!leaf && (tree._feature[i] >= tree.Inputs || tree._left[i] <= i || tree._right[i] <= i || tree._left[i] >= nodes || tree._right[i] >= nodes))
                throw new FormatException($"Saved tree expert: node {i} has feature {tree._feature[i]} and children {tree._left[i]}, {tree._right[i]}; expected a feature below {tree.Inputs} and children after it, below {nodes}.");
        }
        return tree;
    }

    /// <inheritdoc/>
    public IExpert Clone()
    {
        var copy = new TreeExpert(Inputs, Outputs, Task, Options)
        {
            _feature = (int[])_feature.Clone(),
            _threshold = (float[])_threshold.Clone(),
            _left = (int[])_left.Clone(),
            _right = (int[])_right.Clone(),
            _value = (float[])_value.Clone(),
        };
        return copy;
    }
}
