using Microsoft.Extensions.DependencyInjection;
using Orleans.Hosting;
using Orleans.TestingHost;
using SpecLog.Client;
using SpecLog.FixAnte;
using SpecLog.Server;

namespace SpecLog.Cluster.Tests;

/// <summary>An in-process cluster running the log on its own temporary data directory.</summary>
public class ClusterFixture : IAsyncLifetime
{
    private readonly string _dataDirectory = Path.Combine(Path.GetTempPath(), "speclog-tests", Guid.NewGuid().ToString("N"));

    public InProcessTestCluster Cluster { get; private set; } = null!;

    public SpecLogClient Client => Cluster.Client.ServiceProvider.GetRequiredService<SpecLogClient>();

    public IGrainFactory Grains => Cluster.Client;

    public string DataDirectory => _dataDirectory;

    protected virtual int Silos => 1;

    protected virtual void Configure(SpecLogOptions options)
    {
    }

    protected virtual void ConfigureSilo(ISiloBuilder silo)
    {
    }

    protected virtual void ConfigureClient(IClientBuilder client)
    {
    }

    public async ValueTask InitializeAsync()
    {
        var builder = new InProcessTestClusterBuilder((short)Silos);
        builder.ConfigureSilo((_, silo) =>
        {
            silo.AddSpecLog(o =>
            {
                o.DataDirectory = _dataDirectory;
                o.SegmentSize = 4 << 20; // many clusters start at once: keep the background segment zero-filling small
                Configure(o);
            });
            ConfigureSilo(silo);
        });
        builder.ConfigureClient(client =>
        {
            client.AddSpecLogClient(o => o.SubscriptionRefresh = TimeSpan.FromMilliseconds(500));
            ConfigureClient(client);
        });
        Cluster = builder.Build();
        await Cluster.DeployAsync();
    }

    public async ValueTask DisposeAsync()
    {
        await Cluster.DisposeAsync();
        try
        {
            Directory.Delete(_dataDirectory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

[CollectionDefinition(Name)]
public sealed class SharedClusterCollection : ICollectionFixture<ClusterFixture>
{
    public const string Name = "shared cluster";
}
