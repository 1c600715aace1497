using System.Text;
using SpecLog.Client;
using SpecLog.Server;

namespace SpecLog.Cluster.Tests;

/// <summary>The embedded default on one silo with 1 MiB segments, so a few thousand records fill several.</summary>
public sealed class TrimmableFixture : ClusterFixture
{
    protected override void Configure(SpecLogOptions options)
    {
        options.ShardCount = 2;
        options.SegmentSize = 1 << 20;
        options.MaxRecordSize = 64 << 10;
    }
}

/// <summary>As <see cref="TrimmableFixture"/> with the single (unreplicated) sequencer, whose window log keeps a base file.</summary>
public sealed class TrimmableSingleSequencerFixture : ClusterFixture
{
    protected override void Configure(SpecLogOptions options)
    {
        options.ShardCount = 2;
        options.SegmentSize = 1 << 20;
        options.MaxRecordSize = 64 << 10;
        options.Replication.Mode = SequencerReplication.Single;
    }
}

/// <summary>Three silos, three replicas per shard, 1 MiB segments.</summary>
public sealed class TrimmableReplicatedFixture : ClusterFixture
{
    protected override int Silos => 3;

    protected override void Configure(SpecLogOptions options)
    {
        options.ShardCount = 2;
        options.ShardReplicas = 3;
        options.SegmentSize = 1 << 20;
        options.MaxRecordSize = 64 << 10;
    }
}

/// <summary>
/// <c>TrimAsync</c>: records below the trim point are gone (whole segments deleted), reads and subscriptions below it
/// fail with <see cref="LogTrimmedException"/> naming the first retained GSN, everything above it stays where it was
/// through restarts, and appends go on.
/// </summary>
public sealed class TrimTests(TrimmableFixture fixture) : TrimTestBase(fixture), IClassFixture<TrimmableFixture>;

/// <summary>The same with the single sequencer: its window history's base survives its restart through a file.</summary>
public sealed class SingleSequencerTrimTests(TrimmableSingleSequencerFixture fixture) : TrimTestBase(fixture), IClassFixture<TrimmableSingleSequencerFixture>;

/// <summary>The trim scenario, on whichever fixture the subclass brings.</summary>
public abstract class TrimTestBase(ClusterFixture fixture)
{
    internal static async Task<List<(long Gsn, string Text)>> FillAsync(SpecLogClient client, string test, int batches, CancellationToken ct)
    {
        var acks = new List<(long, string)>();
        var filler = new string('x', 900);
        for (var b = 0; b < batches; b++)
        {
            var payloads = Enumerable.Range(0, 100).Select(i => (ReadOnlyMemory<byte>)Encoding.UTF8.GetBytes($"{Payload.Tag}{test}|{b}|{i}|{filler}")).ToArray();
            var gsns = await client.AppendBatchAsync(payloads, shard: b % 2, cancellationToken: ct);
            acks.AddRange(gsns.Select((g, i) => (g, Payload.Text(payloads[i]))));
        }

        return acks;
    }

    [Fact]
    public async Task Trimming_deletes_old_segments_refuses_reads_below_and_keeps_everything_above_through_a_restart()
    {
        var ct = TestContext.Current.CancellationToken;
        var client = fixture.Client;
        // Identified appends of one producer, before and after the records to be trimmed (exactly-once across a trim).
        var producer = Guid.NewGuid();
        var shard0 = fixture.Grains.GetGrain<IShardGrain>(0);
        var early = await shard0.AppendIdentifiedAsync(producer, [1, 2], [Payload.Make("early", 0, 1), Payload.Make("early", 0, 2)], ct);
        var acks = await FillAsync(client, GetType().Name, 80, ct); // 8,000 records of ~1 KB: several segments per shard
        var late = await shard0.AppendIdentifiedAsync(producer, [3], [Payload.Make("late", 0, 3)], ct);
        var before = await Task.WhenAll(Enumerable.Range(0, 2).Select(s => fixture.Grains.GetGrain<IShardGrain>(s).GetStatusAsync()));
        Assert.All(before, s => Assert.True(s.LogSegments >= 3, $"shard {s.Shard} has {s.LogSegments} segments"));

        var point = acks[acks.Count * 3 / 4].Gsn;
        var trimmed = await client.TrimAsync(point, ct);
        Assert.Equal([0, 1], trimmed);
        var after = await Task.WhenAll(Enumerable.Range(0, 2).Select(s => fixture.Grains.GetGrain<IShardGrain>(s).GetStatusAsync()));
        foreach (var (b, a) in before.Zip(after))
        {
            Assert.True(a.LogSegments < b.LogSegments && a.LogFirstEntry > 0, $"shard {a.Shard}: {b.LogSegments} segments before, {a.LogSegments} after, log from entry {a.LogFirstEntry}");
            Assert.Equal(point, a.TrimmedBelowGsn);
        }

        // The ordering layer dropped the windows wholly below the trim point: its history starts at a base at or below
        // it, and a new client (which fetches the history from window 0) gets the base with the windows.
        var sequencer = fixture.Grains.GetGrain<ISequencerGrain>(0);
        Assert.Equal(point, (await sequencer.GetStatusAsync()).TrimmedBelowGsn);
        var slice = await sequencer.GetWindowsAsync(0);
        Assert.True(slice.Base is { Window: > 0 } start && start.StartGsn <= point, $"the history starts at {slice.Base} after a trim below GSN {point}");
        Assert.Equal(slice.Base!.Window, slice.Windows[0].Window);
        var fresh = new SpecLogClient(fixture.Grains);
        await AssertRetainedAsync(fresh, acks, point, ct);
        Assert.Equal(point, (await Assert.ThrowsAsync<LogTrimmedException>(() => fresh.ReadAsync(slice.Base.StartGsn - 1, ct))).FirstRetainedGsn);

        // Below the trim point: a clear error naming the first retained GSN; at and above it, everything where it was.
        var below = acks.Where(x => x.Gsn < point).Select(x => x.Gsn).Max();
        var refused = await Assert.ThrowsAsync<LogTrimmedException>(() => client.ReadAsync(below, ct));
        Assert.Equal(point, refused.FirstRetainedGsn);
        Assert.Contains($"GSN {point}", refused.Message, StringComparison.Ordinal);
        await Assert.ThrowsAsync<LogTrimmedException>(() => client.ReadRangeAsync(0, point + 10, ct));
        await AssertRetainedAsync(client, acks, point, ct);

        // A subscription from below the trim point fails; one from the trim point gets the retained records.
        await Assert.ThrowsAsync<LogTrimmedException>(async () =>
        {
            await foreach (var _ in client.SubscribeAsync(0, ct))
            {
            }
        });
        await using (var probe = new LogProbe(client.SubscribeAsync(point, ct), ct))
        {
            var last = acks[^1].Gsn;
            await probe.WaitUntilAsync(p => p.ConfirmedUpTo > last, TimeSpan.FromSeconds(60), $"the subscription from {point} to pass {last}");
            var seen = probe.Records.ToDictionary(r => r.Gsn, r => Payload.Text(r.Payload));
            Assert.All(acks.Where(x => x.Gsn >= point), x => Assert.Equal(x.Text, seen[x.Gsn]));
            Assert.DoesNotContain(seen.Keys, g => g < point);
        }

        // Repeating, or trimming lower, changes nothing; beyond the committed log is refused.
        await client.TrimAsync(point / 2, ct);
        Assert.All(await Task.WhenAll(Enumerable.Range(0, 2).Select(s => fixture.Grains.GetGrain<IShardGrain>(s).GetStatusAsync())), s => Assert.Equal(point, s.TrimmedBelowGsn));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => client.TrimAsync(long.MaxValue / 2, ct));

        // The shards restart from their trimmed logs: the slot numbering comes back from the trim point's anchor. The
        // sequencer restarts from its history's base (the window log's segments below it are gone).
        await fixture.Cluster.DeactivateAsync(sequencer);
        for (var s = 0; s < 2; s++)
        {
            await fixture.Cluster.DeactivateAsync(fixture.Grains.GetGrain<IShardGrain>(s));
        }

        Assert.Equal(slice.Base.Window, (await sequencer.GetWindowsAsync(0)).Base?.Window);
        Assert.Equal(point, (await sequencer.GetStatusAsync()).TrimmedBelowGsn);

        // A restarted sequencer commits again as the shards report: a subscription from the trim point sees the
        // confirmations reach the last acknowledged record, and everything retained is where it was.
        await using (var probe = new LogProbe(client.SubscribeAsync(point, ct), ct))
        {
            await probe.WaitUntilAsync(p => p.ConfirmedUpTo > acks[^1].Gsn, TimeSpan.FromSeconds(60), $"confirmation past {acks[^1].Gsn} after the restarts");
        }

        await AssertRetainedAsync(client, acks, point, ct);
        await Assert.ThrowsAsync<LogTrimmedException>(() => client.ReadAsync(below, ct));
        var more = await FillAsync(client, GetType().Name + "-after", 4, ct);
        Assert.All(more, x => Assert.True(x.Gsn > acks[^1].Gsn));
        await AssertRetainedAsync(client, [.. acks, .. more], point, ct);

        // Exactly-once across the trim and the restart: a retry of a retained identified append gets its GSN; a retry
        // of a trimmed one (the restarted shard holds nothing of it) is refused clearly instead of written again.
        Assert.True(early.Max() < point && late[0] >= point, $"the early appends (GSNs {string.Join(", ", early)}) must be trimmed and the late one ({late[0]}) kept by the trim below {point}");
        Assert.Equal(late, await shard0.AppendIdentifiedAsync(producer, [3], [Payload.Make("late", 0, 3)], ct));
        var held = (await shard0.GetStatusAsync()).DurableRecords;
        var retried = await Assert.ThrowsAsync<InvalidOperationException>(() => shard0.AppendIdentifiedAsync(producer, [2], [Payload.Make("early", 0, 2)], ct));
        Assert.Contains("trim point", retried.Message, StringComparison.Ordinal);
        Assert.Equal(held, (await shard0.GetStatusAsync()).DurableRecords);
    }

    internal static async Task AssertRetainedAsync(SpecLogClient client, List<(long Gsn, string Text)> acks, long point, CancellationToken ct)
    {
        var retained = acks.Where(x => x.Gsn >= point).ToList();
        var log = await client.ReadRangeAsync(point, retained.Max(x => x.Gsn) + 1, ct);
        var byGsn = log.ToDictionary(r => r.Gsn, r => Payload.Text(r.Payload));
        Assert.All(retained, x => Assert.True(byGsn.TryGetValue(x.Gsn, out var t) && t == x.Text, $"GSN {x.Gsn} lost or changed after the trim"));
    }
}

/// <summary>Trimming a replicated shard: followers trim too, and a follower that takes over recovers from the trim point.</summary>
public sealed class ReplicatedTrimTests(TrimmableReplicatedFixture fixture) : IClassFixture<TrimmableReplicatedFixture>
{
    [Fact]
    public async Task Every_replica_trims_and_a_new_leader_serves_the_retained_log()
    {
        var ct = TestContext.Current.CancellationToken;
        var client = fixture.Client;
        var producer = Guid.NewGuid();
        long[] early;
        while (true)
        {
            // Right after the cluster starts, the replica that leads may still give way to one of a later epoch: ask the leader again then.
            var first = (await ShardReplicationTests.WaitForReplicasAsync(fixture, 0, all => all.Any(r => r.Role == "Leader"), "a leader of shard 0")).Single(r => r.Role == "Leader");
            try
            {
                early = await fixture.Grains.GetGrain<IShardGrain>(ShardKeys.Of(0, first.Replica)).AppendIdentifiedAsync(producer, [1], [Payload.Make("early", 0, 1)], ct);
                break;
            }
            catch (ShardNotLeaderException)
            {
            }
        }

        var acks = await TrimTestBase.FillAsync(client, nameof(ReplicatedTrimTests), 60, ct);
        var point = acks[acks.Count * 2 / 3].Gsn;
        await client.TrimAsync(point, ct);

        // Followers learn the trim point from their leader's heartbeats.
        var statuses = await ShardReplicationTests.WaitForReplicasAsync(
            fixture, 0, all => all.All(r => r.TrimmedBelowGsn == point && r.LogFirstEntry > 0), "every replica of shard 0 to trim");
        var leader = statuses.Single(r => r.Role == "Leader");

        // The leader's silo dies: a follower leads, recovering its slots from the trim point.
        var victim = fixture.Cluster.Silos.Single(s => s.SiloAddress.ToString() == leader.Silo);
        await fixture.Cluster.KillSiloAsync(victim, ct);
        await ShardReplicationTests.WaitForReplicasAsync(fixture, 0, all => all.Any(x => x.Role == "Leader" && x.Epoch > leader.Epoch), "a new leader of shard 0", skipUnreachable: true);
        await TrimTestBase.AssertRetainedAsync(client, acks, point, ct);
        var below = acks.Where(x => x.Gsn < point && x.Gsn >= 0).Select(x => x.Gsn).Max();
        var refused = await Assert.ThrowsAsync<LogTrimmedException>(() => client.ReadAsync(below, ct));
        Assert.Equal(point, refused.FirstRetainedGsn);
        var next = await client.AppendAsync(Payload.Make(nameof(ReplicatedTrimTests), 9, 9), shard: 0, cancellationToken: ct);
        Assert.True(next > acks[^1].Gsn);

        // The new leader learnt the trim point's dedup floor from the old one: a retry of the trimmed identified append
        // is refused, not written again.
        Assert.True(early[0] < point, $"the early append (GSN {early[0]}) must lie below the trim point {point}");
        var now = (await ShardReplicationTests.WaitForReplicasAsync(fixture, 0, all => all.Any(x => x.Role == "Leader" && x.Epoch > leader.Epoch), "the new leader", skipUnreachable: true))
            .Single(x => x.Role == "Leader" && x.Epoch > leader.Epoch);
        var retried = await Assert.ThrowsAsync<InvalidOperationException>(
            () => fixture.Grains.GetGrain<IShardGrain>(ShardKeys.Of(0, now.Replica)).AppendIdentifiedAsync(producer, [1], [Payload.Make("early", 0, 1)], ct));
        Assert.Contains("trim point", retried.Message, StringComparison.Ordinal);
    }
}
