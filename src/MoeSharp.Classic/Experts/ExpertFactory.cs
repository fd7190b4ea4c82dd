using MoeSharp.Classic.Data;

namespace MoeSharp.Classic.Experts;

/// <summary>
/// Makes built-in experts by kind name ("mlp", "linear", "tree") with shared options, and parses expert lists such
/// as "mlp,mlp,tree" or "3*mlp,linear".
/// </summary>
public sealed record ExpertFactory
{
    /// <summary>The expert kinds the factory builds, as <c>moe fit --experts</c> names them.</summary>
    public static readonly string[] Kinds = [MlpExpert.KindName, LinearExpert.KindName, TreeExpert.KindName];

    /// <summary>Settings of every MLP expert it builds.</summary>
    public MlpExpertOptions Mlp { get; init; } = new();
    /// <summary>Settings of every linear expert it builds.</summary>
    public LinearExpertOptions Linear { get; init; } = new();
    /// <summary>Settings of every tree expert it builds.</summary>
    public TreeExpertOptions Tree { get; init; } = new();

    /// <summary>Expert <paramref name="index"/> of a mixture; MLP experts get distinct seeds so that they start apart.</summary>
    public IExpert Create(string kind, int inputs, int outputs, TabularTask task, int index) => kind switch
    {
        MlpExpert.KindName => new MlpExpert(inputs, outputs, task, Mlp with { Seed = Mlp.Seed + 1000UL * (ulong)index }),
        LinearExpert.KindName => new LinearExpert(inputs, outputs, task, Linear),
        TreeExpert.KindName => new TreeExpert(inputs, outputs, task, Tree),
        _ => throw new ArgumentException($"Unknown expert kind '{kind}'; the kinds are {string.Join(", ", Kinds)}."),
    };

    /// <summary>"3*mlp,linear" → [mlp, mlp, mlp, linear]; each item is a kind, optionally preceded by a count and '*' (or 'x').</summary>
    public static IReadOnlyList<string> ParseKinds(string spec)
    {
        var kinds = new List<string>();
        foreach (var raw in spec.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            int star = raw.IndexOfAny(['*', 'x']);
            int count = 1;
            string kind = raw;
            if (star > 0 && int.TryParse(raw[..star], out int n))
            {
                count = n;
                kind = raw[(star + 1)..].Trim();
            }
            kind = kind.ToLowerInvariant();
            if (count < 1) throw new ArgumentException($"Expert list '{spec}': '{raw}' asks for {count} experts; the count must be at least 1.");
            if (!Kinds.Contains(kind)) throw new ArgumentException($"Expert list '{spec}': unknown kind '{kind}'; the kinds are {string.Join(", ", Kinds)}.");
            kinds.AddRange(Enumerable.Repeat(kind, count));
        }
        if (kinds.Count == 0) throw new ArgumentException($"Expert list '{spec}' names no expert.");
        return kinds;
    }
}
