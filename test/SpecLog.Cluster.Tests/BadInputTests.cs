using SpecLog.Server;

namespace SpecLog.Cluster.Tests;

[Collection(SharedClusterCollection.Name)]
public sealed class BadInputTests(ClusterFixture fixture)
{
    private async Task<ShardStatus> StatusAsync(int shard) => await fixture.Grains.GetGrain<IShardGrain>(shard).GetStatusAsync();

    [Fact]
    public async Task EmptyRecord_IsRefused_ByClientAndGrain()
    {
        var ct = TestContext.Current.CancellationToken;
        var before = await StatusAsync(0);
        var e1 = await Assert.ThrowsAsync<ArgumentException>(() => fixture.Client.AppendAsync(ReadOnlyMemory<byte>.Empty, 0, ct));
        Assert.Contains("at least one byte", e1.Message);
        var e2 = await Assert.ThrowsAsync<ArgumentException>(() => fixture.Grains.GetGrain<IShardGrain>(0).AppendAsync([], ct));
        Assert.Contains("empty", e2.Message);
        Assert.Equal(before.DurableRecords, (await StatusAsync(0)).DurableRecords);
    }

    [Fact]
    public async Task OversizedRecord_IsRefused_AndNothingIsAppended()
    {
        var ct = TestContext.Current.CancellationToken;
        var before = await StatusAsync(1);
        var big = new byte[SpecLogOptions.DEFAULT_MAX_RECORD_SIZE + 1];
        var e = await Assert.ThrowsAsync<ArgumentException>(() => fixture.Client.AppendAsync(big, 1, ct));
        Assert.Contains($"{SpecLogOptions.DEFAULT_MAX_RECORD_SIZE} bytes", e.Message);

        // A batch with one bad record is refused whole.
        var batch = new ReadOnlyMemory<byte>[] { Payload.Make("oversized", 0, 0), big };
        await Assert.ThrowsAsync<ArgumentException>(() => fixture.Client.AppendBatchAsync(batch, 1, ct));
        Assert.Equal(before.DurableRecords, (await StatusAsync(1)).DurableRecords);

        // The largest allowed record goes through and reads back intact.
        var max = new byte[SpecLogOptions.DEFAULT_MAX_RECORD_SIZE];
        Payload.Make("max", 0, 0).CopyTo(max, 0);
        max[^1] = 0x5A;
        var gsn = await fixture.Client.AppendAsync(max, 1, ct);
        var read = await fixture.Client.ReadAsync(gsn, ct);
        Assert.NotNull(read);
        Assert.True(read.Payload.Span.SequenceEqual(max));
    }

    [Fact]
    public async Task UnknownShard_IsRefused_WithTheShardCount()
    {
        var ct = TestContext.Current.CancellationToken;
        var e = await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => fixture.Client.AppendAsync(Payload.Make("unknown", 0, 0), 4, ct));
        Assert.Contains("4 shards", e.Message);
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => fixture.Client.AppendAsync(Payload.Make("unknown", 0, 0), -1, ct));
        var direct = await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => fixture.Grains.GetGrain<IShardGrain>(99).AppendAsync(Payload.Make("unknown", 0, 0), ct));
        Assert.Contains("Unknown shard 99", direct.Message);
    }

    [Fact]
    public async Task PositionsOutOfRange_AreRefused()
    {
        var ct = TestContext.Current.CancellationToken;
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => fixture.Client.ReadAsync(-1, ct));
        var status = await fixture.Grains.GetGrain<ISequencerGrain>(0).GetStatusAsync();
        var beyond = status.CommittedGsn + 1_000_000_000;
        var e = await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => fixture.Client.ReadAsync(beyond, ct));
        Assert.Contains("committed", e.Message);
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => fixture.Client.ReadRangeAsync(10, 5, ct));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(async () =>
        {
            await foreach (var _ in fixture.Client.SubscribeAsync(beyond, ct))
            {
            }
        });
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => fixture.Grains.GetGrain<IShardGrain>(0).ReadAsync(long.MaxValue, 10));

        // The last position does not overflow into a nonsense range in the message.
        var last = await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => fixture.Client.ReadAsync(long.MaxValue, ct));
        Assert.Contains($"GSN {long.MaxValue}", last.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(long.MinValue.ToString(System.Globalization.CultureInfo.InvariantCulture), last.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task CancelledAppend_ThrowsAndAppendsNothing()
    {
        using var cancelled = new CancellationTokenSource();
        await cancelled.CancelAsync();
        var before = await StatusAsync(2);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => fixture.Client.AppendAsync(Payload.Make("cancelled", 0, 0), 2, cancelled.Token));
        Assert.Equal(before.DurableRecords, (await StatusAsync(2)).DurableRecords);
    }
}
