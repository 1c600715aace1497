using System.Buffers.Binary;
using SpecLog.Storage;

namespace SpecLog.Server.Grains;

/// <summary>The shard's storage side: appending records and no-op fills to its durable log, group commits, and recovery from the log.</summary>
internal sealed partial class ShardGrain
{
    private long AppendRecord(byte[] payload) => AppendRecordEntry(RecordKind, payload, payload, null);

    /// <summary>Writes a record's log entry (<paramref name="stored"/>, of <paramref name="kind"/>) and gives the record its slot; <paramref name="payload"/> and <paramref name="tag"/> are what readers get.</summary>
    private long AppendRecordEntry(byte kind, ReadOnlySpan<byte> stored, byte[] payload, string? tag)
    {
        // After a rejoin the slots up to the end of its void are no-ops whatever this shard writes there.
        SkipVoidSlots();

        // Storage first: if it refuses (failed disk), no slot has been handed out.
        var index = _log.Append(kind, stored);
        var slot = _core.AssignRecord();
        Track(new CachedEntry(slot, 1, index, payload, tag));
        return slot;
    }

    private void AppendNoOp(long count)
    {
        Span<byte> payload = stackalloc byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(payload, count);
        var index = _log.Append(NoOpKind, payload);
        var slot = _core.AssignNoOp(count);
        SpecLogMetrics.NoOpSlots.Add(count);
        Track(new CachedEntry(slot, count, index, null));
        AfterLocalAppend();
    }

    /// <summary>After this shard appended entries: make them durable, and (when it leads replicas) copy them to the followers.</summary>
    private void AfterLocalAppend()
    {
        EnsureFlushing();
        _replication?.OnLocalAppended();
    }

    private void Track(in CachedEntry entry)
    {
        if (entry.StorageIndex % SparseIndexEvery == 0)
        {
            _sparseIndex.Add((entry.Slot, entry.StorageIndex));
        }

        _cache.Add(entry);
        _notYetDurable.Enqueue((entry.StorageIndex, entry.SlotEnd, !entry.IsNoOp));
    }

    /// <summary>
    /// Asks the log to make everything appended so far durable, at once: the log's writer starts that fsync the moment
    /// the one in flight returns, without waiting for this grain to see the previous one (one thread handoff less per
    /// group commit). Each call's completion runs <see cref="OnDurableUpTo"/> on the grain (through the replication protocol when replicated); the log coalesces
    /// concurrent requests into one write and fsync.
    /// </summary>
    private void EnsureFlushing()
    {
        var next = _log.NextIndex;
        if (next > _flushRequestedUpTo && !_storageFailed)
        {
            _flushRequestedUpTo = next;
            FlushAsync().Ignore();
        }
    }

    private async Task FlushAsync()
    {
        var log = _log;
        try
        {
            var durable = await log.FlushAsync();
            if (!ReferenceEquals(log, _log))
            {
                return; // a replica dropped this log (it diverged from the leader's) meanwhile
            }

            if (Replicated)
            {
                await OnReplication(r => r.OnLocalDurable(durable));
            }
            else
            {
                OnDurableUpTo(durable);
            }
        }
        catch (Exception e)
        {
            if (_storageFailed || !ReferenceEquals(log, _log))
            {
                return; // the first failure already failed the pending appends
            }

            _storageFailed = true;
            LogStorageFailure(logger, e, _shard);
            FailUncommitted(new AppendOutcomeUnknownException($"Shard {_shard}'s storage failed before the append was committed: {e.Message}", e));

            DeactivateOnIdle();
        }
    }

    /// <summary>Log entries below <paramref name="durableIndex"/> are durable (on a majority of replicas, when replicated).</summary>
    private void OnDurableUpTo(long durableIndex)
    {
        var records = _durableRecords;
        while (_notYetDurable.TryPeek(out var head) && head.StorageIndex < durableIndex)
        {
            _notYetDurable.Dequeue();
            _durableSlots = head.SlotEnd;
            _durableRecords += head.IsRecord ? 1 : 0;
        }

        var now = NowMicros();
        SpecLogMetrics.Records.Add(_durableRecords - records);
        _durableMarks.Add(_durableSlots, now);
        _core.OnDurable(_durableSlots, _durableRecords, now);
        if (_traced.Count > 0)
        {
            TraceProgress();
        }

        _cache.Trim(durableIndex);
        MaybeFillAndReport(now);
        PumpAll();
    }

    /// <summary>Rebuilds slots, counts, the sparse index and the recent-entry cache from the log; returns the no-op slots.</summary>
    private long Recover()
    {
        // A trimmed log starts after index 0: its first entry's slot comes from the trim point's anchor. Records and
        // no-op slots are counted over what the log still holds.
        long slot = _baseSlot = SlotAtLogStart(), records = 0, noOps = 0;
        _cache.Reset(slot);
        if (_trim?.DedupFloor is { } floor)
        {
            foreach (var (client, seq) in floor)
            {
                _dedup.ForgetUpTo(client, seq); // trimmed appends: their retries are refused, not written again
            }
        }

        if (_log.FirstIndex > 0)
        {
            _sparseIndex.Add((slot, _log.FirstIndex));
        }

        for (long index = _log.FirstIndex; index < _log.NextIndex;)
        {
            var chunk = _log.ReadRange(index, 1024);
            foreach (var e in chunk)
            {
                var (count, payload, tag) = Decode(e);
                if (e.Kind is IdentifiedRecordKind or TaggedRecordKind)
                {
                    var (client, seq) = ReadAppendId(e.Payload.Span);
                    if (_dedup.TryGet(client, seq, out _))
                    {
                        // Written again after a failure of this shard voided its first slot (the client retried it once
                        // the shard rejoined): the later write is the record's place in the log.
                        _dedup.Replace(client, seq, slot);
                    }
                    else
                    {
                        _dedup.Add(client, seq, slot);
                    }
                }

                if (e.Index % SparseIndexEvery == 0)
                {
                    _sparseIndex.Add((slot, e.Index));
                }

                _cache.Add(new CachedEntry(slot, count, e.Index, payload, tag));
                _cache.Trim(_log.NextIndex);
                slot += count;
                records += payload is null ? 0 : 1;
                noOps += payload is null ? count : 0;
            }

            index += chunk.Count;
        }

        _durableSlots = slot;
        _durableRecords = records;
        return noOps;
    }
}
