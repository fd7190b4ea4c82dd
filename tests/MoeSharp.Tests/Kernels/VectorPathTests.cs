using System.Diagnostics;
using MoeSharp.Kernels;

namespace MoeSharp.Tests.Kernels;

/// <summary>
/// Runs every kernel test again in a child process with AVX-512, then AVX2, switched off, so the Vector256 and
/// Vector128 paths are checked against the same scalar twins as the Vector512 path.
/// </summary>
public class VectorPathTests
{
    private const string ExpectVariable = "MOESHARP_EXPECT_VECTOR_BITS";

    [Theory]
    // .NET 10 reads DOTNET_EnableAVX512; earlier runtimes read DOTNET_EnableAVX512F. Set both.
    [InlineData("DOTNET_EnableAVX512F,DOTNET_EnableAVX512", 256)]
    [InlineData("DOTNET_EnableAVX2", 128)]
    public async Task KernelTestsPassWithWiderPathsDisabled(string feature, int expectedBits)
    {
        if (Environment.GetEnvironmentVariable(ExpectVariable) is not null)
            Assert.Skip("already inside a child run");
        if (Gemm.VectorBits < expectedBits)
            Assert.Skip($"this machine's widest path is {Gemm.VectorBits}-bit; nothing to switch off");
        var start = new ProcessStartInfo(Environment.ProcessPath!)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        // Run directly, the test executable takes xunit's own console options.
        start.ArgumentList.Add("-trait");
        start.ArgumentList.Add("Category=Kernel");
        if (Path.GetFileNameWithoutExtension(Environment.ProcessPath) == "dotnet")
            start.ArgumentList.Insert(0, typeof(VectorPathTests).Assembly.Location);
        foreach (string variable in feature.Split(',')) start.Environment[variable] = "0";
        start.Environment[ExpectVariable] = expectedBits.ToString();
        using var child = Process.Start(start)!;
        var stdout = child.StandardOutput.ReadToEndAsync(TestContext.Current.CancellationToken);
        var stderr = child.StandardError.ReadToEndAsync(TestContext.Current.CancellationToken);
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        await child.WaitForExitAsync(timeout.Token);
        string output = await stdout + await stderr;
        Assert.True(child.ExitCode == 0, $"kernel tests failed with {feature}=0:\n{output}");
        Assert.Contains("Failed: 0", output);
    }

    [Fact]
    [Trait("Category", "Kernel")]
    public void VectorPathMatchesEnvironment()
    {
        // In a child run this proves the feature switch took effect; in the parent it is a no-op.
        if (Environment.GetEnvironmentVariable(ExpectVariable) is string bits)
            Assert.Equal(int.Parse(bits), Gemm.VectorBits);
    }
}
