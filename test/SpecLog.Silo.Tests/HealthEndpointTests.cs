using System.Collections.Concurrent;
using System.Net;

namespace SpecLog.Silo.Tests;

/// <summary>
/// The silo's <c>/healthz</c>, <c>/readyz</c> and <c>/metrics</c> on the dashboard's port: a one-silo log is live and
/// ready once up and its exported metrics move under load; in
/// a three-process cluster a silo that lost both peers stays live but is not ready (its ordering layer has no quorum),
/// and is ready again when a peer returns.
/// </summary>
[Collection(SiloProcessCollection.Name)]
public sealed class HealthEndpointTests(ITestOutputHelper log)
{
    private static readonly TimeSpan StepTimeout = TimeSpan.FromSeconds(90);

    [Fact(Timeout = 240_000)]
    public async Task A_one_silo_log_is_live_and_ready_once_up_its_metrics_move_under_load_and_the_banner_names_the_endpoints()
    {
        var ct = TestContext.Current.CancellationToken;
        using var temp = new TempFolder("speclog-health-");
        var root = temp.Path;
        var output = new ConcurrentQueue<string>();
        var port = SiloProcess.FreePort();
        try
        {
            await using var silo = SiloProcess.Start("silo", Path.Combine(root, "data"), 2, output, "--Silo:Dashboard:Enabled=true", $"--Silo:Dashboard:Port={port}", "--SpecLog:Replication:Mode=Single");
            await Waits.UntilAsync(() => silo.IsUp, "the silo is up", StepTimeout, ct);
            var banner = $"health: http://localhost:{port}/healthz (live), http://localhost:{port}/readyz (ready); metrics http://localhost:{port}/metrics (Prometheus)";
            await Waits.UntilAsync(() => output.Any(l => l.Contains(banner, StringComparison.Ordinal)), "the banner's health line (it follows the up line)", StepTimeout, ct);
            var (liveCode, live) = await GetAsync($"http://localhost:{port}/healthz", ct);
            Assert.Equal((HttpStatusCode.OK, "Healthy: the silo process serves"), (liveCode, live));
            var (readyCode, ready) = await GetAsync($"http://localhost:{port}/readyz", ct);
            Assert.Equal(HttpStatusCode.OK, readyCode);
            Assert.StartsWith("Healthy: ready: 2 shard replica(s) here serve", ready, StringComparison.Ordinal);

            // The Prometheus scrape endpoint: the log's meter and Orleans', moving under load.
            var before = await RecordsAsync(port, ct);
            var cutsBefore = await CounterAsync(port, "speclog_ordering_cuts_total{", ct);
            await using var client = await TestClient.ConnectAsync(silo, StepTimeout, ct);
            await Task.WhenAll(Enumerable.Range(0, 200).Select(i => client.Log.AppendAsync(new byte[] { 1, (byte)i }, cancellationToken: ct)));
            long after = 0;
            await Waits.UntilAsync(async () => (after = await RecordsAsync(port, ct)) >= before + 200, "200 more records in /metrics", StepTimeout, ct);
            var (_, metrics) = await GetAsync($"http://localhost:{port}/metrics", ct);
            Assert.Contains("speclog_stage_duration_milliseconds_bucket{", metrics);
            Assert.Contains("stage=\"shard.durable\"", metrics);
            Assert.Contains("\norleans_", metrics);

            // The ordering layer's counters: committed cuts move with the log, tagged with the replica that executed them.
            Assert.Contains("speclog_ordering_cuts_total{", metrics);
            Assert.Contains("replica=\"sequencer\"", metrics);
            Assert.Contains("speclog_ordering_lag_fixes_total{", metrics);
            Assert.Contains("speclog_ordering_shard_failures_total{", metrics);
            var cutsAfter = await CounterAsync(port, "speclog_ordering_cuts_total{", ct);
            Assert.True(cutsAfter > cutsBefore, $"committed cuts {cutsBefore} → {cutsAfter}");
            log.WriteLine($"speclog_shard_records_total {before} → {after}");
        }
        catch
        {
            log.WriteLine(string.Join(Environment.NewLine, output));
            throw;
        }
    }

    [Fact(Timeout = 300_000)]
    public async Task A_silo_without_a_quorum_of_ordering_replicas_is_live_but_not_ready_until_a_peer_returns()
    {
        var ct = TestContext.Current.CancellationToken;
        var ports = ProcessCluster.Nodes.Select(_ => SiloProcess.FreePort()).ToArray();
        await using var azurite = await AzuriteServer.StartAsync(ct);
        await using var cluster = await ProcessCluster.StartAsync(
            azurite.ConnectionString, 2, node => ["--Silo:Dashboard:Enabled=true", $"--Silo:Dashboard:Port={ports[node]}"], ct);
        try
        {
            var node0 = $"http://localhost:{ports[0]}";
            await cluster.UntilAsync(async () => (await GetAsync($"{node0}/readyz", ct)).Code == HttpStatusCode.OK, "node-0 ready", ct);
            foreach (var port in ports[1..])
            {
                Assert.Equal(HttpStatusCode.OK, (await GetAsync($"http://localhost:{port}/readyz", ct)).Code);
            }

            cluster.Kill(1);
            cluster.Kill(2);
            string text = "";
            await cluster.UntilAsync(
                async () =>
                {
                    HttpStatusCode code;
                    (code, text) = await GetAsync($"{node0}/readyz", ct);
                    return code == HttpStatusCode.ServiceUnavailable;
                },
                "node-0 not ready",
                ct);
            log.WriteLine($"node-0 /readyz with both peers dead: {text}");
            Assert.Contains("no quorum: 1 of 3 replicas serve, 2 needed", text);
            Assert.Equal(HttpStatusCode.OK, (await GetAsync($"{node0}/healthz", ct)).Code);

            await cluster.RestartAsync(1, ct);
            await cluster.UntilAsync(async () => (await GetAsync($"{node0}/readyz", ct)).Code == HttpStatusCode.OK, "node-0 ready again with node-1 back", ct);
        }
        catch
        {
            log.WriteLine(string.Join(Environment.NewLine, cluster.Output));
            throw;
        }
    }

    /// <summary><c>speclog_shard_records_total</c> from the silo's <c>/metrics</c> (0 before the first record).</summary>
    private static Task<long> RecordsAsync(int port, CancellationToken ct) => CounterAsync(port, "speclog_shard_records_total", ct);

    /// <summary>The value of the first series in <c>/metrics</c> whose line starts with <paramref name="prefix"/>, 0 when there is none.</summary>
    private static async Task<long> CounterAsync(int port, string prefix, CancellationToken ct)
    {
        var (_, text) = await GetAsync($"http://localhost:{port}/metrics", ct);
        var line = text.Split('\n').FirstOrDefault(l => l.StartsWith(prefix, StringComparison.Ordinal));
        if (line is null)
        {
            return 0;
        }

        // "name{labels} value" or "name{labels} value timestamp"
        var labelsEnd = line.IndexOf('}', StringComparison.Ordinal);
        var fields = line[(labelsEnd >= 0 ? labelsEnd + 1 : line.IndexOf(' ', StringComparison.Ordinal))..].Trim().Split(' ');
        return (long)double.Parse(fields[0], System.Globalization.CultureInfo.InvariantCulture);
    }

    private static Task<(HttpStatusCode Code, string Text)> GetAsync(string url, CancellationToken ct) => SiloHttp.GetAsync(url, ct);
}
