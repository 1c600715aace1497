using System.Diagnostics;

namespace SpecLog.Client;

/// <summary>The append path: identified records, batched per shard, sent to the shard's leader, retried with their ids, traced.</summary>
public sealed partial class SpecLogClient
{
    /// <summary>This client's id: with a per-client sequence number it identifies each append, so retries are written once.</summary>
    public Guid ClientId { get; } = Guid.NewGuid();

    private long _sequence;

    private long NextSequenceNumber() => Interlocked.Increment(ref _sequence);

    /// <summary>
    /// Sends identified records to the replica believed to lead <paramref name="shard"/>; a replica that names another
    /// leader is left at once for that one. Any other failure moves the route on and is left to the caller's retries.
    /// </summary>
    private async Task<long[]> AppendAtLeaderAsync(int shard, long[] seqs, byte[][] payloads, string?[]? tags, CancellationToken cancellationToken)
    {
        for (var attempt = 0; ; attempt++)
        {
            if (HasFailed(shard))
            {
                throw new ShardFailedException(shard); // retrying cannot help: no replica of it is left
            }

            var replica = _routes.LeaderOf(shard);
            AppendTracing.InjectSend(replica, _routes.Replicas);
            try
            {
                var grain = _routes.Replica(shard, replica);
                return await (tags is null
                    ? grain.AppendIdentifiedAsync(ClientId, seqs, payloads, cancellationToken)
                    : grain.AppendTaggedAsync(ClientId, seqs, payloads, tags, cancellationToken));
            }
            catch (Exception e) when (_routes.OnFailure(shard, replica, e) && attempt < _routes.Replicas)
            {
                // The replica named the leader: go there now.
                AppendTracing.Redirected(replica);
            }
            catch (Exception e) when (AppendRetry.IsRetryable(e))
            {
                _ = EnsureShardsAsync(CancellationToken.None).AsTask(); // learn soon whether the shard failed for good
                throw;
            }
        }
    }

    /// <summary>
    /// Appends a record to <paramref name="shard"/> (or the next shard in turn); returns its final GSN once committed.
    /// Concurrent appends to the same shard travel together in batched calls.
    /// </summary>
    /// <exception cref="ArgumentException">The record is empty or too large.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The shard does not exist.</exception>
    /// <exception cref="ShardRemovedException">The named shard has left the log (an append that names no shard goes to another one).</exception>
    public Task<long> AppendAsync(ReadOnlyMemory<byte> payload, int? shard = null, CancellationToken cancellationToken = default) =>
        AppendCoreAsync(payload, null, shard, cancellationToken);

    private async Task<long> AppendCoreAsync(ReadOnlyMemory<byte> payload, string? tag, int? shard, CancellationToken cancellationToken)
    {
        using var trace = SpecLogTracing.Source.StartActivity(SpecLogTracing.Spans.Append, ActivityKind.Internal);
        try
        {
            for (var attempt = 1; ; attempt++)
            {
                var target = await PickShardAsync(shard, cancellationToken);
                trace?.SetTag(SpecLogTracing.Tags.Shard, target);
                CheckSize(payload.Length, 0);
                cancellationToken.ThrowIfCancellationRequested();
                try
                {
                    var gsn = await Batcher(target).AppendAsync(payload.ToArray(), cancellationToken, tag, trace);
                    trace?.SetTag(SpecLogTracing.Tags.Gsn, gsn);
                    return gsn;
                }
                catch (ShardRemovedException) when (shard is null && attempt < MaxReroutes)
                {
                    // The shard left the log without taking the record: learn the shard set again and append elsewhere.
                    trace?.AddEvent(new ActivityEvent(SpecLogTracing.Events.Reroute));
                    await RefreshShardsAsync(cancellationToken);
                }
            }
        }
        catch (Exception e) when (SpecLogTracing.Failed(trace, e))
        {
            throw; // not reached: the filter only records the failure
        }
    }

    /// <summary>Appends records in order to one shard; returns their final GSNs once committed.</summary>
    /// <remarks>
    /// If the shard leaves the log meanwhile, the records it did not take go, in order, to another shard when the call
    /// named no shard (their GSNs then follow that shard's order); when it named the shard, the call fails with a
    /// <see cref="ShardRemovedException"/> that gives the GSNs of the records that were written.
    /// </remarks>
    public Task<long[]> AppendBatchAsync(IReadOnlyList<ReadOnlyMemory<byte>> payloads, int? shard = null, CancellationToken cancellationToken = default) =>
        SpecLogTracing.Source.HasListeners() // no second state machine per call while nothing listens
            ? TracedAppendBatchAsync(payloads, shard, cancellationToken)
            : AppendBatchCoreAsync(payloads, shard, null, cancellationToken);

    private async Task<long[]> TracedAppendBatchAsync(IReadOnlyList<ReadOnlyMemory<byte>> payloads, int? shard, CancellationToken cancellationToken)
    {
        using var trace = SpecLogTracing.Source.StartActivity(SpecLogTracing.Spans.Append, ActivityKind.Internal);
        trace?.SetTag(SpecLogTracing.Tags.Records, payloads?.Count);
        try
        {
            return await AppendBatchCoreAsync(payloads!, shard, trace, cancellationToken);
        }
        catch (Exception e) when (SpecLogTracing.Failed(trace, e))
        {
            throw; // not reached: the filter only records the failure
        }
    }

    private async Task<long[]> AppendBatchCoreAsync(IReadOnlyList<ReadOnlyMemory<byte>> payloads, int? shard, Activity? trace, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(payloads);
        if (payloads.Count == 0)
        {
            throw new ArgumentException("A batch needs at least one record.", nameof(payloads));
        }

        var target = await PickShardAsync(shard, cancellationToken);
        trace?.SetTag(SpecLogTracing.Tags.Shard, target);
        var arrays = new byte[payloads.Count][];
        for (var i = 0; i < arrays.Length; i++)
        {
            CheckSize(payloads[i].Length, i);
            arrays[i] = payloads[i].ToArray();
        }

        var gsns = new long[arrays.Length];
        var left = Enumerable.Range(0, arrays.Length).ToArray();
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                var written = await AppendIdentifiedBatchAsync(target, [.. left.Select(i => arrays[i])], trace, cancellationToken);
                for (var k = 0; k < left.Length; k++)
                {
                    gsns[left[k]] = written[k];
                }

                trace?.SetTag(SpecLogTracing.Tags.FirstGsn, gsns[0]);
                trace?.SetTag(SpecLogTracing.Tags.LastGsn, gsns[^1]);
                return gsns;
            }
            catch (ShardRemovedException e) when (shard is null && attempt < MaxReroutes)
            {
                trace?.AddEvent(new ActivityEvent(SpecLogTracing.Events.Reroute));
                // Keep what the shard wrote before it left; send the rest to another shard, with new append ids.
                var rest = new List<int>();
                for (var k = 0; k < left.Length; k++)
                {
                    if (e.Gsns.Length == left.Length && e.Gsns[k] >= 0)
                    {
                        gsns[left[k]] = e.Gsns[k];
                    }
                    else
                    {
                        rest.Add(left[k]);
                    }
                }

                left = [.. rest];
                await RefreshShardsAsync(cancellationToken);
                target = await PickShardAsync(null, cancellationToken);
            }
        }
    }

    /// <summary>
    /// Sends records to <paramref name="target"/> with one id each, kept across retries (the shard writes each once and
    /// answers a retry with the original GSNs), retrying failures with an unknown outcome until the retry deadline.
    /// </summary>
    private async Task<long[]> AppendIdentifiedBatchAsync(int target, byte[][] arrays, Activity? trace, CancellationToken cancellationToken)
    {
        var last = Interlocked.Add(ref _sequence, arrays.Length);
        var seqs = Enumerable.Range(0, arrays.Length).Select(i => last - arrays.Length + 1 + i).ToArray();
        var started = Stopwatch.GetTimestamp();
        var backoff = AppendRetry.FirstBackoff;
        for (var attempt = 1; ; attempt++)
        {
            using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            deadline.CancelAfter(_callTimeout);
            Exception error;
            using (var call = trace is null ? null : AppendTracing.StartSend(trace, null, target, arrays.Length, attempt))
            {
                try
                {
                    return await AppendAtLeaderAsync(target, seqs, arrays, null, deadline.Token);
                }
                catch (OperationCanceledException) when (deadline.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
                {
                    error = AppendRetry.NoAnswer(target, arrays.Length, _callTimeout);
                }
                catch (Exception e) when (AppendRetry.IsRetryable(e) && !cancellationToken.IsCancellationRequested)
                {
                    error = e;
                }
                catch (Exception e) when (SpecLogTracing.Failed(call, e))
                {
                    throw; // not reached: the filter only records the failure
                }

                SpecLogTracing.Failed(call, error);
            }

            if (Stopwatch.GetElapsedTime(started) >= _options.AppendRetryDeadline)
            {
                throw AppendRetry.GaveUp(target, _options.AppendRetryDeadline, error);
            }

            AppendTracing.Retry(trace, error, attempt);
            await Task.Delay(AppendRetry.Pause(error, ref backoff), cancellationToken);
        }
    }

    private void CheckSize(int length, int index)
    {
        if (length == 0)
        {
            throw new ArgumentException($"Record {index} is empty: a record must hold at least one byte.", "payload");
        }

        if (length > _maxRecordSize)
        {
            throw new ArgumentException($"Record {index} has {length} bytes; the largest record allowed is {_maxRecordSize} bytes.", "payload");
        }
    }
}
