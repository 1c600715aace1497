namespace SpecLog.Cluster.Tests;

[Collection(SharedClusterCollection.Name)]
public sealed class ShardReactivationTests(ClusterFixture fixture)
{
    [Fact]
    public async Task ShardDeactivated_RecoversFromDisk_KeepsCommitting_AndSubscriptionsResume()
    {
        var ct = TestContext.Current.CancellationToken;
        var status = await fixture.Grains.GetGrain<ISequencerGrain>(0).GetStatusAsync();
        await using var probe = new LogProbe(fixture.Client.SubscribeAsync(status.CommittedGsn, ct), ct);
        var acks = new List<(long Gsn, string Text)>();
        for (var i = 0; i < 10; i++)
        {
            var payload = Payload.Make("reactivate", 0, i);
            acks.Add((await fixture.Client.AppendAsync(payload, 2, ct), Payload.Text(payload)));
        }

        var before = await fixture.Grains.GetGrain<IShardGrain>(2).GetStatusAsync();
        await fixture.Cluster.DeactivateAsync(fixture.Grains.GetGrain<IShardGrain>(2));

        for (var i = 10; i < 20; i++)
        {
            var payload = Payload.Make("reactivate", 0, i);
            acks.Add((await fixture.Client.AppendAsync(payload, 2, ct), Payload.Text(payload)));
        }

        var after = await fixture.Grains.GetGrain<IShardGrain>(2).GetStatusAsync();
        Assert.True(after.DurableRecords >= before.DurableRecords + 10, "the reactivated shard lost records");
        Assert.True(after.ActivatedAt > before.ActivatedAt, "shard 2 was not reactivated");
        Assert.Equal(acks.Select(a => a.Gsn).Order(), acks.Select(a => a.Gsn));

        foreach (var (gsn, text) in acks)
        {
            var read = await fixture.Client.ReadAsync(gsn, ct);
            Assert.NotNull(read);
            Assert.Equal(text, Payload.Text(read.Payload));
        }

        var last = acks[^1].Gsn;
        await probe.WaitUntilAsync(p => p.ConfirmedUpTo > last, TimeSpan.FromSeconds(60), $"the subscription to pass GSN {last}");
        var seen = probe.Records.ToDictionary(r => r.Gsn, r => Payload.Text(r.Payload));
        Assert.All(acks, a => Assert.Equal(a.Text, seen[a.Gsn]));
    }
}
