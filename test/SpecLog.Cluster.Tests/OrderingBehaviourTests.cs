using System.Collections.Concurrent;
using SpecLog.FixAnte;
using SpecLog.Server;

namespace SpecLog.Cluster.Tests;

/// <summary>A cluster of its own, so that quotas and lag-fix counters are not disturbed by other tests.</summary>
public sealed class IsolatedClusterFixture : ClusterFixture;

public sealed class OrderingBehaviourTests(IsolatedClusterFixture fixture) : IClassFixture<IsolatedClusterFixture>
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task Burst_OnOneShard_TriggersLagFix_AndEveryoneKeepsCommitting()
    {
        var ct = TestContext.Current.CancellationToken;
        var sequencer = fixture.Grains.GetGrain<ISequencerGrain>(0);
        var before = await sequencer.GetStatusAsync();
        var lagFixesBefore = await Task.WhenAll(Enumerable.Range(0, 4).Select(s => fixture.Grains.GetGrain<IShardGrain>(s).GetStatusAsync()));

        // A burst of 3,000 records on shard 0 runs it far ahead of the others (quota 1 per cut at this idle rate).
        var burst = Enumerable.Range(0, 3000).Select(i => (ReadOnlyMemory<byte>)Payload.Make("burst", 0, i)).ToList();
        var burstTask = fixture.Client.AppendBatchAsync(burst, 0, ct);

        // Meanwhile shard 1 keeps appending and its appends keep being acknowledged.
        var others = new List<long>();
        for (var i = 0; i < 20; i++)
        {
            others.Add(await fixture.Client.AppendAsync(Payload.Make("steady", 1, i), 1, ct));
        }

        var burstGsns = await burstTask;
        Assert.Equal(burst.Count, burstGsns.Length);
        Assert.Equal(burstGsns.Order(), burstGsns);
        Assert.Equal(others.Order(), others);

        var after = await sequencer.GetStatusAsync();
        Assert.True(after.LagFixesIssued > before.LagFixesIssued, "the burst caused no lag-fix");
        Assert.True(after.LagFixesAcknowledged > before.LagFixesAcknowledged, "no shard answered a lag-fix with FixedLag");
        var shardsAfter = await Task.WhenAll(Enumerable.Range(0, 4).Select(s => fixture.Grains.GetGrain<IShardGrain>(s).GetStatusAsync()));
        Assert.Contains(Enumerable.Range(1, 3), s => shardsAfter[s].LagFixes > lagFixesBefore[s].LagFixes);

        // Everything acknowledged reads back where it was acknowledged.
        var records = await fixture.Client.ReadRangeAsync(burstGsns[0], burstGsns[^1] + 1, ct);
        var burstRead = records.Where(r => r.Shard == 0).ToList();
        Assert.Equal(burstGsns, burstRead.Select(r => r.Gsn));
    }

    [Fact]
    public async Task IdleLog_GoesQuiet_AndTheNextAppendWakesIt()
    {
        var ct = TestContext.Current.CancellationToken;
        var sequencer = fixture.Grains.GetGrain<ISequencerGrain>(0);
        var first = await fixture.Client.AppendAsync(Payload.Make("quiet", 0, 0), 1, ct);

        // Absence of activity can only be observed over time: look for a 300 ms span without a single report.
        var quiet = false;
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        var before = await sequencer.GetStatusAsync();
        while (!quiet && DateTime.UtcNow < deadline)
        {
            await Task.Delay(300, ct);
            var after = await sequencer.GetStatusAsync();
            quiet = after.ReportsApplied == before.ReportsApplied && after.CommittedCut == before.CommittedCut;
            before = after;
        }

        Assert.True(quiet, "an idle log kept reporting and committing");
        var shards = await Task.WhenAll(Enumerable.Range(0, 4).Select(s => fixture.Grains.GetGrain<IShardGrain>(s).GetStatusAsync()));
        Assert.All(shards, s => Assert.Equal(0, s.PendingAppends));

        var next = await fixture.Client.AppendAsync(Payload.Make("quiet", 0, 1), 3, ct);
        Assert.True(next > first);
        Assert.Equal("T|quiet|0|1", Payload.Text((await fixture.Client.ReadAsync(next, ct))!.Payload));
    }

    [Fact]
    public async Task RateChange_ChangesQuotasOnlyInWindowsDecidedAfterIt()
    {
        var ct = TestContext.Current.CancellationToken;
        var sequencer = fixture.Grains.GetGrain<ISequencerGrain>(0);
        var decidedBefore = (await sequencer.GetWindowsAsync(0)).Windows;

        // Steady load on shard 3 only: 16 appenders in a closed loop until a window gives shard 3 a larger quota.
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        stop.CancelAfter(Deadline);
        var acks = new ConcurrentBag<long>();
        WindowConfig? changed = null;
        var load = Enumerable.Range(0, 16).Select(p => Task.Run(async () =>
        {
            for (var i = 0; !stop.IsCancellationRequested; i++)
            {
                try
                {
                    acks.Add(await fixture.Client.AppendAsync(Payload.Make("rate", p, i), 3, stop.Token));
                }
                catch (OperationCanceledException) when (stop.IsCancellationRequested)
                {
                    return;
                }
            }
        }, ct)).ToList();

        while (changed is null && !stop.IsCancellationRequested)
        {
            var windows = (await sequencer.GetWindowsAsync(decidedBefore.Length)).Windows;
            changed = windows.FirstOrDefault(w => w.QuotaOf(3) > decidedBefore[^1].QuotaOf(3));
            if (changed is null)
            {
                await Task.WhenAny(load.Append(Task.Delay(50, ct)));
            }
        }

        await stop.CancelAsync();
        await Task.WhenAll(load);
        Assert.NotNull(changed);

        // Windows decided before the rate changed are exactly as they were: a lease window never changes.
        var decidedAfter = (await sequencer.GetWindowsAsync(0)).Windows;
        for (var w = 0; w < decidedBefore.Length; w++)
        {
            Assert.Equal(decidedBefore[w].Quotas, decidedAfter[w].Quotas);
            Assert.Equal(decidedBefore[w].StartGsn, decidedAfter[w].StartGsn);
        }

        Assert.True(changed.Window >= decidedBefore.Length, $"window {changed.Window} changed but was decided before the load");
        Assert.True(acks.Count > 0);
    }
}

/// <summary>The log in Scalog baseline mode: positions only after ordering, no no-ops.</summary>
public sealed class ScalogClusterFixture : ClusterFixture
{
    protected override void Configure(SpecLogOptions options) => options.Ordering.Mode = OrderingMode.Scalog;
}

public sealed class ScalogModeTests(ScalogClusterFixture fixture) : IClassFixture<ScalogClusterFixture>
{
    [Fact]
    public async Task ScalogMode_AcknowledgesAndDeliversInOrder_WithoutNoOps()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var probe = new LogProbe(fixture.Client.SubscribeAsync(0, ct), ct);
        var acks = new ConcurrentDictionary<long, string>();
        await Task.WhenAll(Enumerable.Range(0, 4).Select(p => Task.Run(async () =>
        {
            for (var i = 0; i < 100; i++)
            {
                var payload = Payload.Make("scalog", p, i);
                Assert.True(acks.TryAdd(await fixture.Client.AppendAsync(payload, p, ct), Payload.Text(payload)));
            }
        }, ct)));

        var max = acks.Keys.Max();
        await probe.WaitUntilAsync(p => p.ConfirmedUpTo > max, TimeSpan.FromSeconds(60), $"confirmation past {max}");
        var seen = probe.Records.ToDictionary(r => r.Gsn, r => Payload.Text(r.Payload));
        Assert.Equal(acks.OrderBy(a => a.Key), seen.Where(s => s.Key <= max).OrderBy(s => s.Key));

        // Scalog has no fillers: positions are dense.
        Assert.Equal(Enumerable.Range(0, (int)max + 1).Select(i => (long)i), seen.Keys.Where(k => k <= max).Order());
        foreach (var s in Enumerable.Range(0, 4))
        {
            Assert.Equal(0, (await fixture.Grains.GetGrain<IShardGrain>(s).GetStatusAsync()).NoOpSlots);
        }
    }
}
