using SpecLog.Server.Grains;

namespace SpecLog.Cluster.Tests;

/// <summary>
/// Exactly-once appends at the shard: a retry of an identified append returns the original GSN and writes nothing,
/// within a batch, while the original waits for its commit, and after the shard restarted from its log.
/// </summary>
[Collection(SharedClusterCollection.Name)]
public sealed class ExactlyOnceTests(ClusterFixture fixture)
{
    [Fact]
    public async Task A_retried_append_returns_its_original_gsn_and_writes_nothing_even_after_the_shard_restarts()
    {
        var ct = TestContext.Current.CancellationToken;
        var shard = fixture.Grains.GetGrain<IShardGrain>(3);
        var client = Guid.NewGuid();
        var first = await shard.AppendIdentifiedAsync(client, [1, 2], [Payload.Make("once", 0, 1), Payload.Make("once", 0, 2)], ct);
        var durable = (await shard.GetStatusAsync()).DurableRecords;

        // The same ids again (a retry after an unknown outcome), and mixed with a new one: only the new one is written.
        Assert.Equal(first, await shard.AppendIdentifiedAsync(client, [1, 2], [Payload.Make("once", 0, 1), Payload.Make("once", 0, 2)], ct));
        var mixed = await shard.AppendIdentifiedAsync(client, [2, 3], [Payload.Make("once", 0, 2), Payload.Make("once", 0, 3)], ct);
        Assert.Equal(first[1], mixed[0]);
        Assert.True(mixed[1] > first[1]);
        Assert.Equal(durable + 1, (await shard.GetStatusAsync()).DurableRecords);

        // A retry racing its original: both get the same GSN, one record.
        var original = shard.AppendIdentifiedAsync(client, [4], [Payload.Make("once", 0, 4)], ct);
        var retry = shard.AppendIdentifiedAsync(client, [4], [Payload.Make("once", 0, 4)], ct);
        Assert.Equal((await original)[0], (await retry)[0]);
        Assert.Equal(durable + 2, (await shard.GetStatusAsync()).DurableRecords);

        // The shard restarts from its log and still knows the ids.
        await fixture.Cluster.DeactivateAsync(shard);
        Assert.Equal(first, await shard.AppendIdentifiedAsync(client, [1, 2], [Payload.Make("once", 0, 1), Payload.Make("once", 0, 2)], ct));
        Assert.Equal(durable + 2, (await shard.GetStatusAsync()).DurableRecords);
        Assert.Equal("T|once|0|1", Payload.Text((await fixture.Client.ReadAsync(first[0], ct))!.Payload));
    }

    [Fact]
    public async Task Batches_with_mismatched_ids_are_refused_whole()
    {
        var shard = fixture.Grains.GetGrain<IShardGrain>(1);
        var before = (await shard.GetStatusAsync()).DurableRecords;
        await Assert.ThrowsAsync<ArgumentException>(() => shard.AppendIdentifiedAsync(Guid.NewGuid(), [1], [Payload.Make("once", 1, 1), Payload.Make("once", 1, 2)], TestContext.Current.CancellationToken));
        Assert.Equal(before, (await shard.GetStatusAsync()).DurableRecords);
    }

    [Fact]
    public void The_deduplicator_forgets_beyond_its_window_but_still_refuses_what_it_forgot()
    {
        var dedup = new AppendDeduplicator(window: 3);
        var a = Guid.NewGuid();
        var b = Guid.NewGuid();
        dedup.Add(a, 1, 10);
        dedup.Add(b, 7, 11);
        dedup.Add(a, 2, 12);
        Assert.True(dedup.TryGet(a, 1, out var slot) && slot == 10);
        dedup.Add(a, 3, 13); // evicts (a, 1)
        Assert.False(dedup.TryGet(a, 1, out _));
        Assert.True(dedup.IsForgotten(a, 1));
        Assert.False(dedup.IsForgotten(a, 4));
        Assert.False(dedup.IsForgotten(b, 7));
        Assert.True(dedup.TryGet(b, 7, out slot) && slot == 11);
        Assert.Equal(3, dedup.Count);
        Assert.Throws<InvalidOperationException>(() => dedup.Add(a, 3, 14));
    }
}
