using System.Buffers;
using System.Buffers.Binary;
using System.Diagnostics;
using System.Text;

namespace SpecLog.Server.Grains;

/// <summary>
/// The shard's exactly-once side: appends identified by (client, sequence number) are written once; a retry gets the
/// original slot's GSN, waiting for its commit if needed. The ids are stored with the records, so a restarted shard
/// rebuilds what it remembers from its log.
/// </summary>
internal sealed partial class ShardGrain
{
    private readonly PriorityQueue<RetriedAppend, long> _retried = new();
    private AppendDeduplicator _dedup = null!;

    public Task<long[]> AppendIdentifiedAsync(Guid client, long[] sequenceNumbers, byte[][] payloads, CancellationToken cancellationToken = default) =>
        AppendTaggedAsync(client, sequenceNumbers, payloads, null!, cancellationToken);

    public Task<long[]> AppendTaggedAsync(Guid client, long[] sequenceNumbers, byte[][] payloads, string?[] tags, CancellationToken cancellationToken = default)
    {
        var trace = StartAppendTrace(payloads?.Length ?? 0);
        var call = AppendTaggedCoreAsync(client, sequenceNumbers, payloads!, tags, trace, cancellationToken);
        return trace is null ? call : TracedAsync(trace, call);
    }

    private async Task<long[]> AppendTaggedCoreAsync(Guid client, long[] sequenceNumbers, byte[][] payloads, string?[] tags, Activity? trace, CancellationToken cancellationToken)
    {
        EnsureValid();
        EnsureNotStopping();
        ArgumentNullException.ThrowIfNull(sequenceNumbers);
        ValidateBatch(payloads);
        if (sequenceNumbers.Length != payloads.Length)
        {
            throw new ArgumentException($"{sequenceNumbers.Length} sequence numbers for {payloads.Length} records.", nameof(sequenceNumbers));
        }

        ValidateTags(tags, payloads.Length);
        await EnsureServingAsync(cancellationToken);

        if (_core.Departed)
        {
            return await AnswerDepartedAsync(client, sequenceNumbers, cancellationToken);
        }

        // Everything is checked before anything is written, so a refused batch leaves no trace.
        for (var i = 0; i < payloads.Length; i++)
        {
            if (!_dedup.TryGet(client, sequenceNumbers[i], out _) && _dedup.IsForgotten(client, sequenceNumbers[i]))
            {
                throw new InvalidOperationException(
                    $"Append {sequenceNumbers[i]} of client {client} is older than shard {_shard} remembers ({_options.DedupWindow} identified records, "
                    + $"SpecLog:DedupWindow{(_trim is { } trim ? $", and none below its trim point at GSN {trim.Gsn}" : "")}): a retry this late cannot be told from a new record, "
                    + "so it is refused rather than maybe written twice.");
            }
        }

        cancellationToken.ThrowIfCancellationRequested();
        var slots = new long[payloads.Length];
        long first = -1, count = 0;
        for (var i = 0; i < payloads.Length; i++)
        {
            var remembered = _dedup.TryGet(client, sequenceNumbers[i], out var held);
            if (remembered && !_core.History.IsVoid(_shard, held))
            {
                slots[i] = -1 - held; // a retry: the record is at slot `held` already
                continue;
            }

            // New, or a retry of a record in slots a failure of this shard voided (its append failed): written anew.
            var slot = AppendIdentifiedRecord(client, sequenceNumbers[i], payloads[i], tags?[i]);
            if (remembered)
            {
                _dedup.Replace(client, sequenceNumbers[i], slot);
            }
            else
            {
                _dedup.Add(client, sequenceNumbers[i], slot);
            }

            first = first < 0 ? slot : first;
            count++;
            slots[i] = slot;
        }

        Task<long[]>? fresh = null;
        if (count > 0)
        {
            var pending = new PendingAppend(first, (int)count, NowMicros(), trace);
            _pending.Enqueue(pending);
            if (trace is not null)
            {
                TrackTraced(pending);
            }

            AfterLocalAppend();
            fresh = pending.Task;
        }

        var gsns = new long[payloads.Length];
        var freshGsns = fresh is null ? [] : await fresh.WaitAsync(cancellationToken);
        for (var i = 0; i < slots.Length; i++)
        {
            gsns[i] = slots[i] >= 0
                ? freshGsns[slots[i] - first]
                : await GsnWhenCommittedAsync(-1 - slots[i]).WaitAsync(cancellationToken);
        }

        return gsns;
    }

    /// <summary>The GSN of <paramref name="slot"/> once its cut is committed (at once if it is).</summary>
    private Task<long> GsnWhenCommittedAsync(long slot)
    {
        if (slot < _core.CommittedSlots)
        {
            return Task.FromResult(_core.History.GsnOfSlot(_shard, slot));
        }

        var retried = new RetriedAppend();
        _retried.Enqueue(retried, slot);
        return retried.Task;
    }

    /// <summary>Answers the retries whose original records are now committed.</summary>
    private void CompleteRetriedAppends(long committedSlots)
    {
        var final = _core.FinalSlots;
        while (_retried.TryPeek(out var r, out var slot) && (slot < committedSlots || (slot >= final && committedSlots >= final)))
        {
            _retried.Dequeue();
            if (slot < final)
            {
                r.Complete(_core.History.GsnOfSlot(_shard, slot));
            }
            else
            {
                r.Fail(new ShardRemovedException(_shard, [-1]));
            }
        }
    }

    /// <summary>Fails every append and retry still waiting for its commit (the shard stops or its storage failed).</summary>
    private void FailUncommitted(Exception error)
    {
        FailTraces(error);
        while (_pending.TryDequeue(out var p))
        {
            p.Fail(error);
        }

        while (_retried.TryDequeue(out var r, out _))
        {
            r.Fail(error);
        }
    }

    private long AppendIdentifiedRecord(Guid client, long seq, byte[] payload, string? tag)
    {
        // The log copies the entry into its write buffer, so the id, tag and payload are put together in a pooled buffer.
        var tagBytes = tag is null ? 0 : 2 + Encoding.UTF8.GetByteCount(tag);
        var length = AppendIdBytes + tagBytes + payload.Length;
        var framed = ArrayPool<byte>.Shared.Rent(length);
        try
        {
            client.TryWriteBytes(framed.AsSpan(0, 16));
            BinaryPrimitives.WriteInt64LittleEndian(framed.AsSpan(16, 8), seq);
            if (tag is not null)
            {
                BinaryPrimitives.WriteUInt16LittleEndian(framed.AsSpan(AppendIdBytes, 2), (ushort)(tagBytes - 2));
                Encoding.UTF8.GetBytes(tag, framed.AsSpan(AppendIdBytes + 2, tagBytes - 2));
            }

            payload.CopyTo(framed.AsSpan(AppendIdBytes + tagBytes));
            return AppendRecordEntry(tag is null ? IdentifiedRecordKind : TaggedRecordKind, framed.AsSpan(0, length), payload, tag);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(framed);
        }
    }

    /// <summary>The tag and payload of a <see cref="TaggedRecordKind"/> entry (after its append id).</summary>
    private static (string Tag, ReadOnlyMemory<byte> Payload) ReadTagged(ReadOnlyMemory<byte> stored)
    {
        var tagLength = BinaryPrimitives.ReadUInt16LittleEndian(stored.Span.Slice(AppendIdBytes, 2));
        var tag = Encoding.UTF8.GetString(stored.Span.Slice(AppendIdBytes + 2, tagLength));
        return (tag, stored[(AppendIdBytes + 2 + tagLength)..]);
    }

    private static void ValidateTags(string?[]? tags, int count)
    {
        if (tags is null)
        {
            return;
        }

        if (tags.Length != count)
        {
            throw new ArgumentException($"{tags.Length} tags for {count} records.", nameof(tags));
        }

        for (var i = 0; i < tags.Length; i++)
        {
            if (tags[i] is not null)
            {
                RecordTags.Check(tags[i], nameof(tags));
            }
        }
    }

    private static (Guid Client, long Seq) ReadAppendId(ReadOnlySpan<byte> stored) =>
        (new Guid(stored[..16]), BinaryPrimitives.ReadInt64LittleEndian(stored.Slice(16, 8)));

    /// <summary>A retry waiting for its original record's commit (queued by that record's slot).</summary>
    private sealed class RetriedAppend
    {
        private readonly TaskCompletionSource<long> _tcs = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Task<long> Task => _tcs.Task;

        public void Complete(long gsn) => _tcs.TrySetResult(gsn);

        public void Fail(Exception e) => _tcs.TrySetException(e);
    }
}
