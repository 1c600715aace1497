using System.Collections.Concurrent;
using System.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orleans.Configuration;
using SpecLog.Client;

namespace SpecLog.Silo.Tests;

/// <summary>An Orleans client of one silo process, connected with retries until a deadline (the silo may still be starting).</summary>
internal sealed class TestClient : IAsyncDisposable
{
    private readonly IHost _host;

    private TestClient(IHost host) => _host = host;

    public SpecLogClient Log => _host.Services.GetRequiredService<SpecLogClient>();

    public IGrainFactory Grains => _host.Services.GetRequiredService<IGrainFactory>();

    /// <summary>The client host's services (Orleans' serializer for a consumer's state codec).</summary>
    public IServiceProvider Services => _host.Services;

    /// <summary>Connects to <paramref name="silo"/>'s gateway; gives up at <paramref name="timeout"/> or as soon as the process exits.</summary>
    public static Task<TestClient> ConnectAsync(SiloProcess silo, TimeSpan timeout, CancellationToken cancellationToken) =>
        ConnectAsync(client => client.UseLocalhostClustering(silo.GatewayPort), () => silo.HasExited, timeout, cancellationToken);

    /// <summary>
    /// Connects to a cluster through its Azure Table membership (every live silo's gateway), as a production client does;
    /// its warnings and errors go to <c>logTo</c> when given (else nowhere).
    /// </summary>
    public static Task<TestClient> ConnectClusterAsync(string connectionString, string clusterId, TimeSpan timeout, CancellationToken cancellationToken, ConcurrentQueue<string>? logTo = null) =>
        ConnectAsync(
            client =>
            {
                client.Configure<ClusterOptions>(o =>
                {
                    o.ClusterId = clusterId;
                    o.ServiceId = clusterId;
                });
                client.UseAzureStorageClustering(o =>
                {
                    o.TableServiceClient = new Azure.Data.Tables.TableServiceClient(connectionString);
                    o.TableName = "SpecLogMembership";
                });
            },
            () => false,
            timeout,
            cancellationToken,
            logTo);

    private static async Task<TestClient> ConnectAsync(Action<IClientBuilder> clustering, Func<bool> gone, TimeSpan timeout, CancellationToken cancellationToken, ConcurrentQueue<string>? logTo = null)
    {
        var deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { Args = [], DisableDefaults = true });
        builder.Logging.ClearProviders();
        if (logTo is not null)
        {
            builder.Logging.AddProvider(new QueueLoggerProvider(logTo));
        }

        builder.UseOrleansClient(client =>
        {
            clustering(client);
            client.Configure<ClientMessagingOptions>(o => o.ResponseTimeout = TimeSpan.FromSeconds(15));
            client.UseConnectionRetryFilter(async (_, ct) =>
            {
                if (gone() || Stopwatch.GetTimestamp() > deadline)
                {
                    return false;
                }

                await Task.Delay(100, ct);
                return true;
            });
            client.AddSpecLogClient(o => o.SubscriptionRefresh = TimeSpan.FromMilliseconds(500));
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

        return new TestClient(host);
    }

    /// <summary>Stops the client, waiting a bounded time (its silo may be dead).</summary>
    public async ValueTask DisposeAsync()
    {
        using (var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5)))
        {
            try
            {
                await _host.StopAsync(timeout.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or OrleansException or TimeoutException)
            {
                // A dead gateway: nothing to close gracefully.
            }
        }

        _host.Dispose();
    }
}
