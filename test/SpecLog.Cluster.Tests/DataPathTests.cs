using System.Collections.Concurrent;
using SpecLog.Client;
using SpecLog.FixAnte;

namespace SpecLog.Cluster.Tests;

/// <summary>On the shared one-silo cluster (the sequencer replicated with Copilot, the default).</summary>
[Collection(SharedClusterCollection.Name)]
public sealed class DataPathTests(ClusterFixture fixture) : DataPathTestsBase(fixture);

/// <summary>The same tests with the unreplicated single sequencer.</summary>
public sealed class SingleSequencerDataPathTests(SingleSequencerClusterFixture fixture)
    : DataPathTestsBase(fixture), IClassFixture<SingleSequencerClusterFixture>;

/// <summary>The same tests on three silos, the replicas on distinct silos.</summary>
public sealed class ThreeSiloDataPathTests(PlainThreeSiloClusterFixture fixture)
    : DataPathTestsBase(fixture), IClassFixture<PlainThreeSiloClusterFixture>;

/// <summary>Three silos without the slow-replica filter (its switch is process-wide, so only the slow-pilot tests' cluster has it).</summary>
public sealed class PlainThreeSiloClusterFixture : ClusterFixture
{
    protected override int Silos => 3;
}

public sealed class SingleSequencerClusterFixture : ClusterFixture
{
    protected override void Configure(SpecLog.Server.SpecLogOptions options) => options.Replication.Mode = SpecLog.Server.SequencerReplication.Single;
}

/// <summary>The same tests with Belfast's blocked cuts and the cut clock (single sequencer, to keep it quick).</summary>
public sealed class BlockedCutClockDataPathTests(BlockedCutClockClusterFixture fixture)
    : DataPathTestsBase(fixture), IClassFixture<BlockedCutClockClusterFixture>;

public sealed class BlockedCutClockClusterFixture : ClusterFixture
{
    protected override void Configure(SpecLog.Server.SpecLogOptions options)
    {
        options.Replication.Mode = SpecLog.Server.SequencerReplication.Single;
        options.Ordering.CutLayout = CutLayout.Blocked;
        options.Ordering.NoOpFill = NoOpFillPolicy.CutClock;
    }
}

/// <summary>
/// The same tests with every log of the silo (four shards, three Copilot replicas) made durable through one shared group
/// commit (<c>SpecLogOptions.SharedGroupCommit</c>).
/// </summary>
public sealed class SharedGroupCommitDataPathTests(SharedGroupCommitClusterFixture fixture)
    : DataPathTestsBase(fixture), IClassFixture<SharedGroupCommitClusterFixture>;

public sealed class SharedGroupCommitClusterFixture : ClusterFixture
{
    protected override void Configure(SpecLog.Server.SpecLogOptions options)
    {
        options.Replication.Mode = SpecLog.Server.SequencerReplication.Copilot;
        options.SharedGroupCommit = true;
    }
}

/// <summary>The data-path tests of issue 2, run unchanged against each ordering layer.</summary>
public abstract class DataPathTestsBase(ClusterFixture fixture)
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task ConcurrentAppenders_TwoSubscribers_SeeSameOrder_EveryAckOnceAtItsGsn()
    {
        var ct = TestContext.Current.CancellationToken;
        var client = fixture.Client;
        await using var first = new LogProbe(client.SubscribeAsync(0, ct), ct);
        await using var second = new LogProbe(client.SubscribeAsync(0, ct), ct);

        const int producers = 8, perProducer = 250;
        var acks = new ConcurrentDictionary<long, string>();
        await Task.WhenAll(Enumerable.Range(0, producers).Select(p => Task.Run(async () =>
        {
            for (var i = 0; i < perProducer; i++)
            {
                var payload = Payload.Make(nameof(ConcurrentAppenders_TwoSubscribers_SeeSameOrder_EveryAckOnceAtItsGsn), p, i);
                var gsn = await client.AppendAsync(payload, cancellationToken: ct);
                Assert.True(acks.TryAdd(gsn, Payload.Text(payload)), $"GSN {gsn} acknowledged twice");
            }
        }, ct)));

        Assert.Equal(producers * perProducer, acks.Count);
        var maxGsn = acks.Keys.Max();
        foreach (var probe in new[] { first, second })
        {
            await probe.WaitUntilAsync(pr => pr.ConfirmedUpTo > maxGsn, Deadline, $"confirmation past GSN {maxGsn}");
        }

        var a = first.Records.TakeWhile(r => r.Gsn <= maxGsn).ToList();
        var b = second.Records.TakeWhile(r => r.Gsn <= maxGsn).ToList();
        Assert.Equal(a.Select(r => (r.Gsn, Payload.Text(r.Payload))), b.Select(r => (r.Gsn, Payload.Text(r.Payload))));

        // GSN order, no duplicates, no no-ops, only records somebody appended.
        for (var i = 1; i < a.Count; i++)
        {
            Assert.True(a[i].Gsn > a[i - 1].Gsn, $"GSN {a[i].Gsn} delivered after {a[i - 1].Gsn}");
        }

        Assert.All(a, r => Assert.StartsWith(Payload.Tag, Payload.Text(r.Payload)));

        // Every acknowledged record delivered exactly once, speculatively, at the GSN it was acknowledged with.
        var delivered = a.ToDictionary(r => r.Gsn, r => Payload.Text(r.Payload));
        foreach (var (gsn, text) in acks)
        {
            Assert.True(delivered.TryGetValue(gsn, out var seen), $"acknowledged GSN {gsn} never delivered");
            Assert.Equal(text, seen);
        }

        Assert.Equal(acks.Count, a.Count(r => Payload.Text(r.Payload).Contains(nameof(ConcurrentAppenders_TwoSubscribers_SeeSameOrder_EveryAckOnceAtItsGsn), StringComparison.Ordinal)));

        // Confirmations are contiguous ranges from where the subscription started.
        var confirmations = first.Confirmations;
        for (var i = 1; i < confirmations.Count; i++)
        {
            Assert.Equal(confirmations[i - 1].ToGsn, confirmations[i].FromGsn);
        }
    }

    [Fact]
    public async Task UnorderedSubscription_DeliversEveryRecordOnceAtItsAckedGsn_AndContiguousConfirmations()
    {
        var ct = TestContext.Current.CancellationToken;
        var client = fixture.Client;
        var start = (await fixture.Grains.GetGrain<ISequencerGrain>(0).GetStatusAsync()).CommittedGsn;
        await using var probe = new LogProbe(client.SubscribeUnorderedAsync(start, ct), ct);
        var acks = new ConcurrentDictionary<long, string>();
        await Task.WhenAll(Enumerable.Range(0, 4).Select(p => Task.Run(async () =>
        {
            for (var i = 0; i < 100; i++)
            {
                var payload = Payload.Make(nameof(UnorderedSubscription_DeliversEveryRecordOnceAtItsAckedGsn_AndContiguousConfirmations), p, i);
                Assert.True(acks.TryAdd(await client.AppendAsync(payload, cancellationToken: ct), Payload.Text(payload)));
            }
        }, ct)));

        var maxGsn = acks.Keys.Max();
        await probe.WaitUntilAsync(pr => pr.ConfirmedUpTo > maxGsn && acks.Keys.All(g => pr.Records.Any(r => r.Gsn == g)), Deadline, $"every record and confirmation past GSN {maxGsn}");
        var records = probe.Records;
        Assert.Equal(records.Count, records.Select(r => r.Gsn).Distinct().Count()); // each record once
        Assert.All(records, r => Assert.True(r.Gsn >= start, $"GSN {r.Gsn} before the subscription's start {start}"));
        foreach (var (gsn, text) in acks)
        {
            Assert.Equal(text, Payload.Text(records.Single(r => r.Gsn == gsn).Payload));
        }

        // Per shard, records arrive in GSN order; confirmations tile the log from the start.
        foreach (var shard in records.GroupBy(r => r.Shard))
        {
            var gsns = shard.Select(r => r.Gsn).ToList();
            Assert.Equal(gsns.Order(), gsns);
        }

        var confirmations = probe.Confirmations;
        Assert.Equal(start, confirmations[0].FromGsn);
        for (var i = 1; i < confirmations.Count; i++)
        {
            Assert.Equal(confirmations[i - 1].ToGsn, confirmations[i].FromGsn);
        }
    }

    [Fact]
    public async Task StageLatencies_AreRecordedOnTheSpecLogMeter_ForEveryStageOfAnAppendAndADelivery()
    {
        var ct = TestContext.Current.CancellationToken;
        var seen = new ConcurrentDictionary<string, int>();
        using var listener = new System.Diagnostics.Metrics.MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == SpecLogMetrics.MeterName && instrument.Name == SpecLogMetrics.StageInstrument)
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<double>((_, value, tags, _) =>
        {
            Assert.True(value >= 0, "a stage latency is never negative");
            foreach (var tag in tags)
            {
                if (tag.Key == "stage" && tag.Value is string stage)
                {
                    seen.AddOrUpdate(stage, 1, (_, n) => n + 1);
                }
            }
        });
        listener.Start();

        await using var probe = new LogProbe(fixture.Client.SubscribeAsync((await fixture.Grains.GetGrain<ISequencerGrain>(0).GetStatusAsync()).CommittedGsn, ct), ct);
        var last = 0L;
        for (var i = 0; i < 40; i++)
        {
            last = await fixture.Client.AppendAsync(Payload.Make(nameof(StageLatencies_AreRecordedOnTheSpecLogMeter_ForEveryStageOfAnAppendAndADelivery), 0, i), cancellationToken: ct);
        }

        await probe.WaitUntilAsync(p => p.ConfirmedUpTo > last, Deadline, $"confirmation past GSN {last}");
        string[] expected =
        [
            SpecLogMetrics.Stages.ClientQueue, SpecLogMetrics.Stages.ClientAppend, SpecLogMetrics.Stages.Durable, SpecLogMetrics.Stages.ReportWait,
            SpecLogMetrics.Stages.ReportTransit, SpecLogMetrics.Stages.Ordering, SpecLogMetrics.Stages.Commit, SpecLogMetrics.Stages.NoticeTransit,
            SpecLogMetrics.Stages.ShardAppend, SpecLogMetrics.Stages.DeliverWait, SpecLogMetrics.Stages.PushTransit, SpecLogMetrics.Stages.OrderWait,
            SpecLogMetrics.Stages.ConfirmWait,
        ];
        Assert.All(expected, stage => Assert.True(seen.ContainsKey(stage), $"no {stage} measurement (seen: {string.Join(", ", seen.Keys)})"));
        Assert.True(seen[SpecLogMetrics.Stages.ClientAppend] >= 40, "one client.append per acknowledged append");
    }

    [Fact]
    public async Task BatchAppend_GetsConsecutiveShardSlots_AndReadsBackInOrder()
    {
        var ct = TestContext.Current.CancellationToken;
        var payloads = Enumerable.Range(0, 50).Select(i => (ReadOnlyMemory<byte>)Payload.Make(nameof(BatchAppend_GetsConsecutiveShardSlots_AndReadsBackInOrder), 0, i)).ToList();
        var gsns = await fixture.Client.AppendBatchAsync(payloads, 1, ct);
        Assert.Equal(payloads.Count, gsns.Length);
        for (var i = 1; i < gsns.Length; i++)
        {
            Assert.True(gsns[i] > gsns[i - 1]);
        }

        var records = await fixture.Client.ReadRangeAsync(gsns[0], gsns[^1] + 1, ct);
        var ours = records.Where(r => r.Shard == 1).ToList();
        Assert.Equal(gsns, ours.Select(r => r.Gsn));
        Assert.Equal(payloads.Select(p => Payload.Text(p)), ours.Select(r => Payload.Text(r.Payload)));
    }

    [Fact]
    public async Task ShardSubscription_DeliversThatShardsRecordsWithTheirGsns()
    {
        var ct = TestContext.Current.CancellationToken;
        var status = await fixture.Grains.GetGrain<IShardGrain>(3).GetStatusAsync();
        await using var probe = new LogProbe(fixture.Client.SubscribeShardAsync(3, status.DurableSlots, ct), ct);
        var acks = new List<long>();
        for (var i = 0; i < 20; i++)
        {
            acks.Add(await fixture.Client.AppendAsync(Payload.Make(nameof(ShardSubscription_DeliversThatShardsRecordsWithTheirGsns), 0, i), 3, ct));
        }

        await probe.WaitUntilAsync(p => p.Records.Count(r => acks.Contains(r.Gsn)) == acks.Count, Deadline, "all 20 shard-3 records");
        Assert.All(probe.Records, r => Assert.Equal(3, r.Shard));
        Assert.Equal(acks, probe.Records.Where(r => acks.Contains(r.Gsn)).Select(r => r.Gsn));
    }

    [Fact]
    public async Task NoOps_FillIdleShards_AndStayInvisible()
    {
        var ct = TestContext.Current.CancellationToken;
        var before = await fixture.Grains.GetGrain<IShardGrain>(0).GetStatusAsync();
        // Only shard 2 receives records; the others must fill their quotas with no-ops for cuts to commit.
        for (var i = 0; i < 30; i++)
        {
            await fixture.Client.AppendAsync(Payload.Make(nameof(NoOps_FillIdleShards_AndStayInvisible), 0, i), 2, ct);
        }

        var after = await fixture.Grains.GetGrain<IShardGrain>(0).GetStatusAsync();
        Assert.True(after.NoOpSlots > before.NoOpSlots, "an idle shard filled no no-op slots");
        var sequencer = await fixture.Grains.GetGrain<ISequencerGrain>(0).GetStatusAsync();
        var records = await fixture.Client.ReadRangeAsync(0, sequencer.CommittedGsn, ct);
        Assert.All(records, r => Assert.StartsWith(Payload.Tag, Payload.Text(r.Payload)));
        Assert.True(records.Count < sequencer.CommittedGsn, "no-op positions must exist and be left out of reads");
    }
}
