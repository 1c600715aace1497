using SpecLog.Client;

namespace SpecLog.Cluster.Tests;

/// <summary>
/// The client's per-shard append batching when a call never returns (its silo vanished mid-call): the call is
/// cancelled after the append call timeout, its records fail with a clear <see cref="TimeoutException"/>, and the slot
/// it held carries the next records.
/// </summary>
public sealed class AppendBatcherTests
{
    [Fact(Timeout = 30_000)]
    public async Task A_call_without_answer_fails_its_records_after_the_timeout_and_frees_its_slot()
    {
        var calls = 0;
        var lostCallCancelled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        async Task<long[]> Send(byte[][] payloads, CancellationToken ct)
        {
            if (Interlocked.Increment(ref calls) == 1)
            {
                // The first call is lost with its silo: no answer, ever, unless cancelled.
                await using var registration = ct.Register(() => lostCallCancelled.TrySetResult());
                await Task.Delay(Timeout.Infinite, ct);
            }

            return [.. payloads.Select((_, i) => 100L + i)];
        }

        var batcher = new AppendBatcher(Send, maxBatch: 16, maxInFlight: 1, callTimeout: TimeSpan.FromMilliseconds(200), shard: 3);
        var ct = TestContext.Current.CancellationToken;
        var lost = batcher.AppendAsync([1], ct);
        var queued = batcher.AppendAsync([2], ct); // waits for the only slot

        var e = await Assert.ThrowsAsync<TimeoutException>(() => lost);
        Assert.Contains("shard 3", e.Message, StringComparison.Ordinal);
        Assert.Contains("outcome is unknown", e.Message, StringComparison.Ordinal);
        await lostCallCancelled.Task; // the grain call itself was cancelled, not just abandoned
        Assert.Equal(100L, await queued); // the freed slot carried the queued record
        Assert.Equal(2, calls);
    }

    [Fact(Timeout = 30_000)]
    public async Task A_caller_that_cancels_is_answered_at_once_while_the_others_in_its_batch_complete()
    {
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        async Task<long[]> Send(byte[][] payloads, CancellationToken ct)
        {
            await release.Task.WaitAsync(ct);
            return [.. payloads.Select((_, i) => 7L + i)];
        }

        var batcher = new AppendBatcher(Send, maxBatch: 16, maxInFlight: 4, callTimeout: TimeSpan.FromSeconds(20));
        using var caller = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        var cancelled = batcher.AppendAsync([1], caller.Token);
        var other = batcher.AppendAsync([2], TestContext.Current.CancellationToken);
        await caller.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cancelled);
        release.SetResult();
        Assert.Equal(7L, await other);
    }
}
