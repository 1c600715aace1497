namespace SpecLog.Client;

/// <summary>
/// Coalesces concurrent single-record appends to one shard into batched grain calls. A record is sent at once while
/// fewer than <c>maxInFlight</c> calls to the shard are outstanding; otherwise it waits for the next call,
/// which carries everything that queued meanwhile. At low rates this adds nothing; at high rates it turns thousands
/// of grain calls into a few batches per commit cycle. Records are validated before they queue, so one bad record
/// never fails the others in its batch.
/// </summary>
/// <remarks>
/// Each call is cancelled after <c>callTimeout</c>: its records fail with a <see cref="TimeoutException"/> and the
/// call's slot is free again, so a call lost with its silo never holds the shard's appends for Orleans' response
/// timeout. A caller that cancels its own append is answered at once; its record still travels if its batch was sent.
/// </remarks>
internal sealed class AppendBatcher(Func<byte[][], CancellationToken, Task<long[]>> send, int maxBatch, int maxInFlight, TimeSpan callTimeout, int shard = -1)
{
    private readonly object _gate = new();
    private readonly Queue<Pending> _queue = new();
    private int _inFlight;

    public Task<long> AppendAsync(byte[] payload, CancellationToken cancellationToken)
    {
        var pending = new Pending(payload, cancellationToken);
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
        while (true)
        {
            if (batch.Count > 0)
            {
                using var deadline = new CancellationTokenSource(callTimeout);
                try
                {
                    var measured = SpecLogMetrics.StageDuration.Enabled;
                    var sentAt = measured ? SpecLogMetrics.NowMicros() : 0;
                    var gsns = await send([.. batch.Select(p => p.Payload)], deadline.Token);
                    var ackedAt = measured ? SpecLogMetrics.NowMicros() : 0;
                    for (var i = 0; i < batch.Count; i++)
                    {
                        if (measured)
                        {
                            SpecLogMetrics.RecordStage(SpecLogMetrics.Stages.ClientQueue, batch[i].EnqueuedMicros, sentAt);
                            SpecLogMetrics.RecordStage(SpecLogMetrics.Stages.ClientAppend, batch[i].EnqueuedMicros, ackedAt);
                        }

                        batch[i].Complete(gsns[i]);
                    }
                }
                catch (OperationCanceledException) when (deadline.IsCancellationRequested)
                {
                    var timeout = new TimeoutException(
                        $"No answer from shard {shard} to an append of {batch.Count} record(s) within {callTimeout.TotalSeconds:0.###} s "
                        + "(SpecLogClientOptions.AppendCallTimeout); the outcome is unknown: the records may have been written.");
                    foreach (var p in batch)
                    {
                        p.Fail(timeout);
                    }
                }
                catch (Exception e)
                {
                    foreach (var p in batch)
                    {
                        p.Fail(e);
                    }
                }
            }

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

    private sealed class Pending(byte[] payload, CancellationToken cancellationToken)
    {
        private readonly TaskCompletionSource<long> _tcs = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public byte[] Payload { get; } = payload;

        public long EnqueuedMicros { get; } = SpecLogMetrics.StageDuration.Enabled ? SpecLogMetrics.NowMicros() : 0;

        public CancellationToken CancellationToken { get; } = cancellationToken;

        public Task<long> Task => _tcs.Task;

        public void Complete(long gsn) => _tcs.TrySetResult(gsn);

        public void Fail(Exception e) => _tcs.TrySetException(e);

        public void Cancel() => _tcs.TrySetCanceled(CancellationToken);
    }
}
