using Microsoft.Extensions.DependencyInjection;
using SpecLog.Server;

namespace SpecLog.Cluster.Tests;

/// <summary>One silo, Copilot ordering (n = 3) checkpointing every 64 KiB; ordering replicas' storage can be taken away.</summary>
public sealed class RebuildableOrderingFixture : ClusterFixture
{
    protected override void Configure(SpecLogOptions options)
    {
        options.ShardCount = 2;
        options.SegmentSize = 1 << 20;
        options.MaxRecordSize = 64 << 10;
        options.Replication.CheckpointMinBytes = 64 << 10;
    }

    protected override void ConfigureSilo(Orleans.Hosting.ISiloBuilder silo) =>
        silo.Services.AddSingleton<SpecLog.Server.Hosting.SiloLogs, BlockableSiloLogs>();
}

/// <summary>
/// An ordering replica whose disk is lost probes its peers, learns the ordering layer is not new, rebuilds from a
/// donor's committed state (the entries it would need are compacted everywhere) and counts again: once it has, the
/// log goes on with another replica gone. The replica is away long enough first for its peers' uncompacted state to
/// outgrow one log entry (1 MiB): their checkpoints and the transfer are written and pulled in parts.
/// </summary>
public sealed class OrderingRebuildTests(RebuildableOrderingFixture fixture) : IClassFixture<RebuildableOrderingFixture>
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);

    /// <summary>More than one ordering-log entry holds (1 MiB and its frame).</summary>
    private const long LargeCheckpoint = (1 << 20) + 4096;

    [Fact]
    public async Task An_ordering_replica_that_lost_its_disk_rebuilds_from_its_peers_and_counts_again()
    {
        var ct = TestContext.Current.CancellationToken;
        var client = fixture.Client;
        var output = TestContext.Current.TestOutputHelper;
        var replicas = Enumerable.Range(0, 3).Select(k => fixture.Grains.GetGrain<ISequencerReplicaGrain>(k)).ToArray();
        var acks = new List<(long Gsn, string Text)>();
        var round = 0;
        async Task FillAsync(int batches) => acks.AddRange(await TrimTestBase.FillAsync(client, $"{nameof(OrderingRebuildTests)}-{round++}", batches, ct));

        // Load until every replica compacted entries (so a blank replica cannot catch up from entry 0).
        await PollAsync(async () =>
        {
            await FillAsync(5);
            var s = await Task.WhenAll(replicas.Select(r => r.GetStatusAsync()));
            return s.All(x => x.Base0 > 0 && x.Base1 > 0);
        }, "every replica to compact");
        var before = await replicas[2].GetStatusAsync();
        output?.WriteLine($"replica 2 before: epoch {before.Epoch}, executed {before.Executed0}/{before.Executed1}, compacted below {before.Base0}/{before.Base1}");

        // Replica 2's volume is lost: it is stopped while its storage is unavailable, and stays away while the others
        // go on without compacting (it has not committed what they did) until their checkpoints outgrow one log entry;
        // then its directory is deleted and the storage given back empty. Peers' packets reactivate it at once.
        var dir = Path.GetFullPath(Path.Combine(fixture.DataDirectory, "sequencer-replica-2"));
        BlockableSiloLogs.Block(dir);
        try
        {
            await fixture.Cluster.DeactivateAsync(replicas[2]);
            var grown = await PollAsync(async () =>
            {
                await FillAsync(5);
                var s = await Task.WhenAll(replicas[..2].Select(r => r.GetStatusAsync()));
                return s.All(x => x.LastCheckpointBytes > LargeCheckpoint * 3 / 2) ? s : null;
            }, "the others' checkpoints to outgrow one log entry");
            output?.WriteLine($"with replica 2 away: checkpoints of {string.Join(" and ", grown.Select(x => $"{x.LastCheckpointBytes:N0} bytes (replica {x.Replica}, compacted below {x.Base0}/{x.Base1})"))}");
            Directory.Delete(dir, recursive: true);
        }
        finally
        {
            BlockableSiloLogs.Unblock(dir);
        }

        await FillAsync(5);
        ReplicaStatus rebuilt = null!;
        await PollAsync(async () =>
        {
            await FillAsync(2);
            rebuilt = await replicas[2].GetStatusAsync();
            var others = await Task.WhenAll(replicas[..2].Select(r => r.GetStatusAsync()));
            return rebuilt.Role == "Replica" && rebuilt.Epoch > before.Epoch
                && rebuilt.Executed0 + rebuilt.Executed1 >= others.Min(o => o.Executed0 + o.Executed1) - 50;
        }, "replica 2 to rebuild, pass its floor and catch up");
        output?.WriteLine($"replica 2 rebuilt: epoch {rebuilt.Epoch}, executed {rebuilt.Executed0}/{rebuilt.Executed1}, compacted below {rebuilt.Base0}/{rebuilt.Base1}, log {rebuilt.LogFirstEntry}..{rebuilt.LogEntries}, pulled {rebuilt.RebuildBytes:N0} bytes");
        Assert.True(rebuilt.Epoch > before.Epoch, $"the rebuilt replica's incarnation {rebuilt.Epoch} is not above its lost self's {before.Epoch}: peers would drop its packets");
        Assert.True(rebuilt.RebuildBytes > LargeCheckpoint, $"the transfer was {rebuilt.RebuildBytes} bytes: the test meant it to need several chunks");

        // Restarted, the rebuilt replica recovers from its checkpoint of several parts.
        await fixture.Cluster.DeactivateAsync(replicas[2]);
        var recovered = await replicas[2].GetStatusAsync();
        output?.WriteLine($"replica 2 restarted: epoch {recovered.Epoch}, log {recovered.LogFirstEntry}..{recovered.LogEntries}, checkpoint {recovered.LastCheckpointBytes:N0} bytes");
        Assert.True(recovered.Epoch > rebuilt.Epoch && recovered.ActivatedAt > rebuilt.ActivatedAt, "replica 2 was not restarted");
        Assert.True(recovered.LastCheckpointBytes > 0, "replica 2 restarted without its checkpoint");
        Assert.True(recovered.Executed0 >= rebuilt.Executed0 && recovered.Executed1 >= rebuilt.Executed1,
            $"replica 2 restarted at {recovered.Executed0}/{recovered.Executed1}, behind what it had executed ({rebuilt.Executed0}/{rebuilt.Executed1})");

        // Replica 0 is now unavailable: the log goes on only if the rebuilt replica votes (2 of 3).
        var dir0 = Path.GetFullPath(Path.Combine(fixture.DataDirectory, "sequencer-replica-0"));
        BlockableSiloLogs.Block(dir0);
        try
        {
            await fixture.Cluster.DeactivateAsync(replicas[0]);
            var at = acks.Count;
            await FillAsync(5);
            Assert.True(acks.Count >= at + 500, "appends did not go on with replicas 1 and 2");
            var last = acks[^1].Gsn;
            await using (var probe = new LogProbe(client.SubscribeAsync(acks[0].Gsn, ct), ct))
            {
                await probe.WaitUntilAsync(p => p.ConfirmedUpTo > last, Patience, $"confirmation past GSN {last} with replica 0 gone");
            }
        }
        finally
        {
            BlockableSiloLogs.Unblock(dir0);
        }

        await TrimTestBase.AssertRetainedAsync(client, acks, acks[0].Gsn, ct);
    }

    private static async Task PollAsync(Func<Task<bool>> done, string what) =>
        await PollAsync(async () => await done() ? "" : null, what);

    private static async Task<T> PollAsync<T>(Func<Task<T?>> done, string what)
        where T : class
    {
        // Polled: rebuilding and compaction happen inside the replica grains, with no event a test can await.
        var deadline = DateTime.UtcNow + Patience;
        while (true)
        {
            if (await done() is { } result)
            {
                return result;
            }

            Assert.True(DateTime.UtcNow < deadline, $"timed out waiting for {what}");
        }
    }
}
