using System.Diagnostics;

namespace SpecLog.Client;

/// <summary>
/// Coalesces concurrent single-record appends to one shard into batched grain calls. A record is sent at once while
/// fewer than <c>maxInFlight</c> calls to the shard are outstanding; otherwise it waits for the next call,
/// which carries everything that queued meanwhile. At low rates this adds nothing; at high rates it turns thousands
/// of grain calls into a few batches per commit cycle. Records are validated before they queue, so one bad record
/// never fails the others in its batch.
/// </summary>
/// <remarks>
/// Every record carries its sequence number (the client's append id), so a call that failed with an unknown outcome
/// (no answer within <c>callTimeout</c>, a silo lost mid-call, a shard that stopped) is sent again with the same ids
/// until <c>retryDeadline</c>: the shard writes each record once and answers a retry with the original GSN. Past the
/// deadline the records fail with a <see cref="TimeoutException"/> naming the last error. A call without answer is
/// cancelled after <c>callTimeout</c>, so a call lost with its silo never holds the shard's appends for Orleans'
/// response timeout. A caller that cancels its own append is answered at once; its record still travels if its batch
/// was sent.
/// </remarks>
internal sealed class AppendBatcher(
    Func<long[], byte[][], string?[]?, CancellationToken, Task<long[]>> send,
    Func<long> nextSequenceNumber,
    int maxBatch,
    int maxInFlight,
    TimeSpan callTimeout,
    TimeSpan retryDeadline,
    int shard = -1)
{
    private readonly object _gate = new();
    private readonly Queue<Pending> _queue = new();
    private int _inFlight;

    /// <summary>Calls sent again after an unknown outcome (for diagnostics and tests).</summary>
    public long Retries => Interlocked.Read(ref _retries);

    private long _retries;

    /// <summary>Appends one record; <paramref name="trace"/> is the append's span (<see cref="SpecLogTracing.Spans.Append"/>), if traced.</summary>
    public Task<long> AppendAsync(byte[] payload, CancellationToken cancellationToken, string? tag = null, Activity? trace = null)
    {
        var pending = new Pending(nextSequenceNumber(), payload, tag, cancellationToken, Stopwatch.GetTimestamp(), trace);
        List<Pending>? batch = null;
        lock (_gate)
        {
            _queue.Enqueue(pending);
            if (_inFlight < maxInFlight)
            {
                _inFlight++;
                batch = TakeBatch();
            }
        }

        if (batch is not null)
        {
            SendAsync(batch).Ignore();
        }

        return pending.Task.WaitAsync(cancellationToken);
    }

    // Caller holds the gate. Records whose caller gave up before they were sent are dropped here.
    private List<Pending> TakeBatch()
    {
        var batch = new List<Pending>(Math.Min(_queue.Count, maxBatch));
        while (batch.Count < maxBatch && _queue.TryDequeue(out var p))
        {
            if (p.CancellationToken.IsCancellationRequested)
            {
                p.Cancel();
                continue;
            }

            batch.Add(p);
        }

        return batch;
    }

    private async Task SendAsync(List<Pending> batch)
    {
        var backoff = AppendRetry.FirstBackoff;
        var attempt = 1;
        while (true)
        {
            if (batch.Count > 0)
            {
                var error = await SendOnceAsync(batch, attempt);
                if (error is not null)
                {
                    // The outcome is unknown: send the same records (same ids) again after a pause, while their
                    // callers still wait and their deadline allows; the shard answers with the original GSNs.
                    batch = Survivors(batch, error, attempt);
                    if (batch.Count > 0)
                    {
                        Interlocked.Increment(ref _retries);
                        attempt++;
                        await Task.Delay(AppendRetry.Pause(error, ref backoff));
                        continue;
                    }
                }
                else
                {
                    backoff = AppendRetry.FirstBackoff;
                }
            }

            attempt = 1;

            lock (_gate)
            {
                if (_queue.Count == 0)
                {
                    _inFlight--;
                    return;
                }

                batch = TakeBatch();
            }
        }
    }

    /// <summary>Sends <paramref name="batch"/> once; completes its records, or fails them for good, or returns the error to retry on.</summary>
    private async Task<Exception?> SendOnceAsync(List<Pending> batch, int attempt)
    {
        using var deadline = new CancellationTokenSource(callTimeout);
        using var call = StartSend(batch, attempt);
        try
        {
            var measured = SpecLogMetrics.StageDuration.Enabled;
            var sentAt = measured ? SpecLogMetrics.NowMicros() : 0;
            string?[]? tags = batch.Exists(p => p.Tag is not null) ? [.. batch.Select(p => p.Tag)] : null;
            var gsns = await send([.. batch.Select(p => p.SequenceNumber)], [.. batch.Select(p => p.Payload)], tags, deadline.Token);
            var ackedAt = measured ? SpecLogMetrics.NowMicros() : 0;
            call?.Stop(); // before the appends complete: the call ends within each append's span
            for (var i = 0; i < batch.Count; i++)
            {
                if (measured)
                {
                    SpecLogMetrics.RecordStage(SpecLogMetrics.Stages.ClientQueue, batch[i].EnqueuedMicros, sentAt);
                    SpecLogMetrics.RecordStage(SpecLogMetrics.Stages.ClientAppend, batch[i].EnqueuedMicros, ackedAt);
                }

                batch[i].Complete(gsns[i]);
            }

            return null;
        }
        catch (OperationCanceledException) when (deadline.IsCancellationRequested)
        {
            var error = AppendRetry.NoAnswer(shard, batch.Count, callTimeout);
            SpecLogTracing.Failed(call, error);
            return error;
        }
        catch (Exception e) when (AppendRetry.IsRetryable(e))
        {
            SpecLogTracing.Failed(call, e);
            return e;
        }
        catch (ShardRemovedException e) when (e.Gsns.Length == batch.Count)
        {
            SpecLogTracing.Failed(call, e);
            // The shard left the log: records it wrote before are in the log; the others fail (and may go elsewhere).
            for (var i = 0; i < batch.Count; i++)
            {
                if (e.Gsns[i] >= 0)
                {
                    batch[i].Complete(e.Gsns[i]);
                }
                else
                {
                    batch[i].Fail(new ShardRemovedException(e.Shard, [-1]));
                }
            }

            return null;
        }
        catch (Exception e)
        {
            SpecLogTracing.Failed(call, e);
            foreach (var p in batch)
            {
                p.Fail(e);
            }

            return null;
        }
    }

    /// <summary>
    /// The span of the grain call carrying <paramref name="batch"/>: a child of its first traced append, linked to the
    /// others; none when none of them is traced (or nothing listens: then nothing is allocated). It is made current for
    /// the call (so its context travels with it); when there is none, no span of another append is left current either.
    /// </summary>
    private Activity? StartSend(List<Pending> batch, int attempt)
    {
        if (!SpecLogTracing.Source.HasListeners())
        {
            if (Activity.Current is not null)
            {
                Activity.Current = null; // this flow's current span belongs to whichever append started the sending
            }

            return null;
        }

        Activity? first = null;
        List<ActivityLink>? links = null;
        foreach (var p in batch)
        {
            if (p.Trace is { } trace)
            {
                if (first is null)
                {
                    first = trace;
                }
                else
                {
                    (links ??= []).Add(new ActivityLink(trace.Context));
                }
            }
        }

        if (first is null)
        {
            Activity.Current = null;
            return null;
        }

        return AppendTracing.StartSend(first, links, shard, batch.Count, attempt);
    }

    /// <summary>The records of <paramref name="batch"/> still worth sending again; the others are answered.</summary>
    private List<Pending> Survivors(List<Pending> batch, Exception error, int attempt)
    {
        var now = Stopwatch.GetTimestamp();
        var again = new List<Pending>(batch.Count);
        foreach (var p in batch)
        {
            if (p.CancellationToken.IsCancellationRequested)
            {
                p.Cancel();
            }
            else if (Stopwatch.GetElapsedTime(p.StartedAt, now) >= retryDeadline)
            {
                p.Fail(AppendRetry.GaveUp(shard, retryDeadline, error));
            }
            else
            {
                AppendTracing.Retry(p.Trace, error, attempt);
                again.Add(p);
            }
        }

        return again;
    }

    private sealed class Pending(long sequenceNumber, byte[] payload, string? tag, CancellationToken cancellationToken, long startedAt, Activity? trace)
    {
        /// <summary>The append's span, if traced (the call's span links to it).</summary>
        public Activity? Trace { get; } = trace;

        private readonly TaskCompletionSource<long> _tcs = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public long SequenceNumber { get; } = sequenceNumber;

        public byte[] Payload { get; } = payload;

        public string? Tag { get; } = tag;

        public long StartedAt { get; } = startedAt;

        public long EnqueuedMicros { get; } = SpecLogMetrics.StageDuration.Enabled ? SpecLogMetrics.NowMicros() : 0;

        public CancellationToken CancellationToken { get; } = cancellationToken;

        public Task<long> Task => _tcs.Task;

        public void Complete(long gsn) => _tcs.TrySetResult(gsn);

        public void Fail(Exception e) => _tcs.TrySetException(e);

        public void Cancel() => _tcs.TrySetCanceled(CancellationToken);
    }
}
