using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Text;

namespace SpecLog.Silo.Tests;

/// <summary>
/// A rolling restart, as an upgrade does it: under a steady load, each of three silo processes (R = 3, Copilot, Azure
/// Table membership on Azurite) in turn is stopped with SIGTERM and started again, the next one only once every silo
/// answers <c>/readyz</c>. Nothing acknowledged is lost or moved, nothing is written twice, no append fails, and the
/// append latencies during the roll are reported.
/// </summary>
[Collection(SiloProcessCollection.Name)]
public sealed class RollingRestartTests(ITestOutputHelper log)
{
    [Fact(Timeout = 420_000)]
    public async Task Restarting_every_silo_in_turn_under_load_loses_nothing_and_fails_no_append()
    {
        var ct = TestContext.Current.CancellationToken;
        var ports = ProcessCluster.Nodes.Select(_ => SiloProcess.FreePort()).ToArray();
        await using var azurite = await AzuriteServer.StartAsync(ct);
        await using var cluster = await ProcessCluster.StartAsync(
            azurite.ConnectionString, 2, node => ["--Silo:Dashboard:Enabled=true", $"--Silo:Dashboard:Port={ports[node]}"], ct);
        var acks = new ConcurrentDictionary<string, long>();
        var latencies = new ConcurrentQueue<double>();
        var failures = new ConcurrentQueue<string>();
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        try
        {
            Task AllReady(string what) => cluster.UntilAsync(
                async () => (await Task.WhenAll(ports.Select(p => SiloHttp.GetAsync($"http://localhost:{p}/readyz", ct)))).All(r => r.Code == HttpStatusCode.OK), what, ct);
            await AllReady("every silo ready");

            // 200 appends/s, each on its own (open loop), through the cluster client.
            var load = Task.Run(async () =>
            {
                var pending = new List<Task>();
                var started = Stopwatch.GetTimestamp();
                for (var i = 0; !stop.IsCancellationRequested; i++)
                {
                    var due = started + (long)(i / 200.0 * Stopwatch.Frequency);
                    while (Stopwatch.GetTimestamp() < due && !stop.IsCancellationRequested)
                    {
                        await Task.Delay(1, CancellationToken.None);
                    }

                    var text = $"roll|{i}";
                    pending.Add(Task.Run(async () =>
                    {
                        var t0 = Stopwatch.GetTimestamp();
                        try
                        {
                            acks[text] = await cluster.Client.Log.AppendAsync(Encoding.UTF8.GetBytes(text), cancellationToken: CancellationToken.None);
                            latencies.Enqueue(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
                        }
                        catch (Exception e)
                        {
                            failures.Enqueue($"{text}: {e.GetType().Name}: {e.Message}");
                        }
                    }, CancellationToken.None));
                }

                await Task.WhenAll(pending);
            }, CancellationToken.None);

            await cluster.UntilAsync(() => Task.FromResult(acks.Count >= 400), "400 appends before the roll", ct);
            var roll = Stopwatch.StartNew();
            for (var node = 0; node < ProcessCluster.Nodes.Length; node++)
            {
                var step = Stopwatch.StartNew();
                await cluster.StopGracefullyAsync(node);
                var stopped = step.Elapsed;
                await cluster.RestartAsync(node, ct);
                await AllReady($"every silo ready after {ProcessCluster.Nodes[node]}'s restart");
                log.WriteLine($"{ProcessCluster.Nodes[node]}: stopped (SIGTERM) in {stopped.TotalSeconds:0.0} s, back and every silo ready after {step.Elapsed.TotalSeconds:0.0} s");
            }

            var during = latencies.Count;
            log.WriteLine($"the roll took {roll.Elapsed.TotalSeconds:0.0} s");
            await cluster.UntilAsync(() => Task.FromResult(acks.Count >= during + 200), "200 appends after the roll", ct);
            await stop.CancelAsync();
            await load;

            Assert.True(failures.IsEmpty, $"{failures.Count} appends failed during the roll, e.g. {string.Join(" | ", failures.Take(3))}");
            var sorted = latencies.Order().ToArray();
            double P(double q) => sorted[Math.Min(sorted.Length - 1, (int)(q * sorted.Length))];
            log.WriteLine($"append latency over the run ({sorted.Length} appends): p50 {P(0.5):0.0} ms, p99 {P(0.99):0.0} ms, max {sorted[^1]:0.0} ms");

            // Every acknowledged record at its GSN, and each once.
            var last = acks.Values.Max();
            var records = await cluster.Client.Log.ReadRangeAsync(0, last + 1, ct);
            var texts = records.Select(r => Encoding.UTF8.GetString(r.Payload.Span)).Where(t => t.StartsWith("roll|", StringComparison.Ordinal)).ToList();
            Assert.Equal(texts.Count, texts.Distinct().Count());
            var atGsn = records.ToDictionary(r => r.Gsn, r => Encoding.UTF8.GetString(r.Payload.Span));
            Assert.All(acks, a => Assert.True(atGsn.TryGetValue(a.Value, out var t) && t == a.Key, $"{a.Key} acknowledged at GSN {a.Value} is not there"));
        }
        catch
        {
            await stop.CancelAsync();
            log.WriteLine(string.Join(Environment.NewLine, cluster.Output.TakeLast(300)));
            throw;
        }
    }
}
