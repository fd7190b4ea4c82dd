using MoeSharp.Cluster;
using Orleans.TestingHost;

namespace MoeSharp.Cluster.Tests;

public sealed class PingGrainTests
{
    [Fact]
    public async Task AThreeSiloClusterAnswers()
    {
        var builder = new TestClusterBuilder(3);
        var cluster = builder.Build();
        await cluster.DeployAsync();
        try
        {
            Assert.Equal(42, await cluster.GrainFactory.GetGrain<IPingGrain>(0).Ping(41));
        }
        finally
        {
            await cluster.StopAllSilosAsync();
            await cluster.DisposeAsync();
        }
    }
}
