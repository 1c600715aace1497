using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using SpecLog.Client;

namespace SpecLog.Cluster.Tests;

/// <summary>A client started while no silo is reachable fails with a clear error after its connect timeout, not minutes later.</summary>
public sealed class ClientConnectTests
{
    [Fact(Timeout = 60_000)]
    public async Task A_client_with_no_silo_to_reach_fails_clearly_after_its_connect_timeout()
    {
        var ct = TestContext.Current.CancellationToken;
        var port = UnusedPort();
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { Args = [], DisableDefaults = true });
        builder.UseOrleansClient(client =>
        {
            client.UseLocalhostClustering(port);
            client.AddSpecLogClient(o => o.ConnectTimeout = TimeSpan.FromSeconds(1));
        });

        using var host = builder.Build();
        var started = Stopwatch.StartNew();
        var e = await Assert.ThrowsAsync<SpecLogUnavailableException>(() => host.StartAsync(ct));
        started.Stop();

        Assert.Contains("1 s", e.Message, StringComparison.Ordinal);
        Assert.Contains("ConnectTimeout", e.Message, StringComparison.Ordinal);
        Assert.NotNull(e.InnerException);

        // Orleans' own policy would still be retrying here (1.5 s, 3 s, 4.5 s, … for about three minutes).
        TestContext.Current.SendDiagnosticMessage($"failed after {started.Elapsed.TotalSeconds:0.0} s: {e.Message}");
        Assert.True(started.Elapsed < TimeSpan.FromSeconds(30), $"the start failed only after {started.Elapsed.TotalSeconds:0.0} s");
    }

    [Fact]
    public void An_application_filter_wins_over_the_connect_deadline_whichever_is_registered_first()
    {
        static IClientConnectionRetryFilter FilterOf(Action<IClientBuilder> configure)
        {
            var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { Args = [], DisableDefaults = true });
            builder.UseOrleansClient(client =>
            {
                client.UseLocalhostClustering();
                configure(client);
            });
            using var host = builder.Build();
            return host.Services.GetRequiredService<IClientConnectionRetryFilter>();
        }

        var mine = new NeverRetry();
        Assert.Same(mine, FilterOf(c => c.AddSpecLogClient().UseConnectionRetryFilter(mine)));
        Assert.Same(mine, FilterOf(c => c.UseConnectionRetryFilter(mine).AddSpecLogClient()));
        Assert.Equal("ConnectDeadlineFilter", FilterOf(c => c.AddSpecLogClient()).GetType().Name);
    }

    [Fact]
    public void A_connect_timeout_that_cannot_work_is_refused()
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => new SpecLogClient(null!, Microsoft.Extensions.Options.Options.Create(new SpecLogClientOptions { ConnectTimeout = TimeSpan.Zero })));
        Assert.Contains(nameof(SpecLogClientOptions.ConnectTimeout), e.Message, StringComparison.Ordinal);
    }

    private static int UnusedPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private sealed class NeverRetry : IClientConnectionRetryFilter
    {
        public Task<bool> ShouldRetryConnectionAttempt(Exception exception, CancellationToken cancellationToken) => Task.FromResult(false);
    }
}
