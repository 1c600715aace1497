using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Orleans.Hosting;
using Orleans.TestingHost;
using SpecLog.Client;
using SpecLog.Server;

namespace SpecLog.Bench;

/// <summary>
/// An in-process cluster running the log for one measurement: its own temporary data directory, Orleans logging at
/// Warning, and a <see cref="SpecLogClient"/>. Disposing it stops the cluster and deletes the directory.
/// </summary>
internal sealed class BenchCluster : IAsyncDisposable
{
    private BenchCluster(InProcessTestCluster cluster, string dataDirectory)
    {
        Cluster = cluster;
        DataDirectory = dataDirectory;
        Client = cluster.Client.ServiceProvider.GetRequiredService<SpecLogClient>();
    }

    public InProcessTestCluster Cluster { get; }

    public string DataDirectory { get; }

    public SpecLogClient Client { get; }

    public IGrainFactory Grains => Cluster.Client;

    /// <summary>Starts <paramref name="silos"/> silos; <paramref name="configure"/> sets the log's options (the data directory is set already).</summary>
    public static async Task<BenchCluster> StartAsync(int silos, Action<SpecLogOptions> configure, Action<ISiloBuilder>? configureSilo = null)
    {
        var dataDirectory = Path.Combine(Path.GetTempPath(), "speclog-bench", Guid.NewGuid().ToString("N"));
        var builder = new InProcessTestClusterBuilder((short)silos);
        builder.ConfigureSilo((_, silo) =>
        {
            silo.AddSpecLog(o =>
            {
                o.DataDirectory = dataDirectory;
                configure(o);
            });
            configureSilo?.Invoke(silo);
        });
        builder.ConfigureSiloHost((_, host) => host.Logging.SetMinimumLevel(LogLevel.Warning));
        builder.ConfigureClientHost(host => host.Logging.SetMinimumLevel(LogLevel.Warning));
        builder.ConfigureClient(client => client.AddSpecLogClient());
        var cluster = builder.Build();
        await cluster.DeployAsync();
        return new BenchCluster(cluster, dataDirectory);
    }

    public async ValueTask DisposeAsync()
    {
        await Cluster.DisposeAsync();
        try
        {
            Directory.Delete(DataDirectory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
