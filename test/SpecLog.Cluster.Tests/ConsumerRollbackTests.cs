using System.Collections.Concurrent;
using SpecLog.Client;
using SpecLog.Consumer;

namespace SpecLog.Cluster.Tests;

/// <summary>
/// The speculative consumer through a real whole-shard failure: shard 2 keeps taking appends and delivering them
/// speculatively while its reports are lost, then is cut off; the log voids what it never reported, the consumer rolls
/// its state back over the mis-speculated range and re-applies the corrected records, and what it released equals
/// what a run over the confirmed log releases, each output once.
/// </summary>
[Collection(CutOffCollection.Name)]
public sealed class ConsumerRollbackTests(FailableShardFixture fixture, ITestOutputHelper output)
    : ConsumerRollbackTestsBase(fixture, output, ConsumerOrdering.Gsn), IClassFixture<FailableShardFixture>;

/// <summary>The same with a per-shard consumer (one state per shard): only the failed shard's state rolls back.</summary>
[Collection(CutOffCollection.Name)]
public sealed class PerShardConsumerRollbackTests(FailableShardFixture fixture, ITestOutputHelper output)
    : ConsumerRollbackTestsBase(fixture, output, ConsumerOrdering.PerShard), IClassFixture<FailableShardFixture>;

public abstract class ConsumerRollbackTestsBase(FailableShardFixture fixture, ITestOutputHelper output, ConsumerOrdering ordering)
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task A_consumer_rolls_back_a_failed_shards_records_and_releases_what_the_confirmed_log_gives()
    {
        var ct = TestContext.Current.CancellationToken;
        var client = fixture.Client;
        var sink = new RecordingSink();
        var rollbacks = new ConcurrentQueue<RollbackNotice>();
        var consumer = new SpeculativeConsumer<Dictionary<string, long>, string>(
            client, "rollback", ConsumerTestApp.NewState, ConsumerTestApp.Apply, sink,
            new OrleansStateCodec<Dictionary<string, long>>(fixture.Cluster.Client.ServiceProvider),
            new SpeculativeConsumerOptions { Ordering = ordering, SnapshotEvery = 8, CheckpointInterval = TimeSpan.FromMilliseconds(200), OnRollback = rollbacks.Enqueue });
        using var stopConsumer = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var run = consumer.RunAsync(stopConsumer.Token);

        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var acked = new ConcurrentBag<long>();
        var producers = Enumerable.Range(0, 6).Select(p => Task.Run(async () =>
        {
            for (var i = 0; !stop.IsCancellationRequested; i++)
            {
                try
                {
                    acked.Add(await client.AppendAsync(ConsumerTestApp.Record($"k{(p + i) % 7}", 5 + (i * 31 % 50)), cancellationToken: stop.Token));
                }
                catch (ShardFailedException)
                {
                    // Waiting on shard 2 when it failed: in the log or not, the consumer follows the log.
                }
                catch (OperationCanceledException) when (stop.IsCancellationRequested)
                {
                }
            }
        }, ct)).ToArray();

        async Task Until(Func<bool> condition)
        {
            using var wait = CancellationTokenSource.CreateLinkedTokenSource(ct);
            wait.CancelAfter(Patience);
            while (!condition())
            {
                await Task.Delay(10, wait.Token); // polled: progress of producers and of the ordering layer has no event
            }
        }

        await Until(() => acked.Count >= 400);

        // Shard 2's reports are lost (it goes on delivering records speculatively that will never be reported), then
        // it is cut off altogether until the ordering layer declares it failed.
        var shard2 = fixture.Grains.GetGrain<IShardGrain>(2).GetGrainId();
        CutOffFilter.Set(shard2, reportsOnly: true);
        await Task.Delay(300, ct);
        CutOffFilter.Set(shard2);
        var sequencer = fixture.Grains.GetGrain<ISequencerGrain>(0);
        using (var wait = CancellationTokenSource.CreateLinkedTokenSource(ct))
        {
            wait.CancelAfter(Patience);
            while (!((await sequencer.GetStatusAsync()).FailedShards ?? []).Contains(2))
            {
                await Task.Delay(20, wait.Token); // polled: the failure is decided inside the ordering layer
            }
        }

        var afterFailure = acked.Count;
        await Until(() => acked.Count >= afterFailure + 300);
        await stop.CancelAsync();
        await Task.WhenAll(producers);
        CutOffFilter.Set(null); // shard 2 returns, so its committed records can be read for the reference run

        var end = acked.Max() + 1;
        var perShard = ordering == ConsumerOrdering.PerShard;
        var expected = await ConsumerTestApp.ExpectedAsync(client, 0, end, perShard, ct);
        await sink.WaitForAsync(o => o.Count(x => x.Gsn < end) >= expected.Count, Patience, ct);
        await stopConsumer.CancelAsync();
        await run;

        var s = consumer.Statistics;
        output.WriteLine($"{s.Applied} records applied, {s.Rollbacks} rollbacks undoing {s.UndoneRecords} records and dropping {s.DiscardedOutputs} held outputs; {s.Released} outputs released");
        foreach (var r in rollbacks)
        {
            output.WriteLine($"rollback: [{r.Range.FromGsn}, {r.Range.ToGsn}) of shard {r.Range.Shard}, {r.UndoneRecords} records undone, {r.DiscardedOutputs} outputs dropped");
        }

        Assert.True(s.Rollbacks >= 1 && s.UndoneRecords >= 1, "the consumer never rolled back: no speculative record of shard 2 was voided under it");
        Assert.Equal(0, sink.Duplicates);
        var released = sink.Outputs.Where(o => o.Gsn < end).Select(o => (o.Gsn, o.Index, o.Output)).ToList();
        if (perShard)
        {
            Assert.Equal(expected.Order(), released.Order()); // shards interleave; each shard's outputs in its order
            Assert.All(rollbacks, r => Assert.Equal(2, r.Shard));
        }
        else
        {
            Assert.Equal(expected, released);
        }
    }
}
