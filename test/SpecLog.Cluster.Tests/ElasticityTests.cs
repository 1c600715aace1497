using System.Collections.Concurrent;
using System.Diagnostics;
using SpecLog.Client;
using SpecLog.Server;

namespace SpecLog.Cluster.Tests;

/// <summary>Three silos, Copilot ordering, two shards of three replicas each (one per silo).</summary>
public sealed class ElasticReplicatedFixture : ClusterFixture
{
    protected override int Silos => 3;

    protected override void Configure(SpecLogOptions options)
    {
        options.ShardCount = 2;
        options.ShardReplicas = 3;
    }
}

/// <summary>One silo, the single sequencer, two unreplicated shards.</summary>
public sealed class ElasticSingleFixture : ClusterFixture
{
    protected override void Configure(SpecLogOptions options)
    {
        options.ShardCount = 2;
        options.Replication.Mode = SequencerReplication.Single;
    }
}

public sealed class ReplicatedElasticityTests(ElasticReplicatedFixture fixture, ITestOutputHelper output)
    : ElasticityTestsBase(fixture, output), IClassFixture<ElasticReplicatedFixture>;

public sealed class SingleSequencerElasticityTests(ElasticSingleFixture fixture, ITestOutputHelper output)
    : ElasticityTestsBase(fixture, output), IClassFixture<ElasticSingleFixture>;

/// <summary>
/// Shards added and removed while producers append and a whole-log subscriber reads: the new shard delivers soon after
/// it is added, the removed one's pending appends complete and its records stay readable, appends that name no shard
/// never fail, and nothing delivered speculatively moves.
/// </summary>
public abstract class ElasticityTestsBase(ClusterFixture fixture, ITestOutputHelper output)
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task Shards_added_and_removed_under_load_keep_every_record_at_its_speculative_position()
    {
        var ct = TestContext.Current.CancellationToken;
        var client = fixture.Client;
        var name = GetType().Name;
        await using var probe = new LogProbe(client.SubscribeAsync(0, ct), ct);
        var acked = new ConcurrentDictionary<string, long>();
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var producers = Enumerable.Range(0, 4).Select(p => Task.Run(async () =>
        {
            for (var i = 0; !stop.IsCancellationRequested; i++)
            {
                var payload = Payload.Make(name, p, i);
                acked[Payload.Text(payload)] = await client.AppendAsync(payload, cancellationToken: ct);
            }
        }, ct)).ToArray();

        await probe.WaitUntilAsync(x => x.Records.Count >= 200, Patience, "200 records before the shard set changes");

        // Add shard 2 while the producers append.
        var added = Stopwatch.StartNew();
        var join = await client.AddShardAsync(cancellationToken: ct);
        var decided = added.Elapsed;
        Assert.Equal(2, join.Shard);
        await probe.WaitUntilAsync(x => x.Records.Any(r => r.Shard == 2), Patience, "a record of the added shard");
        output.WriteLine($"shard 2 added: decided after {decided.TotalMilliseconds:0} ms at window {join.Window} (GSN {join.StartGsn}); first record delivered {added.Elapsed.TotalMilliseconds:0} ms after the call");
        Assert.Equal([0, 1, 2], await client.GetActiveShardsAsync(ct));

        // Remove shard 0 while they go on.
        var leave = await client.RemoveShardAsync(0, cancellationToken: ct);
        output.WriteLine($"shard 0 removed from window {leave.Window} (GSN {leave.StartGsn})");
        Assert.Equal([1, 2], await client.GetActiveShardsAsync(ct));
        var afterLeave = acked.Count;
        await probe.WaitUntilAsync(_ => acked.Count >= afterLeave + 300, Patience, "300 more appends after shard 0 left");
        await stop.CancelAsync();
        await Task.WhenAll(producers.Select(p => p.ContinueWith(t => t.Exception is { } e && e.InnerException is not OperationCanceledException ? throw e : Task.CompletedTask, TaskScheduler.Default)));

        // Everything acknowledged is delivered at its GSN, confirmed, and read back.
        var last = acked.Values.Max();
        await probe.WaitUntilAsync(x => x.ConfirmedUpTo > last, Patience, $"confirmation past GSN {last}");
        var delivered = probe.Records.ToDictionary(r => r.Gsn);
        Assert.Equal(probe.Records.Count, delivered.Count); // each GSN once
        Assert.True(probe.Records.Zip(probe.Records.Skip(1)).All(p => p.First.Gsn < p.Second.Gsn), "GSNs increase along the subscription");
        foreach (var (text, gsn) in acked)
        {
            Assert.True(delivered.TryGetValue(gsn, out var r), $"acknowledged GSN {gsn} ({text}) was not delivered");
            Assert.Equal(text, Payload.Text(r.Payload));
        }

        Assert.DoesNotContain(probe.Records, r => r.Shard == 0 && r.Gsn >= leave.StartGsn);
        Assert.DoesNotContain(probe.Records, r => r.Shard == 2 && r.Gsn < join.StartGsn);
        Assert.Contains(probe.Records, r => r.Shard == 2);
        Assert.Contains(probe.Records, r => r.Shard == 1 && r.Gsn >= leave.StartGsn);
        var read = await client.ReadRangeAsync(0, last + 1, ct);
        Assert.Equal(probe.Records.Where(r => r.Gsn <= last).Select(r => (r.Gsn, Payload.Text(r.Payload))), read.Select(r => (r.Gsn, Payload.Text(r.Payload))));
        Assert.Contains(read, r => r.Shard == 0); // the removed shard's records stay readable

        // The removed shard refuses appends that name it, clearly; the status says it left.
        var refused = await Assert.ThrowsAsync<ShardRemovedException>(() => client.AppendAsync(Payload.Make(name, 9, 0), shard: 0, cancellationToken: ct));
        Assert.Equal(0, refused.Shard);
        Assert.Contains("has left the log", refused.Message);
        var status = await fixture.Grains.GetGrain<ISequencerGrain>(0).GetStatusAsync();
        Assert.Equal([0], status.DepartedShards ?? []);
        Assert.Equal(3, status.ShardCount);
        var replicas = await Task.WhenAll(Enumerable.Range(0, status.ShardReplicas).Select(r => fixture.Grains.GetGrain<IShardGrain>(ShardKeys.Of(0, r)).GetStatusAsync()));
        Assert.True(replicas.Single(r => r.Role is "Leader" or "Single").Departed);
    }

    [Fact]
    public async Task Impossible_shard_set_changes_are_refused_clearly()
    {
        var ct = TestContext.Current.CancellationToken;
        var sequencer = fixture.Grains.GetGrain<ISequencerGrain>(0);
        var count = (await sequencer.GetStatusAsync()).ShardCount;
        var error = await Assert.ThrowsAsync<ArgumentException>(() => sequencer.RequestShardChangeAsync(FixAnte.ShardControl.Join, count + 5));
        Assert.Contains($"next shard id is {count}", error.Message);
        error = await Assert.ThrowsAsync<ArgumentException>(() => fixture.Client.RemoveShardAsync(count + 3, cancellationToken: ct));
        Assert.Contains($"Unknown shard {count + 3}", error.Message);
        Assert.Equal(count, (await sequencer.GetStatusAsync()).ShardCount);
    }
}
