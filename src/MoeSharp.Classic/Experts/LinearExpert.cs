using System.Text.Json.Nodes;
using MoeSharp.Classic.Data;
using MoeSharp.Tensors;

namespace MoeSharp.Classic.Experts;

/// <summary>Settings of a <see cref="LinearExpert"/>, validated by <see cref="Validate"/>, which names the bad field.</summary>
public sealed record LinearExpertOptions
{
    /// <summary>
    /// L2 penalty λ on the coefficients (not the intercept), added as λ/2·‖β‖² to the weighted sum of row losses
    /// (½·squared error, or the logistic loss). Null picks 1 for classification (scikit-learn's LogisticRegression
    /// default C = 1) and 1e-6 for regression (ordinary least squares, kept solvable).
    /// </summary>
    public float? Ridge { get; init; }

    /// <summary>Newton (IRLS) iterations at most, per class.</summary>
    public int MaxIterations { get; init; } = 50;

    /// <summary>IRLS stops when no coefficient moves by more than this (relative to the largest coefficient + 1).</summary>
    public double Tolerance { get; init; } = 1e-7;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first field out of range.</summary>
    public void Validate()
    {
        if (Ridge is { } r && !(r >= 0 && float.IsFinite(r))) throw new ArgumentException($"LinearExpertOptions.Ridge: must be a non-negative number, got {r}.", nameof(Ridge));
        if (MaxIterations < 1) throw new ArgumentException($"LinearExpertOptions.MaxIterations: must be positive, got {MaxIterations}.", nameof(MaxIterations));
        if (!(Tolerance > 0)) throw new ArgumentException($"LinearExpertOptions.Tolerance: must be positive, got {Tolerance}.", nameof(Tolerance));
    }
}

/// <summary>
/// A linear / generalised-linear expert fitted in closed form or by Newton's method on weighted rows:
/// regression by weighted (ridge) least squares, (XᵀWX + λI)β = XᵀWy; binary classification by IRLS for logistic
/// regression; more classes by one IRLS logistic fit per class against the rest, the C sigmoid outputs normalised
/// to sum to 1. Coefficients: Weight [R,D] and Bias [R], R = 1 for regression and two classes, C otherwise.
/// </summary>
public sealed class LinearExpert : IExpert
{
    /// <summary>The kind name saved in config.json and accepted by <c>moe fit --experts</c>.</summary>
    public const string KindName = "linear";

    /// <summary>An untrained linear model from <paramref name="inputs"/> features to <paramref name="outputs"/> classes (or one value).</summary>
    public LinearExpert(int inputs, int outputs, TabularTask task, LinearExpertOptions? options = null)
    {
        options ??= new LinearExpertOptions();
        options.Validate();
        ExpertChecks.Shape(inputs, outputs, task);
        Inputs = inputs;
        Outputs = outputs;
        Task = task;
        Options = options;
        int r = Rows;
        Weight = new float[r * inputs];
        Bias = new float[r];
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
    public LinearExpertOptions Options { get; }

    /// <summary>Coefficient rows R: 1 for regression and binary classification (class 1 against 0), else one per class.</summary>
    public int Rows => Task == TabularTask.Regression || Outputs == 2 ? 1 : Outputs;

    /// <summary>[R,D] coefficients.</summary>
    public float[] Weight { get; }

    /// <summary>[R] intercepts.</summary>
    public float[] Bias { get; }

    /// <summary>The L2 penalty in effect: the option, or 1 for classification and 1e-6 for regression when unset.</summary>
    public float Ridge => Options.Ridge ?? (Task == TabularTask.Classification ? 1f : 1e-6f);

    /// <summary>Newton iterations the last fit took (the most over its classes); 1 for least squares.</summary>
    public int Iterations { get; private set; }

    /// <inheritdoc/>
    public void Predict(ReadOnlySpan<float> x, Span<float> output)
    {
        int n = ExpertChecks.Rows(this, x, output), d = Inputs, r = Rows;
        for (int i = 0; i < n; i++)
        {
            var xi = x.Slice(i * d, d);
            var yi = output.Slice(i * Outputs, Outputs);
            if (Task == TabularTask.Regression)
            {
                yi[0] = TensorPrimitives.Dot(xi, Weight) + Bias[0];
                continue;
            }
            if (r == 1)
            {
                float p = Sigmoid(TensorPrimitives.Dot(xi, Weight) + Bias[0]);
                yi[0] = 1 - p;
                yi[1] = p;
                continue;
            }
            float sum = 0;
            for (int c = 0; c < r; c++) sum += yi[c] = Sigmoid(TensorPrimitives.Dot(xi, Weight.AsSpan(c * d, d)) + Bias[c]);
            for (int c = 0; c < r; c++) yi[c] /= sum;
        }
    }

    /// <inheritdoc/>
    public void Fit(TabularData data, ReadOnlySpan<float> weights)
    {
        ExpertChecks.Data(this, data, weights);
        if (!(TensorPrimitives.Sum(weights) > 0)) return;
        if (Task == TabularTask.Regression)
        {
            var beta = LeastSquares(data.X.Span, data.Targets, weights, Inputs, Ridge);
            Store(0, beta);
            Iterations = 1;
            return;
        }
        Iterations = 0;
        var t = new float[data.Rows]; // [N] 1 for the class being fitted, 0 for the rest
        for (int c = 0; c < Rows; c++)
        {
            int positive = Rows == 1 ? 1 : c;
            for (int i = 0; i < t.Length; i++) t[i] = data.Labels[i] == positive ? 1 : 0;
            var beta = Load(c);
            Iterations = Math.Max(Iterations, Logistic(data.X.Span, t, weights, Inputs, Ridge, beta, Options));
            Store(c, beta);
        }
    }

    /// <summary>
    /// Weighted ridge least squares with an unpenalised intercept: solves (X̃ᵀWX̃ + λI′)β = X̃ᵀWy, X̃ = [X, 1], in
    /// double. Returns β [D+1], the intercept last.
    /// </summary>
    internal static double[] LeastSquares(ReadOnlySpan<float> x, ReadOnlySpan<float> y, ReadOnlySpan<float> w, int d, double ridge)
    {
        int p = d + 1, n = y.Length;
        var a = new double[p * p]; // [D+1, D+1]
        var b = new double[p];     // [D+1]
        var xi = new double[p];
        for (int i = 0; i < n; i++)
        {
            if (w[i] == 0) continue;
            Augment(x, i, d, xi);
            AddOuter(a, xi, w[i], p);
            for (int j = 0; j < p; j++) b[j] += w[i] * xi[j] * y[i];
        }
        Symmetrise(a, p);
        for (int j = 0; j < d; j++) a[j * p + j] += ridge;
        Cholesky.Solve(a, b, p);
        return b;
    }

    /// <summary>
    /// IRLS (Newton's method) for weighted ridge logistic regression of t ∈ {0,1}: minimises
    /// Σ w·[log(1 + eᶻ) − t·z] + λ/2·‖β‖², z = x̃·β, starting from <paramref name="beta"/> [D+1] (updated in place).
    /// Each step solves (X̃ᵀSX̃ + λI′)Δ = ∇ with S = diag(w·p·(1 − p)), halving it until the objective does not rise.
    /// Returns the iterations taken.
    /// </summary>
    internal static int Logistic(ReadOnlySpan<float> x, ReadOnlySpan<float> t, ReadOnlySpan<float> w, int d, double ridge, double[] beta, LinearExpertOptions options)
    {
        int p = d + 1, n = t.Length;
        var h = new double[p * p]; // [D+1, D+1] Hessian
        var g = new double[p];     // [D+1] gradient, then the Newton step
        var xi = new double[p];
        var trial = new double[p];
        double f = LogisticObjective(x, t, w, d, ridge, beta);
        for (int it = 1; it <= options.MaxIterations; it++)
        {
            Array.Clear(h);
            Array.Clear(g);
            for (int i = 0; i < n; i++)
            {
                if (w[i] == 0) continue;
                Augment(x, i, d, xi);
                double prob = Sigmoid(Dot(xi, beta));
                double s = w[i] * prob * (1 - prob);
                AddOuter(h, xi, s, p);
                double r = w[i] * (prob - t[i]);
                for (int j = 0; j < p; j++) g[j] += r * xi[j];
            }
            Symmetrise(h, p);
            for (int j = 0; j < d; j++)
            {
                h[j * p + j] += ridge;
                g[j] += ridge * beta[j];
            }
            Cholesky.Solve(h, g, p);
            double step = 1, fNew = f;
            for (int halvings = 0; halvings < 30; halvings++, step /= 2)
            {
                for (int j = 0; j < p; j++) trial[j] = beta[j] - step * g[j];
                fNew = LogisticObjective(x, t, w, d, ridge, trial);
                if (fNew <= f) break;
            }
            if (!(fNew <= f)) return it; // no step lowers the objective: at the optimum to working precision
            double moved = 0, size = 0;
            for (int j = 0; j < p; j++)
            {
                moved = Math.Max(moved, Math.Abs(trial[j] - beta[j]));
                size = Math.Max(size, Math.Abs(trial[j]));
                beta[j] = trial[j];
            }
            f = fNew;
            if (moved <= options.Tolerance * (1 + size)) return it;
        }
        return options.MaxIterations;
    }

    private static double LogisticObjective(ReadOnlySpan<float> x, ReadOnlySpan<float> t, ReadOnlySpan<float> w, int d, double ridge, double[] beta)
    {
        double f = 0;
        for (int i = 0; i < t.Length; i++)
        {
            if (w[i] == 0) continue;
            double z = beta[d];
            for (int j = 0; j < d; j++) z += x[i * d + j] * beta[j];
            // log(1 + eᶻ) without overflow.
            double softplus = z > 0 ? z + Math.Log(1 + Math.Exp(-z)) : Math.Log(1 + Math.Exp(z));
            f += w[i] * (softplus - t[i] * z);
        }
        for (int j = 0; j < d; j++) f += 0.5 * ridge * beta[j] * beta[j];
        return f;
    }

    private static void Augment(ReadOnlySpan<float> x, int row, int d, double[] xi)
    {
        for (int j = 0; j < d; j++) xi[j] = x[row * d + j];
        xi[d] = 1;
    }

    /// <summary>a += s·x·xᵀ on the lower triangle only (<see cref="Symmetrise"/> fills the rest).</summary>
    private static void AddOuter(double[] a, double[] x, double s, int p)
    {
        for (int j = 0; j < p; j++)
        {
            double sj = s * x[j];
            for (int k = 0; k <= j; k++) a[j * p + k] += sj * x[k];
        }
    }

    private static void Symmetrise(double[] a, int p)
    {
        for (int j = 0; j < p; j++)
            for (int k = j + 1; k < p; k++) a[j * p + k] = a[k * p + j];
    }

    private static double Dot(double[] a, double[] b)
    {
        double s = 0;
        for (int j = 0; j < a.Length; j++) s += a[j] * b[j];
        return s;
    }

    private static double Sigmoid(double z) => z >= 0 ? 1 / (1 + Math.Exp(-z)) : Math.Exp(z) / (1 + Math.Exp(z));

    private static float Sigmoid(float z) => (float)Sigmoid((double)z);

    private double[] Load(int row)
    {
        var beta = new double[Inputs + 1];
        for (int j = 0; j < Inputs; j++) beta[j] = Weight[row * Inputs + j];
        beta[Inputs] = Bias[row];
        return beta;
    }

    private void Store(int row, double[] beta)
    {
        for (int j = 0; j < Inputs; j++) Weight[row * Inputs + j] = (float)beta[j];
        Bias[row] = (float)beta[Inputs];
    }

    /// <inheritdoc/>
    public ExpertState Export()
    {
        var settings = ExpertChecks.Settings(this);
        if (Options.Ridge is { } ridge) settings["ridge"] = ridge;
        settings["max_iterations"] = Options.MaxIterations;
        settings["tolerance"] = Options.Tolerance;
        return new ExpertState(Kind, settings, new Dictionary<string, Tensor>
        {
            ["weight"] = Tensor.FromArray((float[])Weight.Clone(), Rows, Inputs),
            ["bias"] = Tensor.FromArray((float[])Bias.Clone(), Rows),
        });
    }

    /// <summary>Rebuilds a linear expert from what <see cref="Export"/> saved; a missing or misshapen tensor is an error naming it.</summary>
    public static LinearExpert Restore(ExpertState state)
    {
        var s = state.Settings;
        var options = new LinearExpertOptions
        {
            Ridge = s["ridge"]?.GetValue<float>(),
            MaxIterations = s["max_iterations"]?.GetValue<int>() ?? 50,
            Tolerance = s["tolerance"]?.GetValue<double>() ?? 1e-7,
        };
        var expert = new LinearExpert(state.Int("inputs"), state.Int("outputs"), state.Task, options);
        var w = state.Get("weight");
        var b = state.Get("bias");
        if (w.Length != expert.Weight.Length || b.Length != expert.Bias.Length)
            throw new FormatException($"Saved linear expert: weight {Shapes.Format(w.Shape)} and bias {Shapes.Format(b.Shape)} do not match {expert.Rows}×{expert.Inputs} coefficients.");
        w.Span.CopyTo(expert.Weight);
        b.Span.CopyTo(expert.Bias);
        return expert;
    }

    /// <inheritdoc/>
    public IExpert Clone()
    {
        var copy = new LinearExpert(Inputs, Outputs, Task, Options);
        Weight.CopyTo(copy.Weight, 0);
        Bias.CopyTo(copy.Bias, 0);
        return copy;
    }

    /// <summary>Adds N(0, (scale·s)²) to every coefficient, s being the root-mean-square coefficient (1 if all are 0).</summary>
    public void Perturb(Rng rng, float scale)
    {
        float rms = MathF.Sqrt(TensorPrimitives.SumOfSquares(Weight) / Weight.Length);
        if (rms == 0) rms = 1;
        for (int i = 0; i < Weight.Length; i++) Weight[i] += scale * rms * rng.NextNormal();
        for (int i = 0; i < Bias.Length; i++) Bias[i] += scale * rms * rng.NextNormal();
    }
}
