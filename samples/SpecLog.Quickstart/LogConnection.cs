using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orleans.Configuration;
using SpecLog.Client;

namespace SpecLog.Quickstart;

/// <summary>The log the quickstart talks to: a running silo reached through its gateway, or a silo started in this process.</summary>
internal sealed class LogConnection : IAsyncDisposable
{
    private static bool s_tearingDown;
    private readonly IHost _host;
    private readonly IHost? _silo;
    private readonly string? _temporaryDirectory;

    private LogConnection(IHost host, IHost? silo, string description, string? temporaryDirectory)
    {
        _host = host;
        _silo = silo;
        Description = description;
        _temporaryDirectory = temporaryDirectory;
    }

    public SpecLogClient Client => _host.Services.GetRequiredService<SpecLogClient>();

    public IGrainFactory Grains => _host.Services.GetRequiredService<IGrainFactory>();

    /// <summary>Fires on Ctrl+C or SIGTERM.</summary>
    public CancellationToken Stopping => _host.Services.GetRequiredService<IHostApplicationLifetime>().ApplicationStopping;

    public string Description { get; }

    /// <summary>Set once the run is over: from then on only critical Orleans and SpecLog log lines are shown.</summary>
    public static bool TearingDown
    {
        get => Volatile.Read(ref s_tearingDown);
        set => Volatile.Write(ref s_tearingDown, value);
    }

    /// <summary>Connects an Orleans client to the gateway, retrying until <see cref="QuickstartOptions.ConnectTimeout"/>.</summary>
    public static async Task<LogConnection> ConnectAsync(QuickstartOptions options, CancellationToken cancellationToken)
    {
        var host = await StartClientAsync(options.Gateway, options.ClusterId, options.ServiceId, options.ConnectTimeout, cancellationToken);
        return new LogConnection(host, null, $"silo at {options.Gateway} (cluster '{options.ClusterId}')", null);
    }

    /// <summary>Starts a single silo with the log inside this process, on free ports, and uses it directly.</summary>
    public static async Task<LogConnection> StartEmbeddedAsync(QuickstartOptions options, CancellationToken cancellationToken)
    {
        var temporary = options.DataDirectory is null ? Path.Combine(Path.GetTempPath(), "speclog-quickstart-" + Guid.NewGuid().ToString("N")) : null;
        var dataDirectory = Path.GetFullPath(options.DataDirectory ?? temporary!);
        var siloPort = FreePort();
        var gatewayPort = FreePort();
        var builder = CreateBuilder();
        builder.UseOrleans(silo => silo
            .UseLocalhostClustering(siloPort, gatewayPort)
            .AddSpecLog(o =>
            {
                o.DataDirectory = dataDirectory;
                o.ShardCount = options.Shards;
                o.Fsync = options.Fsync;
            }));

        // The silo runs in this process, but the sample talks to it like any application does: through an Orleans
        // client connected to its gateway (a second host in the same process).
        // With --in-silo-client it uses the SpecLogClient that AddSpecLog registers inside the silo instead.
        var silo = builder.Build();
        IHost client;
        try
        {
            await silo.StartAsync(cancellationToken);
            client = options.InSiloClient
                ? silo
                : await StartClientAsync(new IPEndPoint(IPAddress.Loopback, gatewayPort), "dev", "dev", options.ConnectTimeout, cancellationToken);
        }
        catch
        {
            await StopAsync(silo);
            DeleteQuietly(temporary);
            throw;
        }

        var fsync = options.Fsync ? "fsync on" : "fsync OFF";
        var via = options.InSiloClient ? "the silo's own client" : "a client through the gateway";
        return new LogConnection(client, ReferenceEquals(client, silo) ? null : silo, $"embedded silo (gateway 127.0.0.1:{gatewayPort}, {options.Shards} shards, {fsync}, data {dataDirectory}) via {via}", temporary);
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync(_host);
        if (_silo is not null)
        {
            await StopAsync(_silo);
        }

        DeleteQuietly(_temporaryDirectory);
    }

    private static async Task<IHost> StartClientAsync(IPEndPoint gateway, string clusterId, string serviceId, TimeSpan connectTimeout, CancellationToken cancellationToken)
    {
        var builder = CreateBuilder();
        var deadline = Stopwatch.GetTimestamp() + (long)(connectTimeout.TotalSeconds * Stopwatch.Frequency);
        var waiting = false;
        builder.UseOrleansClient(client =>
        {
            if (IPAddress.IsLoopback(gateway.Address))
            {
                client.UseLocalhostClustering(gateway.Port, serviceId, clusterId);
            }
            else
            {
                client.UseStaticClustering(gateway);
                client.Configure<ClusterOptions>(o =>
                {
                    o.ClusterId = clusterId;
                    o.ServiceId = serviceId;
                });
            }

            client.UseConnectionRetryFilter(async (_, ct) =>
            {
                if (Stopwatch.GetTimestamp() > deadline)
                {
                    return false;
                }

                if (!waiting)
                {
                    waiting = true;
                    Console.WriteLine($"Waiting for the gateway at {gateway} (up to {connectTimeout.TotalSeconds:0} s)...");
                }

                await Task.Delay(500, ct);
                return true;
            });
            client.AddSpecLogClient();
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

        return host;
    }

    private static async Task StopAsync(IHost host)
    {
        using (var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30)))
        {
            try
            {
                await host.StopAsync(timeout.Token);
            }
            catch (OperationCanceledException)
            {
                Console.Error.WriteLine("Stopping an Orleans host timed out.");
            }
        }

        if (host is IAsyncDisposable asyncDisposable)
        {
            await asyncDisposable.DisposeAsync();
        }
        else
        {
            host.Dispose();
        }
    }

    private static HostApplicationBuilder CreateBuilder()
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { Args = [] });
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        // Once the results are printed, tearing down the subscription and the host makes Orleans and the shards log
        // about one-way messages and pushes that can no longer be delivered; that is expected, so keep it off the screen.
        builder.Logging.AddFilter("Orleans", level => level >= (TearingDown ? LogLevel.Critical : LogLevel.Error));
        builder.Logging.AddFilter("Polly", level => level >= (TearingDown ? LogLevel.Critical : LogLevel.Error));
        builder.Logging.AddFilter("SpecLog", level => level >= (TearingDown ? LogLevel.Critical : LogLevel.Warning));
        builder.Services.Configure<ConsoleLifetimeOptions>(o => o.SuppressStatusMessages = true);
        return builder;
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static void DeleteQuietly(string? directory)
    {
        if (directory is null)
        {
            return;
        }

        try
        {
            Directory.Delete(directory, recursive: true);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
