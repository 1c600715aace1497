using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orleans.Configuration;
using SpecLog.Client;

namespace SpecLog.Cli;

/// <summary>
/// How <c>speclog</c> reaches the log, the way the client library does: one silo's gateway on this machine
/// (<c>--gateway</c>, default 30000), or a cluster through its Azure Table membership (<c>--azure</c> with
/// <c>--cluster-id</c>).
/// </summary>
internal sealed class LogConnection : IAsyncDisposable
{
    private readonly IHost _host;

    private LogConnection(IHost host, string description)
    {
        _host = host;
        Description = description;
    }

    public SpecLogClient Log => _host.Services.GetRequiredService<SpecLogClient>();

    public IGrainFactory Grains => _host.Services.GetRequiredService<IGrainFactory>();

    public string Description { get; }

    /// <summary>Connects, or fails with a <see cref="SpecLogUnavailableException"/> after <paramref name="timeout"/>.</summary>
    public static async Task<LogConnection> OpenAsync(int gateway, string? azure, string clusterId, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { Args = [], DisableDefaults = true });
        builder.Logging.ClearProviders();
        builder.UseOrleansClient(client =>
        {
            if (azure is not null)
            {
                client.Configure<ClusterOptions>(o => (o.ClusterId, o.ServiceId) = (clusterId, clusterId));
                client.UseAzureStorageClustering(o =>
                {
                    o.TableServiceClient = new Azure.Data.Tables.TableServiceClient(azure);
                    o.TableName = "SpecLogMembership";
                });
            }
            else
            {
                client.UseLocalhostClustering(gateway, serviceId: clusterId, clusterId: clusterId);
            }

            client.AddSpecLogClient(o => o.ConnectTimeout = timeout);
        });
        var host = builder.Build();
        try
        {
            await host.StartAsync(cancellationToken);
        }
        catch
        {
            host.Dispose();
            throw;
        }

        return new LogConnection(host, azure is not null ? $"cluster '{clusterId}' (Azure Table membership)" : $"silo at 127.0.0.1:{gateway}");
    }

    public async ValueTask DisposeAsync()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        try
        {
            await _host.StopAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
        }

        _host.Dispose();
    }
}
