using SpecLog.Server.Replication;

namespace SpecLog.Cluster.Tests;

/// <summary>Seed sweeps of the shard replication simulator; SHARD_REPLICATION_SCHEDULES raises the count, SHARD_REPLICATION_SEED replays one.</summary>
public sealed class ShardReplicationSimulatorTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData(3)]
    [InlineData(5)]
    public void Random_schedules_never_lose_a_durable_entry_and_recover(int replicas)
    {
        var (schedules, totals) = Sweep(replicas, wipes: false);
        Assert.True(totals.Committed > schedules, "the schedules committed almost nothing; the simulation checks little");
        Assert.True(totals.Elections > schedules, "the schedules saw almost no elections; the faults test little");
    }

    [Theory]
    [InlineData(3)]
    [InlineData(5)]
    public void Replicas_that_lose_their_disk_rebuild_before_they_count_and_nothing_durable_is_lost(int replicas)
    {
        // Without the probe and rebuild a wiped replica votes with an empty log and forgets its promises, and seeds of
        // this sweep elect leaders lacking committed entries.
        var (schedules, totals) = Sweep(replicas, wipes: true);
        Assert.True(totals.Wipes > schedules / 4, "the schedules lost almost no disk; the test checks little");
        Assert.True(totals.Rebuilds > totals.Wipes / 2, "few lost replicas rebuilt: they do not come back");
        Assert.True(totals.Committed > schedules, "the schedules committed almost nothing; the simulation checks little");
    }

    /// <summary>Runs SHARD_REPLICATION_SCHEDULES seeded schedules (150 by default; SHARD_REPLICATION_SEED replays one) and sums what they did.</summary>
    private (int Schedules, (long Elections, long Crashes, long Wipes, long Rebuilds, long Committed) Totals) Sweep(int replicas, bool wipes)
    {
        var schedules = int.TryParse(Environment.GetEnvironmentVariable("SHARD_REPLICATION_SCHEDULES"), out var n) ? n : 150;
        var first = int.TryParse(Environment.GetEnvironmentVariable("SHARD_REPLICATION_SEED"), out var s) ? s : Environment.TickCount & 0xFFFF;
        if (Environment.GetEnvironmentVariable("SHARD_REPLICATION_SEED") is not null)
        {
            schedules = 1;
        }

        var what = wipes ? $"replicas {replicas}, disks lost" : $"replicas {replicas}";
        output.WriteLine($"{what}, seeds {first}..{first + schedules - 1} (replay one with SHARD_REPLICATION_SEED=<seed>)");
        long elections = 0, crashes = 0, wiped = 0, rebuilds = 0, committed = 0;
        for (var seed = first; seed < first + schedules; seed++)
        {
            var sim = new ShardReplicationSimulation(replicas, seed, wipes);
            try
            {
                sim.Run(faultyMicros: 6_000_000, quietMicros: 3_000_000);
            }
            catch (InvalidOperationException e)
            {
                throw new InvalidOperationException($"Seed {seed} ({what}) failed: {e.Message}", e);
            }

            elections += sim.Elections;
            crashes += sim.Crashes;
            wiped += sim.Wipes;
            rebuilds += sim.Rebuilds;
            committed += sim.CommittedEntries;
        }

        output.WriteLine($"{schedules} schedules: {crashes} crashes ({wiped} disks lost, {rebuilds} replicas rebuilt), {elections} elections, {committed} entries committed");
        return (schedules, (elections, crashes, wiped, rebuilds, committed));
    }

    [Fact]
    public void Agreed_prefix_keeps_entries_of_shared_epochs_and_drops_a_deposed_leaders_tail()
    {
        // The follower holds epoch 1 entries [0, 10) and epoch 2 entries [10, 14); the new leader's history has epoch 2
        // end at 12 (epoch 4 starts there), so the follower's entries 12 and 13 are a deposed leader's tail.
        var follower = new ReplicaMeta(2, [1, 2], [0, 10]);
        Assert.Equal(12, follower.AgreedPrefix(14, [1, 2, 4], [0, 10, 12]));
        Assert.Equal(14, follower.AgreedPrefix(14, [1, 2, 4], [0, 10, 20]));
        Assert.Equal(10, follower.AgreedPrefix(14, [1, 3], [0, 10]));
        Assert.Equal(0, follower.AgreedPrefix(14, [3], [0]));
        Assert.Equal(0, ReplicaMeta.Empty.AgreedPrefix(0, [1], [0]));
    }

    [Fact]
    public void Meta_survives_a_round_trip_through_its_file()
    {
        var dir = Directory.CreateTempSubdirectory("speclog-meta-");
        try
        {
            var path = Path.Combine(dir.FullName, "replica.meta");
            Assert.Same(ReplicaMeta.Empty, ReplicaMeta.Load(path));
            var meta = new ReplicaMeta(7, [1, 4, 7], [0, 100, 250]);
            meta.Save(path, fsync: true);
            var loaded = ReplicaMeta.Load(path);
            Assert.Equal(7, loaded.Promised);
            Assert.Equal([1, 4, 7], loaded.Epochs);
            Assert.Equal([0, 100, 250], loaded.Starts);
            Assert.Equal(4, loaded.LastEpoch(250 - 1));
            Assert.Equal(7, loaded.LastEpoch(250));
            Assert.False(loaded.Rebuilding);

            var rebuilding = new ReplicaMeta(9, [9], [0], Rebuilding: true, FloorEpoch: 8, FloorEnd: 1234);
            rebuilding.Save(path, fsync: true);
            var back = ReplicaMeta.Load(path);
            Assert.True(back.Rebuilding);
            Assert.Equal((9L, 8L, 1234L), (back.Promised, back.FloorEpoch, back.FloorEnd));
            Assert.False(back.IsBlank);

            // A file of the first format (no flags, no floor) still loads: promised 3, one epoch 3 from 0.
            var v1 = new byte[32];
            BitConverter.TryWriteBytes(v1.AsSpan(0), 0x5350_524D);
            BitConverter.TryWriteBytes(v1.AsSpan(4), 3L);
            BitConverter.TryWriteBytes(v1.AsSpan(12), 1);
            BitConverter.TryWriteBytes(v1.AsSpan(16), 3L);
            BitConverter.TryWriteBytes(v1.AsSpan(24), 0L);
            File.WriteAllBytes(path, v1);
            var old = ReplicaMeta.Load(path);
            Assert.Equal((3L, false), (old.Promised, old.Rebuilding));
            Assert.Equal([3L], old.Epochs);
        }
        finally
        {
            dir.Delete(true);
        }
    }
}
