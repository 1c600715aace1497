using System.Diagnostics;
using Orleans.TestingHost;
using SpecLog.Server;

namespace SpecLog.Cluster.Tests;

/// <summary>Three silos, every shard with three replicas (one per silo).</summary>
public class ReplicatedShardsFixture : ClusterFixture
{
    protected override int Silos => 3;

    protected override void Configure(SpecLogOptions options)
    {
        options.ShardCount = 2;
        options.ShardReplicas = 3;
    }
}

/// <summary>The same configuration in a cluster of its own, because the test using it kills a silo.</summary>
public sealed class KillableReplicatedShardsFixture : ReplicatedShardsFixture
{
}

/// <summary>Replicated shards on an in-process cluster: one leader per shard, and followers on the other silos hold its log.</summary>
public sealed class ShardReplicationTests(ReplicatedShardsFixture fixture) : IClassFixture<ReplicatedShardsFixture>
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(90);

    [Fact]
    public async Task EveryShard_HasOneLeader_AndFollowersOnOtherSilos_HoldItsLog()
    {
        var ct = TestContext.Current.CancellationToken;
        var client = fixture.Client;
        for (var i = 0; i < 200; i++)
        {
            await client.AppendAsync(Payload.Make(nameof(EveryShard_HasOneLeader_AndFollowersOnOtherSilos_HoldItsLog), 0, i), shard: i % 2, cancellationToken: ct);
        }

        for (var s = 0; s < 2; s++)
        {
            var shard = s;
            var statuses = await WaitForReplicasAsync(fixture, shard, all =>
            {
                var leaders = all.Where(x => x.Role == "Leader").ToList();
                return leaders.Count == 1 && all.All(x => x.LogEntries == leaders[0].LogEntries);
            }, $"shard {shard}: one leader and followers holding its whole log");
            Assert.Equal(3, statuses.Select(x => x.Silo).Distinct().Count());
            var leader = statuses.Single(x => x.Role == "Leader");
            Assert.True(leader.DurableRecords >= 100, $"shard {shard}'s leader holds {leader.DurableRecords} records");
            Assert.All(statuses, x => Assert.Equal(3, x.Replicas));
        }
    }

    internal static async Task<ShardStatus[]> WaitForReplicasAsync(ClusterFixture fixture, int shard, Func<ShardStatus[], bool> condition, string what, bool skipUnreachable = false)
    {
        using var deadline = new CancellationTokenSource(Deadline);
        while (true)
        {
            // Polled: the replicas' roles change inside other grains, with no event a test can await.
            var statuses = new List<ShardStatus>();
            for (var r = 0; r < 3; r++)
            {
                try
                {
                    statuses.Add(await fixture.Grains.GetGrain<IShardGrain>(ShardKeys.Of(shard, r)).GetStatusAsync().WaitAsync(TimeSpan.FromSeconds(2), deadline.Token));
                }
                catch (Exception e) when (e is not OperationCanceledException || !deadline.IsCancellationRequested)
                {
                    if (!skipUnreachable)
                    {
                        statuses.Clear();
                        break;
                    }
                }
            }

            if (statuses.Count > 0 && condition([.. statuses]))
            {
                return [.. statuses];
            }

            try
            {
                await Task.Delay(20, deadline.Token);
            }
            catch (OperationCanceledException)
            {
                Assert.Fail($"Timed out after {Deadline} waiting for {what}; last seen: {string.Join("; ", statuses.Select(x => $"r{x.Replica} {x.Role} e{x.Epoch} entries {x.LogEntries}"))}");
            }
        }
    }
}

/// <summary>A killed leader's silo costs no acknowledged record and no speculative position.</summary>
public sealed class ShardFailoverTests(KillableReplicatedShardsFixture fixture) : IClassFixture<KillableReplicatedShardsFixture>
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(90);

    [Fact]
    public async Task KillingALeadersSilo_UnderLoad_LosesNoAcknowledgedRecord_AndNoSpeculativeRecordMoves()
    {
        var ct = TestContext.Current.CancellationToken;
        var client = fixture.Client;
        var test = nameof(KillingALeadersSilo_UnderLoad_LosesNoAcknowledgedRecord_AndNoSpeculativeRecordMoves);
        await using var probe = new LogProbe(client.SubscribeAsync(0, ct), ct);
        var producers = new Producers(client, test, 6, ct);
        await producers.WaitForAcksAsync(300, Deadline, "before the failure");

        // Kill the silo of shard 0's leader.
        var statuses = await ShardReplicationTests.WaitForReplicasAsync(fixture, 0, all => all.Count(x => x.Role == "Leader") == 1, "a leader of shard 0");
        var leader = statuses.Single(x => x.Role == "Leader");
        var victim = fixture.Cluster.Silos.Single(s => s.SiloAddress.ToString() == leader.Silo);
        var killedAt = Stopwatch.GetTimestamp();
        var acksBefore = producers.Acks.Count;
        await fixture.Cluster.KillSiloAsync(victim, ct);

        // A new epoch begins: another replica leads it, or (in-process, where every silo sees the same files) the
        // killed replica activated again on a live silo and won it.
        var next = await ShardReplicationTests.WaitForReplicasAsync(fixture, 0, all => all.Any(x => x.Role == "Leader" && x.Epoch > leader.Epoch), "a new leader of shard 0", skipUnreachable: true);
        var newLeader = next.Single(x => x.Role == "Leader" && x.Epoch > leader.Epoch);
        TestContext.Current.TestOutputHelper?.WriteLine(
            $"replica {leader.Replica} (epoch {leader.Epoch}) killed; replica {newLeader.Replica} leads epoch {newLeader.Epoch} after {Stopwatch.GetElapsedTime(killedAt).TotalMilliseconds:0} ms");
        await producers.WaitForAcksAsync(acksBefore + 600, Deadline, "after the leader's silo died");
        await producers.StopAsync();

        // Everything acknowledged is in the committed log exactly once, at its GSN.
        var maxGsn = producers.Acks.Values.Max();
        await probe.WaitUntilAsync(p => p.ConfirmedUpTo > maxGsn, Deadline, "confirmation of every acknowledged record");
        var records = await client.ReadRangeAsync(0, maxGsn + 1, ct);
        var mine = records.Where(r => Payload.Text(r.Payload).Contains(test, StringComparison.Ordinal)).ToList();
        var byText = mine.GroupBy(r => Payload.Text(r.Payload)).ToDictionary(g => g.Key, g => g.Select(r => r.Gsn).ToList());
        Assert.All(byText, kv => Assert.True(kv.Value.Count == 1, $"{kv.Key} is in the log {kv.Value.Count} times"));
        foreach (var (text, gsn) in producers.Acks)
        {
            Assert.True(byText.TryGetValue(text, out var at), $"acknowledged {text} (GSN {gsn}) is not in the log");
            Assert.Equal(gsn, at[0]);
        }

        // No mis-speculation: every record delivered speculatively is, committed, at the GSN it was delivered with.
        var committed = records.ToDictionary(r => r.Gsn, r => Payload.Text(r.Payload));
        var speculative = probe.Records.Where(r => r.Gsn <= maxGsn).ToList();
        Assert.NotEmpty(speculative);
        foreach (var r in speculative)
        {
            Assert.True(committed.TryGetValue(r.Gsn, out var text) && text == Payload.Text(r.Payload),
                $"speculative record at GSN {r.Gsn} ({Payload.Text(r.Payload)}) is committed as {(committed.TryGetValue(r.Gsn, out var t) ? t : "nothing")}");
        }
    }
}
