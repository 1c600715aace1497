using System.Collections.Concurrent;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Hosting;
using Orleans.TestingHost;
using SpecLog.Client;

namespace SpecLog.Cluster.Tests;

/// <summary>A whole-cluster restart on the same data directory (the process-level kill -9 test is in SpecLog.Silo.Tests).</summary>
public sealed class RestartRecoveryTests
{
    private static async Task<InProcessTestCluster> StartAsync(string dataDirectory)
    {
        var builder = new InProcessTestClusterBuilder(1);
        builder.ConfigureSilo((_, silo) => silo.AddSpecLog(o => o.DataDirectory = dataDirectory));
        builder.ConfigureClient(client => client.AddSpecLogClient());
        var cluster = builder.Build();
        await cluster.DeployAsync();
        return cluster;
    }

    [Fact]
    public async Task AfterRestart_AcknowledgedRecordsStayAtTheirGsns_AndAppendsContinueAfterThem()
    {
        var ct = TestContext.Current.CancellationToken;
        var dir = Path.Combine(Path.GetTempPath(), "speclog-tests", Guid.NewGuid().ToString("N"));
        try
        {
            var acks = new ConcurrentDictionary<long, string>();
            List<(long, string)> sequenceBefore;
            await using (var cluster = await StartAsync(dir))
            {
                var client = cluster.Client.ServiceProvider.GetRequiredService<SpecLogClient>();
                await Task.WhenAll(Enumerable.Range(0, 4).Select(p => Task.Run(async () =>
                {
                    for (var i = 0; i < 150; i++)
                    {
                        var payload = Payload.Make("restart", p, i);
                        acks[await client.AppendAsync(payload, cancellationToken: ct)] = Payload.Text(payload);
                    }
                }, ct)));
                var max = acks.Keys.Max();
                await using var probe = new LogProbe(client.SubscribeAsync(0, ct), ct);
                await probe.WaitUntilAsync(p => p.ConfirmedUpTo > max, TimeSpan.FromSeconds(60), "confirmation of everything acknowledged");
                sequenceBefore = probe.Records.Where(r => r.Gsn < probe.ConfirmedUpTo).Select(r => (r.Gsn, Payload.Text(r.Payload))).ToList();
                await cluster.StopAllSilosAsync(ct);
            }

            await using (var cluster = await StartAsync(dir))
            {
                var client = cluster.Client.ServiceProvider.GetRequiredService<SpecLogClient>();
                var max = acks.Keys.Max();

                // New appends are acknowledged after every earlier position, which also shows the log is committing again.
                var fresh = await client.AppendAsync(Payload.Make("restart-after", 0, 0), cancellationToken: ct);
                Assert.True(fresh > max, $"new append got GSN {fresh}, not after {max}");

                var records = (await client.ReadRangeAsync(0, max + 1, ct)).ToDictionary(r => r.Gsn, r => Payload.Text(r.Payload));
                foreach (var (gsn, text) in acks)
                {
                    Assert.True(records.TryGetValue(gsn, out var read), $"acknowledged GSN {gsn} lost in the restart");
                    Assert.Equal(text, read);
                }

                await using var probe = new LogProbe(client.SubscribeAsync(0, ct), ct);
                var last = sequenceBefore[^1].Item1;
                await probe.WaitUntilAsync(p => p.Records.Count > 0 && p.Records[^1].Gsn >= last, TimeSpan.FromSeconds(60), $"replay up to GSN {last}");
                Assert.Equal(sequenceBefore, probe.Records.TakeWhile(r => r.Gsn <= last).Select(r => (r.Gsn, Payload.Text(r.Payload))));
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
}
