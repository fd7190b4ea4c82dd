namespace MoeSharp.Tests;

/// <summary>Locates the repository root and the <c>shared</c> folder of fixtures that sits beside it.</summary>
internal static class TestPaths
{
    /// <summary>The nearest folder above the test binaries that holds <c>MoeSharp.slnx</c>.</summary>
    public static string RepoRoot { get; } = FindRepoRoot();

    /// <summary><c>../shared</c> from the repository root; it may not exist.</summary>
    public static string SharedRoot => Path.GetFullPath(Path.Combine(RepoRoot, "..", "shared"));

    /// <summary>The full path of <paramref name="relative"/> under <see cref="SharedRoot"/>, or null if absent.</summary>
    public static string? Shared(string relative)
    {
        string path = Path.Combine(SharedRoot, relative);
        return File.Exists(path) || Directory.Exists(path) ? path : null;
    }

    /// <summary>The folder of the shared tokenizer <paramref name="model"/> (qwen3, deepseek_v3, gptoss); the test is skipped when ../shared lacks it.</summary>
    public static string SharedTokenizer(string model)
    {
        string? path = Shared("tokenizers/" + model + "/tokenizer.json");
        if (path is null) Assert.Skip($"shared tokenizers not found under {SharedRoot}");
        return Path.GetDirectoryName(path)!;
    }

    /// <summary>The tiny random model of <paramref name="arch"/> and its llama.cpp golden, in the core tests' Golden folder.</summary>
    public static string ArchitectureGolden(string arch) => Path.Combine(RepoRoot, "tests", "MoeSharp.Tests", "Golden", arch);

    private static string FindRepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "MoeSharp.slnx")))
                return dir.FullName;
        }
        throw new InvalidOperationException($"MoeSharp.slnx not found above {AppContext.BaseDirectory}");
    }
}
