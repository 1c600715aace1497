using Microsoft.Extensions.DependencyInjection;
using Orleans.Hosting;
using Orleans.TestingHost;
using SpecLog.Client;
using SpecLog.Server;

namespace SpecLog.Cluster.Tests;

/// <summary>Replication settings: validation, and data written with one replica set refused by another.</summary>
public sealed class ReplicationConfigurationTests
{
    [Theory]
    [InlineData(SequencerReplication.Copilot, 4, "Replicas must be odd")]
    [InlineData(SequencerReplication.Copilot, 1, "Replicas must be odd")]
    [InlineData(SequencerReplication.MultiPaxos, 65, "Replicas must be odd")]
    [InlineData((SequencerReplication)7, 3, "Mode must be Single, Copilot or MultiPaxos")]
    public void BadReplicationSettings_AreRefused_NamingTheSetting(SequencerReplication mode, int replicas, string expected)
    {
        var options = new SpecLogOptions { Replication = { Mode = mode, Replicas = replicas } };
        var result = new SpecLogOptionsValidator().Validate(null, options);
        Assert.True(result.Failed);
        Assert.Contains(expected, result.FailureMessage, StringComparison.Ordinal);
    }

    [Fact]
    public void ElectionTimeoutNotAboveHeartbeat_IsRefused()
    {
        var options = new SpecLogOptions { Replication = { HeartbeatInterval = TimeSpan.FromMilliseconds(50), ElectionTimeout = TimeSpan.FromMilliseconds(50) } };
        var result = new SpecLogOptionsValidator().Validate(null, options);
        Assert.True(result.Failed);
        Assert.Contains("SpecLog:Replication", result.FailureMessage, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(SequencerReplication.Single, 4)] // replica count is irrelevant without replication
    [InlineData(SequencerReplication.Copilot, 5)]
    [InlineData(SequencerReplication.MultiPaxos, 3)]
    public void UsableSettings_Pass(SequencerReplication mode, int replicas)
    {
        var options = new SpecLogOptions { Replication = { Mode = mode, Replicas = replicas } };
        Assert.True(new SpecLogOptionsValidator().Validate(null, options).Succeeded);
    }

    [Fact]
    public async Task DataWrittenWithThreeReplicas_IsRefusedByFive_AndStillServedByThree()
    {
        var ct = TestContext.Current.CancellationToken;
        var dir = Path.Combine(Path.GetTempPath(), "speclog-tests", Guid.NewGuid().ToString("N"));
        try
        {
            long gsn;
            await using (var cluster = await StartAsync(dir, 3))
            {
                var client = cluster.Client.ServiceProvider.GetRequiredService<SpecLogClient>();
                gsn = await client.AppendAsync(Payload.Make("replica-set", 0, 0), cancellationToken: ct);
                await cluster.StopAllSilosAsync(ct);
            }

            await using (var cluster = await StartAsync(dir, 5))
            {
                var replica = cluster.Client.GetGrain<ISequencerReplicaGrain>(0);
                var error = await Assert.ThrowsAnyAsync<Exception>(() => replica.GetStatusAsync());
                Assert.Contains("3 replicas", error.ToString(), StringComparison.Ordinal);
                await cluster.StopAllSilosAsync(ct);
            }

            await using (var cluster = await StartAsync(dir, 3))
            {
                var client = cluster.Client.ServiceProvider.GetRequiredService<SpecLogClient>();
                var record = await client.ReadAsync(gsn, ct);
                Assert.NotNull(record);
                Assert.Equal(Payload.Text(Payload.Make("replica-set", 0, 0)), Payload.Text(record.Payload));
            }
        }
        finally
        {
            try
            {
                Directory.Delete(dir, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    private static async Task<InProcessTestCluster> StartAsync(string dataDirectory, int replicas)
    {
        var builder = new InProcessTestClusterBuilder(1);
        builder.ConfigureSilo((_, silo) => silo.AddSpecLog(o =>
        {
            o.DataDirectory = dataDirectory;
            o.Replication.Replicas = replicas;
        }));
        builder.ConfigureClient(client => client.AddSpecLogClient());
        var cluster = builder.Build();
        await cluster.DeployAsync();
        return cluster;
    }
}
