using System.Collections.Concurrent;
using SpecLog.Client;

namespace SpecLog.Cluster.Tests;

/// <summary>
/// The client's per-shard append batching when calls fail with an unknown outcome: a call without answer is cancelled
/// after the call timeout and sent again with the same append ids (the shard answers a retry with the original GSN),
/// until the retry deadline; refusals are not retried.
/// </summary>
public sealed class AppendBatcherTests
{
    private long _seq;

    private long Next() => Interlocked.Increment(ref _seq);

    [Fact(Timeout = 30_000)]
    public async Task A_call_without_answer_is_cancelled_and_sent_again_with_the_same_append_ids()
    {
        var attempts = new ConcurrentQueue<long[]>();
        var lostCallCancelled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        async Task<long[]> Send(long[] seqs, byte[][] payloads, string?[]? tags, CancellationToken ct)
        {
            attempts.Enqueue(seqs);
            if (attempts.Count == 1)
            {
                // The first call is lost with its silo: no answer, ever, unless cancelled.
                await using var registration = ct.Register(() => lostCallCancelled.TrySetResult());
                await Task.Delay(Timeout.Infinite, ct);
            }

            return [.. seqs.Select(s => 1000 + s)];
        }

        var batcher = new AppendBatcher(Send, Next, maxBatch: 16, maxInFlight: 1, callTimeout: TimeSpan.FromMilliseconds(200), retryDeadline: TimeSpan.FromSeconds(20), shard: 3);
        var ct = TestContext.Current.CancellationToken;
        var lost = batcher.AppendAsync([1], ct);
        var queued = batcher.AppendAsync([2], ct); // waits for the only call slot

        Assert.Equal(1001, await lost);             // answered by the retry, with the id it had the first time
        Assert.Equal(1002, await queued);
        await lostCallCancelled.Task;               // the lost grain call itself was cancelled, not just abandoned
        var sent = attempts.ToArray();
        Assert.Equal([1L], sent[0]);
        Assert.Equal(1L, sent[1][0]);               // the retry carried the same append id
        Assert.Equal(1, batcher.Retries);
    }

    [Fact(Timeout = 30_000)]
    public async Task Retries_end_at_the_deadline_with_an_error_naming_it_and_the_last_failure()
    {
        var calls = 0;
        Task<long[]> Send(long[] seqs, byte[][] payloads, string?[]? tags, CancellationToken ct)
        {
            Interlocked.Increment(ref calls);
            throw new AppendOutcomeUnknownException("shard 5 deactivated before the append was committed");
        }

        var batcher = new AppendBatcher(Send, Next, maxBatch: 16, maxInFlight: 1, callTimeout: TimeSpan.FromSeconds(5), retryDeadline: TimeSpan.FromMilliseconds(300), shard: 5);
        var e = await Assert.ThrowsAsync<TimeoutException>(() => batcher.AppendAsync([1], TestContext.Current.CancellationToken));
        Assert.Contains("AppendRetryDeadline", e.Message, StringComparison.Ordinal);
        Assert.Contains("deactivated before the append was committed", e.Message, StringComparison.Ordinal);
        Assert.True(calls >= 2, $"only {calls} attempt(s)");
    }

    [Fact(Timeout = 30_000)]
    public async Task A_refusal_is_not_retried()
    {
        var calls = 0;
        Task<long[]> Send(long[] seqs, byte[][] payloads, string?[]? tags, CancellationToken ct)
        {
            Interlocked.Increment(ref calls);
            throw new ArgumentException("Record 0 is empty.");
        }

        var batcher = new AppendBatcher(Send, Next, maxBatch: 16, maxInFlight: 1, callTimeout: TimeSpan.FromSeconds(5), retryDeadline: TimeSpan.FromSeconds(20));
        await Assert.ThrowsAsync<ArgumentException>(() => batcher.AppendAsync([1], TestContext.Current.CancellationToken));
        Assert.Equal(1, calls);
        Assert.Equal(0, batcher.Retries);
    }

    [Fact(Timeout = 30_000)]
    public async Task A_caller_that_cancels_is_answered_at_once_while_the_others_in_its_batch_complete()
    {
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        async Task<long[]> Send(long[] seqs, byte[][] payloads, string?[]? tags, CancellationToken ct)
        {
            await release.Task.WaitAsync(ct);
            return [.. payloads.Select((_, i) => 7L + i)];
        }

        var batcher = new AppendBatcher(Send, Next, maxBatch: 16, maxInFlight: 4, callTimeout: TimeSpan.FromSeconds(20), retryDeadline: TimeSpan.FromSeconds(20));
        using var caller = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        var cancelled = batcher.AppendAsync([1], caller.Token);
        var other = batcher.AppendAsync([2], TestContext.Current.CancellationToken);
        await caller.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cancelled);
        release.SetResult();
        Assert.Equal(7L, await other);
    }
}
