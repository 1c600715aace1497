namespace SpecLog.Cluster.Tests;

/// <summary>
/// Found by the rollback demonstration: a record whose first slot a failure of its shard voided is written again when
/// its client retries it after the shard rejoined, so the shard's log holds its append id twice. The shard must start
/// from that log (the later write is the record's place), and a further retry gets the later write's GSN.
/// </summary>
[Collection(CutOffCollection.Name)]
public sealed class VoidedRetryRecoveryTests(FailableShardFixture fixture) : IClassFixture<FailableShardFixture>
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task A_retry_written_again_after_a_rejoin_survives_the_shards_restart()
    {
        var ct = TestContext.Current.CancellationToken;
        var client = fixture.Client;
        var shard2 = fixture.Grains.GetGrain<IShardGrain>(2);
        var sequencer = fixture.Grains.GetGrain<ISequencerGrain>(0);
        await client.AppendAsync(Payload.Make("voided-retry", 0, -1), shard: 2, cancellationToken: ct);
        var appender = Guid.NewGuid();
        var payload = Payload.Make("voided-retry", 0, 0);

        // Shard 2 takes the record while its reports are lost (durable there, positioned, never reported), then is cut off
        // until the ordering layer declares it failed (it does once shard 2 holds the others' records back): the
        // record's slot is voided.
        using var stopLoad = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var load = Task.Run(async () =>
        {
            for (var i = 0; !stopLoad.IsCancellationRequested; i++)
            {
                try
                {
                    await client.AppendAsync(Payload.Make("voided-retry-load", 0, i), shard: i % 2, cancellationToken: stopLoad.Token);
                }
                catch (OperationCanceledException) when (stopLoad.IsCancellationRequested)
                {
                }
            }
        }, ct);
        using var abandon = CancellationTokenSource.CreateLinkedTokenSource(ct);
        Task<long[]> first;
        CutOffFilter.Set(shard2.GetGrainId(), reportsOnly: true);
        try
        {
            var before = (await shard2.GetStatusAsync()).DurableSlots;
            first = shard2.AppendIdentifiedAsync(appender, [1], [payload], abandon.Token);
            await Until(async () => first.IsFaulted ? throw first.Exception! : (await shard2.GetStatusAsync()).DurableSlots > before, $"the record durable on shard 2 (from {before})");
            CutOffFilter.Set(shard2.GetGrainId());
            await Until(async () => (await sequencer.GetStatusAsync()).FailedShards?.Contains(2) == true, "shard 2 declared failed");
        }
        finally
        {
            CutOffFilter.Set(null);
        }

        await stopLoad.CancelAsync();
        await load;
        await abandon.CancelAsync(); // the first call's outcome no longer matters: its slot is void
        await Assert.ThrowsAnyAsync<Exception>(() => first);
        await Until(async () => (await client.GetActiveShardsAsync(ct)).Contains(2), "shard 2 rejoined");

        // The client's retry: the id is remembered at a void slot, so the record is written anew.
        var gsn = (await shard2.AppendIdentifiedAsync(appender, [1], [payload], ct))[0];

        // The shard restarts from its log, which holds the id twice; a further retry gets the later write's GSN.
        await fixture.Cluster.DeactivateAsync(shard2);
        var again = (await shard2.AppendIdentifiedAsync(appender, [1], [payload], ct))[0];
        Assert.Equal(gsn, again);
        var read = await client.ReadAsync(gsn, ct);
        Assert.Equal((2, Payload.Text(payload)), (read!.Shard, Payload.Text(read.Payload)));
    }

    private static async Task Until(Func<Task<bool>> condition, string what)
    {
        using var deadline = new CancellationTokenSource(Patience);
        while (!await condition())
        {
            try
            {
                await Task.Delay(20, deadline.Token); // polled: these states are decided inside the shard and the ordering layer
            }
            catch (OperationCanceledException)
            {
                Assert.Fail($"Timed out after {Patience} waiting for {what}.");
            }
        }
    }
}
