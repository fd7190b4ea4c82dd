using System.Text.RegularExpressions;

namespace MoeSharp.Tests;

/// <summary>
/// The core's folders depend downwards only, in the order docs/architecture.md lists them. The checker reads the
/// order from the doc, then every .cs under src/MoeSharp/&lt;Folder&gt;/ for <c>using MoeSharp.X;</c> (also
/// <c>global</c>, <c>static</c> and aliases), fully qualified <c>MoeSharp.X.</c> names and partly qualified
/// <c>X.Type</c> names (inside namespace MoeSharp.Y, <c>Kernels.Softmax</c> means MoeSharp.Kernels.Softmax; a
/// partly qualified name counts when X.Type is a type of the core, so a property such as <c>Layers.Length</c> does
/// not). Doc comments count (a cref is a compile-time reference); other comments do not.
/// </summary>
public sealed partial class LayeringTests
{
    [Fact]
    public void CoreFoldersUseOnlyFoldersBeneathThem()
    {
        var order = Layering.ParseOrder(File.ReadAllText(Path.Combine(TestPaths.RepoRoot, "docs", "architecture.md")));
        var violations = Layering.Check(order, Layering.ReadCore(Path.Combine(TestPaths.RepoRoot, "src", "MoeSharp")), Layering.CoreTypes());
        Assert.True(violations.Count == 0, string.Join(Environment.NewLine, violations));
    }

    [Fact]
    public void TheDocListsTheMoeFoldersInDataFlowOrder()
    {
        var order = Layering.ParseOrder(File.ReadAllText(Path.Combine(TestPaths.RepoRoot, "docs", "architecture.md")));
        Assert.True(order.IndexOf("Routing") < order.IndexOf("Experts") && order.IndexOf("Experts") < order.IndexOf("Dispatch")
            && order.IndexOf("Dispatch") < order.IndexOf("Layers"), string.Join(", ", order));
    }

    [Fact]
    public void CheckerReportsAnUpwardEdgeWithFileLineAndEdge()
    {
        string[] order = ["Tensors", "Routing", "Layers"];
        var files = new[]
        {
            new Layering.Source("Routing", "Routing/Bad.cs", ["using MoeSharp.Tensors;", "using MoeSharp.Layers;", "namespace MoeSharp.Routing;"]),
            new Layering.Source("Routing", "Routing/Qualified.cs", ["namespace MoeSharp.Routing;", "// MoeSharp.Layers.MoeLayer in a comment is no edge",
                "class A { global::MoeSharp.Layers.MoeLayer? L; }", "class B { Layers.MoeOptions? O; }", "class D { int N => Layers.Length; }"]),
            new Layering.Source("Routing", "Routing/Alias.cs", ["using L = MoeSharp.Layers.MoeLayer;", "using static MoeSharp.Layers.Helpers;", "namespace MoeSharp.Routing;"]),
            new Layering.Source("Tensors", "Tensors/Stray.cs", ["namespace MoeSharp.Routing;"]),
            new Layering.Source("Layers", "Layers/Good.cs", ["using MoeSharp.Routing;", "using MoeSharp.Tensors;", "namespace MoeSharp.Layers;", "class C { MoeSharp.Routing.X? R; }"]),
            new Layering.Source("Unlisted", "Unlisted/U.cs", ["namespace MoeSharp.Unlisted;"]),
        };
        var v = Layering.Check(order, files, new HashSet<string> { "Layers.MoeOptions", "Layers.MoeLayer" });
        Assert.Equal(
        [
            "Routing/Bad.cs:2: Routing -> Layers (using MoeSharp.Layers;)",
            "Routing/Qualified.cs:3: Routing -> Layers (class A { global::MoeSharp.Layers.MoeLayer? L; })",
            "Routing/Qualified.cs:4: Routing -> Layers (class B { Layers.MoeOptions? O; })",
            "Routing/Alias.cs:1: Routing -> Layers (using L = MoeSharp.Layers.MoeLayer;)",
            "Routing/Alias.cs:2: Routing -> Layers (using static MoeSharp.Layers.Helpers;)",
            "Tensors/Stray.cs:1: the namespace is MoeSharp.Routing; a file in Tensors/ must declare MoeSharp.Tensors",
            "Unlisted/: the folder is not in the order of docs/architecture.md",
        ], v);
    }

    [Fact]
    public void ParsesTheNumberedListUnderFolderOrder()
    {
        const string doc = "# X\n\n1. `Nope`: before the section\n\n## Folder order\n\nBottom to top:\n\n1. `Tensors`: a\n2. `Kernels`: b\n   continued\n10. `IO`: c\n\n## Next\n\n1. `Later`\n";
        Assert.Equal(["Tensors", "Kernels", "IO"], Layering.ParseOrder(doc));
        Assert.Throws<InvalidOperationException>(() => Layering.ParseOrder("# no order here"));
    }

    /// <summary>The checker itself, on names and lines, so a synthetic tree can show that it fails.</summary>
    internal static partial class Layering
    {
        public sealed record Source(string Folder, string File, string[] Lines);

        [GeneratedRegex(@"^\d+\.\s+`(\w+)`")]
        private static partial Regex OrderItem();

        // using [static] [Alias =] [global::]MoeSharp.X
        [GeneratedRegex(@"^\s*(?:global\s+)?using\s+(?:static\s+)?(?:\w+\s*=\s*)?(?:global::)?MoeSharp\.(\w+)")]
        private static partial Regex UsingLine();

        [GeneratedRegex(@"(?<![\w.])(?:global::)?MoeSharp\.(\w+)\.")]
        private static partial Regex Qualified();

        [GeneratedRegex(@"(?<![\w.:])([A-Z]\w*)\.([A-Z]\w*)")]
        private static partial Regex PartlyQualified();

        [GeneratedRegex(@"^\s*namespace\s+([\w.]+)")]
        private static partial Regex Namespace();

        /// <summary>The folder names of the numbered list under "## Folder order", bottom first.</summary>
        public static List<string> ParseOrder(string markdown)
        {
            var order = new List<string>();
            bool inSection = false;
            foreach (var line in markdown.Split('\n'))
            {
                if (line.StartsWith("## ", StringComparison.Ordinal))
                {
                    if (inSection) break;
                    inSection = line.Trim() == "## Folder order";
                    continue;
                }
                if (inSection && OrderItem().Match(line) is { Success: true } m) order.Add(m.Groups[1].Value);
            }
            return order.Count > 0 ? order : throw new InvalidOperationException("docs/architecture.md has no numbered list under '## Folder order'.");
        }

        /// <summary>Every .cs file under each folder of <paramref name="core"/>, build outputs excluded.</summary>
        public static List<Source> ReadCore(string core)
        {
            var sources = new List<Source>();
            foreach (var dir in Directory.GetDirectories(core))
            {
                string folder = Path.GetFileName(dir);
                if (folder is "bin" or "obj") continue;
                foreach (var file in Directory.GetFiles(dir, "*.cs", SearchOption.AllDirectories))
                    sources.Add(new Source(folder, Path.GetRelativePath(core, file).Replace('\\', '/'), File.ReadAllLines(file)));
            }
            return sources;
        }

        /// <summary>"Folder.Type" for every top-level type of the core library.</summary>
        public static HashSet<string> CoreTypes()
        {
            var types = new HashSet<string>(StringComparer.Ordinal);
            foreach (var t in typeof(MoeSharp.Tensors.Tensor).Assembly.GetTypes())
                if (!t.IsNested && t.Namespace is { } ns && ns.StartsWith("MoeSharp.", StringComparison.Ordinal))
                {
                    int tick = t.Name.IndexOf('`');
                    types.Add(ns["MoeSharp.".Length..] + "." + (tick < 0 ? t.Name : t.Name[..tick]));
                }
            return types;
        }

        /// <summary>One line per violation: "file:line: From -> To (the line)", a stray namespace, or an unlisted folder.</summary>
        /// <param name="types">"Folder.Type" names that a partly qualified reference may name.</param>
        public static List<string> Check(IReadOnlyList<string> order, IEnumerable<Source> sources, IReadOnlySet<string> types)
        {
            var rank = new Dictionary<string, int>();
            for (int i = 0; i < order.Count; i++) rank[order[i]] = i;
            var violations = new List<string>();
            var unlisted = new SortedSet<string>(StringComparer.Ordinal);
            foreach (var src in sources)
            {
                if (!rank.TryGetValue(src.Folder, out int from))
                {
                    unlisted.Add(src.Folder);
                    continue;
                }
                for (int i = 0; i < src.Lines.Length; i++)
                {
                    string line = src.Lines[i];
                    string code = StripLineComment(line);
                    if (Namespace().Match(code) is { Success: true } ns)
                    {
                        if (ns.Groups[1].Value != "MoeSharp." + src.Folder)
                            violations.Add($"{src.File}:{i + 1}: the namespace is {ns.Groups[1].Value}; a file in {src.Folder}/ must declare MoeSharp.{src.Folder}");
                        continue;
                    }
                    var targets = new SortedSet<string>(StringComparer.Ordinal);
                    if (UsingLine().Match(code) is { Success: true } u) targets.Add(u.Groups[1].Value);
                    else
                    {
                        foreach (Match q in Qualified().Matches(code)) targets.Add(q.Groups[1].Value);
                        foreach (Match p in PartlyQualified().Matches(code))
                            if (types.Contains(p.Groups[1].Value + "." + p.Groups[2].Value)) targets.Add(p.Groups[1].Value);
                    }
                    foreach (string to in targets)
                        if (to != src.Folder && rank.TryGetValue(to, out int r) && r > from)
                            violations.Add($"{src.File}:{i + 1}: {src.Folder} -> {to} ({line.Trim()})");
                }
            }
            foreach (string folder in unlisted) violations.Add($"{folder}/: the folder is not in the order of docs/architecture.md");
            return violations;
        }

        /// <summary>The line without a // comment; /// doc comments stay, since a cref there is a compile-time reference.</summary>
        private static string StripLineComment(string line)
        {
            int c = line.IndexOf("//", StringComparison.Ordinal);
            if (c < 0 || line.AsSpan(c).StartsWith("///")) return line;
            return line[..c];
        }
    }
}
