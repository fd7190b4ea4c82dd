using System.Xml.Linq;

namespace MoeSharp.Tests;

/// <summary>
/// The projects depend downwards only, as docs/architecture.md says: the core (src/MoeSharp) references no project;
/// Classic, Retrieval, Server and Cluster are siblings above it that reference none of each other; integrations with
/// native parts (Retrieval.Onnx) sit above those, and only they may carry a native package; the CLI sits on top and
/// nothing references it. Test projects mirror source projects: tests/MoeSharp.X.Tests for src/MoeSharp.X, except
/// the CLI, whose tests live in tests/MoeSharp.Tests/Cli. The checker reads every src/*/*.csproj's ProjectReference
/// items; it works on names so that a synthetic set can show it fails.
/// </summary>
public sealed class ProjectLayeringTests
{
    [Fact]
    public void SourceProjectsReferenceOnlyProjectsBeneathThemAndTestsMirrorThem()
    {
        string root = TestPaths.RepoRoot;
        var violations = ProjectLayering.Check(
            ProjectLayering.ReadSources(Path.Combine(root, "src")),
            ProjectLayering.ReadTestProjects(Path.Combine(root, "tests")),
            cliTestsFolderExists: Directory.Exists(Path.Combine(root, "tests", "MoeSharp.Tests", "Cli")));
        Assert.True(violations.Count == 0, string.Join(Environment.NewLine, violations));
    }

    [Fact]
    public void OnlyNativeIntegrationProjectsCarryNativePackages()
    {
        // ONNX Runtime (directly, or through SentenceTransformers) ships native libraries; the guide keeps them in
        // integration projects of their own, so the core and its siblings stay pure managed.
        string[] native = ["Microsoft.ML.OnnxRuntime", "SentenceTransformers"];
        foreach (var dir in Directory.GetDirectories(Path.Combine(TestPaths.RepoRoot, "src")))
        {
            if (Path.GetFileName(dir).EndsWith(".Onnx", StringComparison.Ordinal)) continue;
            foreach (var csproj in Directory.GetFiles(dir, "*.csproj"))
            {
                var packages = XDocument.Load(csproj).Descendants().Where(e => e.Name.LocalName == "PackageReference")
                    .Select(e => (string?)e.Attribute("Include") ?? "");
                foreach (string package in packages)
                    Assert.False(native.Any(n => package.StartsWith(n, StringComparison.Ordinal)), $"{csproj}: {package} is native; it belongs in an integration project (*.Onnx)");
            }
        }
    }

    [Fact]
    public void CheckerReportsEveryKindOfViolation()
    {
        var sources = new Dictionary<string, string[]>
        {
            ["MoeSharp"] = ["MoeSharp.Classic"],
            ["MoeSharp.Classic"] = ["MoeSharp", "MoeSharp.Retrieval"],
            ["MoeSharp.Retrieval"] = ["MoeSharp", "MoeSharp.Cli"],
            ["MoeSharp.Server"] = ["MoeSharp", "MoeSharp.Nowhere"],
            ["MoeSharp.Cli"] = ["MoeSharp", "MoeSharp.Classic", "MoeSharp.Retrieval", "MoeSharp.Server"],
            ["MoeSharp.Extra"] = [],
        };
        string[] tests = ["MoeSharp.Tests", "MoeSharp.Classic.Tests", "MoeSharp.Retrieval.Tests", "MoeSharp.Extra.Tests", "MoeSharp.Cli.Tests", "MoeSharp.Orphan.Tests"];
        var v = ProjectLayering.Check(sources, tests, cliTestsFolderExists: false);
        string[] expected =
        [
            "src/MoeSharp.Cli.csproj: no project may reference the CLI, but src/MoeSharp.Retrieval does",
            "src/MoeSharp.Classic -> MoeSharp.Retrieval: a project may reference only projects beneath it (core < Classic, Retrieval, Server, Cluster < Retrieval.Onnx < Cli)",
            "src/MoeSharp -> MoeSharp.Classic: the core must reference no project",
            "src/MoeSharp.Extra: the project is not in the layering order (core < Classic, Retrieval, Server, Cluster < Retrieval.Onnx < Cli)",
            "src/MoeSharp.Server -> MoeSharp.Nowhere: no such project under src/",
            "src/MoeSharp.Server: has no test project tests/MoeSharp.Server.Tests",
            "tests/MoeSharp.Cli.Tests: the CLI's tests belong in tests/MoeSharp.Tests/Cli, not in a project of their own",
            "tests/MoeSharp.Orphan.Tests: mirrors no project under src/ (expected src/MoeSharp.Orphan)",
            "tests/MoeSharp.Tests/Cli: missing; the CLI's tests live there",
        ];
        Assert.Equal(expected.Order(StringComparer.Ordinal).ToArray(), v.Order(StringComparer.Ordinal).ToArray());
    }

    [Fact]
    public void CheckerAcceptsTheIntendedLayout()
    {
        var sources = new Dictionary<string, string[]>
        {
            ["MoeSharp"] = [],
            ["MoeSharp.Classic"] = ["MoeSharp"],
            ["MoeSharp.Retrieval"] = ["MoeSharp"],
            ["MoeSharp.Server"] = ["MoeSharp"],
            ["MoeSharp.Cluster"] = ["MoeSharp"],
            ["MoeSharp.Cli"] = ["MoeSharp", "MoeSharp.Classic", "MoeSharp.Retrieval", "MoeSharp.Server", "MoeSharp.Cluster"],
        };
        string[] tests = ["MoeSharp.Tests", "MoeSharp.Classic.Tests", "MoeSharp.Retrieval.Tests", "MoeSharp.Server.Tests", "MoeSharp.Cluster.Tests"];
        Assert.Empty(ProjectLayering.Check(sources, tests, cliTestsFolderExists: true));
    }

    [Fact]
    public void ReadsProjectReferenceNamesFromACsproj()
    {
        const string csproj = """
            <Project Sdk="Microsoft.NET.Sdk">
              <ItemGroup>
                <ProjectReference Include="../MoeSharp/MoeSharp.csproj" />
                <ProjectReference Include="..\MoeSharp.Classic\MoeSharp.Classic.csproj" />
                <PackageReference Include="System.CommandLine" Version="2.0.0" />
              </ItemGroup>
            </Project>
            """;
        Assert.Equal(["MoeSharp", "MoeSharp.Classic"], ProjectLayering.References(XDocument.Parse(csproj)));
    }

    /// <summary>The checker itself, on project names, so a synthetic set can show that it fails.</summary>
    internal static class ProjectLayering
    {
        private const string Core = "MoeSharp", Cli = "MoeSharp.Cli", TestSuffix = ".Tests";
        private const string Order = "(core < Classic, Retrieval, Server, Cluster < Retrieval.Onnx < Cli)";

        // 0 the core, 1 the sibling projects over it, 2 their native integrations, 3 the CLI.
        private static readonly Dictionary<string, int> Rank = new(StringComparer.Ordinal)
        {
            [Core] = 0,
            ["MoeSharp.Classic"] = 1,
            ["MoeSharp.Retrieval"] = 1,
            ["MoeSharp.Server"] = 1,
            ["MoeSharp.Cluster"] = 1,
            ["MoeSharp.Retrieval.Onnx"] = 2,
            [Cli] = 3,
        };

        /// <summary>Each src/&lt;Name&gt;/&lt;Name&gt;.csproj by folder name, with the names of the projects it references.</summary>
        public static Dictionary<string, string[]> ReadSources(string src)
        {
            var projects = new Dictionary<string, string[]>(StringComparer.Ordinal);
            foreach (var dir in Directory.GetDirectories(src))
                foreach (var csproj in Directory.GetFiles(dir, "*.csproj"))
                    projects[Path.GetFileName(dir)] = References(XDocument.Load(csproj));
            return projects;
        }

        /// <summary>The folder names under tests/ that hold a .csproj.</summary>
        public static string[] ReadTestProjects(string tests) =>
            Directory.GetDirectories(tests).Where(d => Directory.GetFiles(d, "*.csproj").Length > 0).Select(Path.GetFileName).ToArray()!;

        /// <summary>The project names (file names without .csproj) of every ProjectReference item.</summary>
        public static string[] References(XDocument csproj) =>
            csproj.Descendants().Where(e => e.Name.LocalName == "ProjectReference")
                .Select(e => Path.GetFileNameWithoutExtension(((string?)e.Attribute("Include") ?? "").Replace('\\', '/')))
                .ToArray();

        /// <summary>One line per violation, naming the project (and the reference) at fault.</summary>
        /// <param name="sources">Source project name → names of the projects it references.</param>
        /// <param name="testProjects">The names of the projects under tests/.</param>
        public static List<string> Check(IReadOnlyDictionary<string, string[]> sources, IEnumerable<string> testProjects, bool cliTestsFolderExists)
        {
            var violations = new List<string>();
            foreach (var (project, references) in sources)
            {
                if (!Rank.TryGetValue(project, out int from))
                {
                    violations.Add($"src/{project}: the project is not in the layering order {Order}");
                    continue;
                }
                foreach (string to in references)
                {
                    if (to == Cli) violations.Add($"src/{Cli}.csproj: no project may reference the CLI, but src/{project} does");
                    else if (!sources.ContainsKey(to)) violations.Add($"src/{project} -> {to}: no such project under src/");
                    else if (project == Core) violations.Add($"src/{project} -> {to}: the core must reference no project");
                    else if (!Rank.TryGetValue(to, out int r) || r >= from)
                        violations.Add($"src/{project} -> {to}: a project may reference only projects beneath it {Order}");
                }
            }

            var tests = new HashSet<string>(testProjects, StringComparer.Ordinal);
            foreach (string project in sources.Keys)
                if (project != Cli && !tests.Contains(project + TestSuffix))
                    violations.Add($"src/{project}: has no test project tests/{project}{TestSuffix}");
            foreach (string test in tests)
            {
                string mirrored = test.EndsWith(TestSuffix, StringComparison.Ordinal) ? test[..^TestSuffix.Length] : test;
                if (mirrored == Cli) violations.Add($"tests/{test}: the CLI's tests belong in tests/{Core}{TestSuffix}/Cli, not in a project of their own");
                else if (!sources.ContainsKey(mirrored)) violations.Add($"tests/{test}: mirrors no project under src/ (expected src/{mirrored})");
            }
            if (sources.ContainsKey(Cli) && !cliTestsFolderExists)
                violations.Add($"tests/{Core}{TestSuffix}/Cli: missing; the CLI's tests live there");
            return violations;
        }
    }
}
