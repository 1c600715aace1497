using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orleans.Configuration;
using SpecLog.Client;
using SpecLog.FixAnte;

namespace SpecLog.Samples;

/// <summary>
/// The log a sample works with: a silo started in this process (on free ports, a temporary data directory, in the
/// ordering mode asked for), a running silo reached through its gateway, or a cluster reached through its Azure Table
/// membership.
/// </summary>
public sealed class SampleLog : IAsyncDisposable
{
    private static int s_tearingDown;
    private readonly IHost _host;
    private readonly IHost? _silo;
    private readonly string? _temporary;

    private SampleLog(IHost host, IHost? silo, string? temporary, string description)
    {
        _host = host;
        _silo = silo;
        _temporary = temporary;
        Description = description;
    }

    /// <summary>The log's client.</summary>
    public SpecLogClient Client => _host.Services.GetRequiredService<SpecLogClient>();

    /// <summary>The Orleans services (for the consumer's state codec).</summary>
    public IServiceProvider Services => _host.Services;

    /// <summary>What this is connected to, for the sample's first line.</summary>
    public string Description { get; }

    /// <summary>
    /// Connects as <paramref name="args"/> say: <c>--azure &lt;connection string&gt; [--cluster-id id]</c> for a cluster with
    /// Azure Table membership, <c>--gateway &lt;port&gt;</c> for one silo on this machine, else an embedded silo in
    /// <paramref name="embeddedMode"/> with <c>--shards</c> shards.
    /// </summary>
    public static Task<SampleLog> OpenAsync(SampleArgs args, OrderingMode embeddedMode, CancellationToken cancellationToken)
    {
        var azure = args.Text("--azure");
        var clusterId = args.Text("--cluster-id", "speclog")!;
        var gateway = args.Text("--gateway");
        var shards = (int)args.Number("--shards", 4, 1, 256);
        if (azure is not null)
        {
            return ConnectAsync(
                c =>
                {
                    c.Configure<ClusterOptions>(o => (o.ClusterId, o.ServiceId) = (clusterId, clusterId));
                    c.UseAzureStorageClustering(o =>
                    {
                        o.TableServiceClient = new Azure.Data.Tables.TableServiceClient(azure);
                        o.TableName = "SpecLogMembership"; // the silo's Silo:AzureStorage:TableName default
                    });
                },
                $"cluster '{clusterId}' (Azure Table membership)",
                cancellationToken);
        }

        if (gateway is not null)
        {
            var port = int.Parse(gateway, System.Globalization.CultureInfo.InvariantCulture);
            return ConnectAsync(c => c.UseLocalhostClustering(port), $"silo at 127.0.0.1:{port}", cancellationToken);
        }

        return StartEmbeddedAsync(embeddedMode, shards, cancellationToken);
    }

    /// <summary>A silo with the log inside this process, and its own client.</summary>
    public static async Task<SampleLog> StartEmbeddedAsync(OrderingMode mode, int shards, CancellationToken cancellationToken)
    {
        var data = Path.Combine(Path.GetTempPath(), "speclog-sample-" + Guid.NewGuid().ToString("N"));
        var builder = Builder();
        builder.UseOrleans(silo => silo
            .UseLocalhostClustering(FreePort(), FreePort())
            .AddSpecLog(o =>
            {
                o.DataDirectory = data;
                o.ShardCount = shards;
                o.Ordering.Mode = mode;
            }));
        var silo = builder.Build();
        await silo.StartAsync(cancellationToken);
        var what = mode == OrderingMode.FixAnte ? "SpecLog (speculative delivery)" : "Scalog mode (delivery after ordering)";
        return new SampleLog(silo, null, data, $"embedded silo, {shards} shards, {what}");
    }

    private static async Task<SampleLog> ConnectAsync(Action<IClientBuilder> clustering, string description, CancellationToken cancellationToken)
    {
        var builder = Builder();
        builder.UseOrleansClient(client =>
        {
            clustering(client);
            client.AddSpecLogClient(o => o.ConnectTimeout = TimeSpan.FromSeconds(30));
        });
        var host = builder.Build();
        await host.StartAsync(cancellationToken);
        return new SampleLog(host, null, null, description);
    }

    private static HostApplicationBuilder Builder()
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { Args = [] });
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        // A silo stopping makes Orleans and the ordering replicas log one-way messages they can no longer deliver:
        // expected then, so only critical lines are shown while a log is torn down.
        builder.Logging.AddFilter("Orleans", level => level >= (Volatile.Read(ref s_tearingDown) > 0 ? LogLevel.Critical : LogLevel.Error));
        builder.Logging.AddFilter("SpecLog", level => level >= (Volatile.Read(ref s_tearingDown) > 0 ? LogLevel.Critical : LogLevel.Error));
        builder.Logging.AddFilter("Polly", level => level >= (Volatile.Read(ref s_tearingDown) > 0 ? LogLevel.Critical : LogLevel.Error));
        builder.Services.Configure<ConsoleLifetimeOptions>(o => o.SuppressStatusMessages = true);
        return builder;
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        Interlocked.Increment(ref s_tearingDown);
        try
        {
            await StopAsync();
        }
        finally
        {
            Interlocked.Decrement(ref s_tearingDown);
        }
    }

    private async Task StopAsync()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        foreach (var host in new[] { _host, _silo })
        {
            if (host is null)
            {
                continue;
            }

            try
            {
                await host.StopAsync(timeout.Token);
            }
            catch (OperationCanceledException)
            {
            }

            host.Dispose();
        }

        if (_temporary is not null)
        {
            try
            {
                Directory.Delete(_temporary, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }
}
