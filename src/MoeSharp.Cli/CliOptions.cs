using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using System.Numerics;

namespace MoeSharp.Cli;

/// <summary>
/// Numeric options that parse and range-check their value while the command line is parsed, so that a bad value
/// is reported (by <see cref="CliErrors.Usage"/>) before a command prints or loads anything, under the option's CLI
/// name and with what it accepts. Values are read in the invariant culture.
/// </summary>
internal static class CliOptions
{
    /// <summary>An option with a default, accepting values from <paramref name="min"/> (excluded if <paramref name="minExcluded"/>) to <paramref name="max"/>.</summary>
    public static Option<T> Number<T>(string name, T defaultValue, T min, T max, bool minExcluded = false, string? description = null)
        where T : struct, INumber<T>, IMinMaxValue<T>
    {
        var accepts = new Accepts<T>(min, max, minExcluded);
        return new Option<T>(name) { Description = description, DefaultValueFactory = _ => defaultValue, CustomParser = r => accepts.Parse(r, name) ?? defaultValue };
    }

    /// <summary>An option that is null when left out; otherwise as <see cref="Number{T}"/>.</summary>
    public static Option<T?> Optional<T>(string name, T min, T max, bool minExcluded = false, string? description = null)
        where T : struct, INumber<T>, IMinMaxValue<T>
    {
        var accepts = new Accepts<T>(min, max, minExcluded);
        return new Option<T?>(name) { Description = description, CustomParser = r => accepts.Parse(r, name) };
    }

    /// <summary>An integer ≥ <paramref name="min"/>: 1 for counts and sizes, 0 where 0 means "off" or "all".</summary>
    public static Option<int> Int(string name, int defaultValue, int min, string? description = null) =>
        Number(name, defaultValue, min, int.MaxValue, description: description);

    /// <summary>A worker thread count: at least 1.</summary>
    public static Option<int> Threads(int defaultValue, string? description = null) => Int("--threads", defaultValue, 1, description);

    /// <summary>A random seed: any integer from 0 to 2⁶⁴ − 1.</summary>
    public static Option<ulong> Seed(ulong defaultValue) => Number("--seed", defaultValue, ulong.MinValue, ulong.MaxValue);

    /// <summary>
    /// <c>--quantize FORMAT</c>: the inference commands' weight format (f32, f16, bf16, q8_0, q6_k, q4_k, mxfp4), parsed
    /// while the command line is; null when absent.
    /// </summary>
    public static Option<MoeSharp.Formats.WeightFormat?> Quantize() => new("--quantize")
    {
        Description = "Quantize the model's projections, embedding and experts once on load and compute with them: f32, f16, bf16, q8_0, q6_k, q4_k, or mxfp4 (experts only).",
        CustomParser = r => ParseFormat(r, "--quantize"),
    };

    /// <summary>A weight format by its lower-case ggml name; an unknown one is an error naming the accepted ones.</summary>
    public static MoeSharp.Formats.WeightFormat? ParseFormat(ArgumentResult r, string name)
    {
        string token = r.Tokens.Count == 0 ? "" : r.Tokens[^1].Value;
        foreach (var f in MoeSharp.Formats.WeightFormats.All)
            if (string.Equals(f.ToString(), token, StringComparison.OrdinalIgnoreCase)) return f;
        r.AddError($"{name}: expected one of f32, f16, bf16, q8_0, q6_k, q4_k, mxfp4, got '{token}'");
        return null;
    }

    /// <summary><c>--max-memory GB</c>: the inference commands' memory budget, paging the routed experts through a cache; null when absent.</summary>
    public static Option<double?> MaxMemory() => new("--max-memory")
    {
        Description = "Keep the model's weights, KV cache and a cache of routed experts within this many GB (10⁹ bytes); experts are read from the checkpoint file as they are routed to.",
        CustomParser = r =>
        {
            string token = r.Tokens.Count == 0 ? "" : r.Tokens[^1].Value;
            if (double.TryParse(token, NumberStyles.Float, CultureInfo.InvariantCulture, out double gb) && gb > 0 && gb * 1e9 < long.MaxValue) return gb;
            r.AddError($"--max-memory: expected a positive number of GB, got '{token}'");
            return null;
        },
    };

    /// <summary>How the inference commands load a model: weights in place from the mapped files, quantized when asked, experts paged within <paramref name="maxMemoryGb"/> when given.</summary>
    public static MoeSharp.IO.ModelLoadOptions Inference(int? maxContext, MoeSharp.Formats.WeightFormat? quantize, double? maxMemoryGb = null,
        MoeSharp.Experts.ExpertCachePolicy policy = MoeSharp.Experts.ExpertCachePolicy.Lfu) =>
        new() { MaxContext = maxContext, InPlace = true, Quantize = quantize, MaxMemoryBytes = maxMemoryGb is { } gb ? (long)(gb * 1e9) : null, ExpertCachePolicy = policy };

    /// <summary>A positive finite number (learning rates, time budgets).</summary>
    public static Option<float> Positive(string name, float defaultValue, string? description = null) =>
        Number(name, defaultValue, 0f, float.MaxValue, minExcluded: true, description);

    private sealed record Accepts<T>(T Min, T Max, bool MinExcluded) where T : struct, INumber<T>, IMinMaxValue<T>
    {
        // The options are int, ulong, float and double; only the last two read fractions and exponents.
        private static readonly bool IsInteger = typeof(T) != typeof(float) && typeof(T) != typeof(double);

        /// <summary>The value of the option's one token, or null with an error added to <paramref name="r"/>.</summary>
        public T? Parse(ArgumentResult r, string name)
        {
            if (r.Tokens.Count == 0)
            {
                r.AddError($"{name}: expected {Text}, got nothing");
                return null;
            }
            string token = r.Tokens[^1].Value;
            var style = IsInteger ? NumberStyles.Integer : NumberStyles.Float;
            if (T.TryParse(token, style, CultureInfo.InvariantCulture, out T value) && T.IsFinite(value)
                && (value > Min || (value == Min && !MinExcluded)) && value <= Max)
                return value;
            r.AddError($"{name}: expected {Text}, got '{token}'");
            return null;
        }

        /// <summary>What the option accepts, in words: "a positive integer", "a number in (0, 1]", …</summary>
        private string Text
        {
            get
            {
                string kind = IsInteger ? "integer" : "number";
                string a = IsInteger ? "an" : "a";
                bool noMax = Max == T.MaxValue;
                if (noMax && T.IsZero(Min)) return MinExcluded ? $"a positive {kind}" : $"a non-negative {kind}";
                if (noMax && Min == T.MinValue) return $"{a} {kind}";
                if (noMax && IsInteger && Min == T.One) return "a positive integer";
                if (noMax) return MinExcluded ? $"{a} {kind} greater than {Format(Min)}" : $"{a} {kind} of at least {Format(Min)}";
                return MinExcluded ? $"{a} {kind} in ({Format(Min)}, {Format(Max)}]" : $"{a} {kind} from {Format(Min)} to {Format(Max)}";
            }
        }

        private static string Format(T v) => v.ToString(null, CultureInfo.InvariantCulture);
    }
}
