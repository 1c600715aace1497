using SpecLog.FixAnte;

namespace SpecLog.Client;

/// <summary>
/// Turns per-shard pushes into the whole log in GSN order. A GSN is released as soon as its owning shard has told
/// what occupies that slot (a record, or a no-op which is skipped), so gaps close without waiting for ordering.
/// </summary>
/// <remarks>
/// A window that settles a whole-shard failure (<see cref="ShardVoid"/>) makes the failed shard's void slots no-ops.
/// If records of the failed shard at those slots were released already, a <see cref="MisSpeculatedRange"/> from the
/// first of them to the release point follows, then the records of that range that stay (other shards') once more,
/// in GSN order: the consumer rolls back to just before the range and applies them again. Released records are kept
/// for this until their GSNs are confirmed (never confirmed records are the only ones a failure can take back).
/// </remarks>
public sealed class LogMerger
{
    private readonly WindowHistory _history = new();
    private readonly Queue<(long Gsn, int Shard, long Slot, ReadOnlyMemory<byte> Payload, string? Tag)> _unconfirmed = new();
    private readonly List<SpecLogEvent> _notices = [];
    private Queue<(ShardEntry Entry, long ReceivedMicros)>[] _entries;
    private readonly Queue<(long Gsn, long ReleasedMicros)> _released = new();
    private long[] _expectedSlot;
    private long _confirmedSeen;
    private long _confirmedEmitted;

    /// <summary>Starts merging at <paramref name="fromGsn"/> with the windows known so far.</summary>
    public LogMerger(int shardCount, long fromGsn, WindowSlice windows)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(shardCount, 1);
        ArgumentNullException.ThrowIfNull(windows);
        windows.AddTo(_history);
        if (fromGsn < 0 || fromGsn > _history.KnownEndGsn)
        {
            throw new ArgumentOutOfRangeException(nameof(fromGsn), fromGsn, $"Subscriptions can start in [0, {_history.KnownEndGsn}] now.");
        }

        _entries = new Queue<(ShardEntry, long)>[shardCount];
        _expectedSlot = new long[shardCount];
        for (var s = 0; s < shardCount; s++)
        {
            _entries[s] = new Queue<(ShardEntry, long)>();
            _expectedSlot[s] = _history.SlotsBefore(s, fromGsn);
        }

        NextGsn = fromGsn;
        _confirmedEmitted = fromGsn;
        FollowShardSet();
    }

    /// <summary>
    /// The shards merged: those the merger started with, and those the windows it learned since name (shards added
    /// while it runs). The caller subscribes to the ones it lacks, from <see cref="ExpectedSlot"/>.
    /// </summary>
    public int ShardCount => _expectedSlot.Length;

    /// <summary>Makes room for shards the windows name beyond those merged so far (added shards; none of their slots were released yet).</summary>
    private void FollowShardSet()
    {
        var named = _history.Last?.ShardCount ?? 0;
        if (named <= _expectedSlot.Length)
        {
            return;
        }

        var from = _expectedSlot.Length;
        var expected = new long[named];
        Array.Copy(_expectedSlot, expected, from);
        Array.Resize(ref _entries, named);
        for (var s = from; s < named; s++)
        {
            _entries[s] = new Queue<(ShardEntry, long)>();
            expected[s] = _history.SlotsBefore(s, NextGsn);
        }

        Volatile.Write(ref _expectedSlot, expected);
    }

    /// <summary>The next GSN to be released.</summary>
    public long NextGsn { get; private set; }

    /// <summary>The slot from which shard <paramref name="shard"/> must push next.</summary>
    public long ExpectedSlot(int shard)
    {
        var expected = Volatile.Read(ref _expectedSlot);
        return shard < expected.Length ? Volatile.Read(ref expected[shard]) : 0;
    }

    /// <summary>Takes one shard push. Entries below the expected slot (a repeated push) are ignored.</summary>
    public void Add(ShardEventBatch batch) => Add(batch, 0);

    /// <summary>
    /// Takes one shard push that arrived at <paramref name="receivedMicros"/> (UTC µs, for the order-wait stage
    /// latency; 0 if unmeasured). Entries below the expected slot (a repeated push) are ignored.
    /// </summary>
    public void Add(ShardEventBatch batch, long receivedMicros)
    {
        ArgumentNullException.ThrowIfNull(batch);
        var s = batch.Shard;
        var known = _history.Count;
        new WindowSlice(batch.Base, batch.Windows).AddTo(_history);
        FollowShardSet();
        for (var w = Math.Max(known, _history.First); w < _history.Count; w++)
        {
            foreach (var gone in _history[w].Voids)
            {
                if (!gone.IsRejoin)
                {
                    TakeBack(gone.Shard); // a rejoin's void slots had no position before: nothing of them was released
                }
            }
        }

        _confirmedSeen = Math.Max(_confirmedSeen, batch.ConfirmedGsn);
        var expected = _expectedSlot[s];
        if (batch.FromSlot > expected)
        {
            throw new InvalidOperationException($"Shard {s} pushed from slot {batch.FromSlot} but slot {expected} was expected: a push was lost.");
        }

        foreach (var e in batch.Entries)
        {
            var end = e.Slot + e.SlotCount;
            if (end <= expected)
            {
                continue;
            }

            var entry = e.Slot < expected ? e with { Slot = expected, NoOpSlots = end - expected } : e;
            _entries[s].Enqueue((entry, receivedMicros));
            expected = end;
        }

        Volatile.Write(ref _expectedSlot[s], Math.Max(expected, _expectedSlot[s]));
    }

    /// <summary>
    /// Shard <paramref name="failed"/> failed: its queued entries at void slots go, and if records of it there were
    /// released, the mis-speculation notice and the range's other records are queued for the next <see cref="Drain"/>.
    /// </summary>
    private void TakeBack(int failed)
    {
        var (from, to, _) = _history.FailureVoidOf(failed)!.Value;
        if (failed < _entries.Length)
        {
            var kept = _entries[failed].Where(x => x.Entry.Slot < from)
                .Select(x => x.Entry.Slot + x.Entry.SlotCount > from ? (x.Entry with { NoOpSlots = x.Entry.IsNoOp ? from - x.Entry.Slot : x.Entry.NoOpSlots }, x.ReceivedMicros) : x)
                .ToList();
            _entries[failed] = new Queue<(ShardEntry, long)>(kept);
            if (_expectedSlot[failed] >= from)
            {
                // Everything before the void was pushed; the void itself needs no push. (Otherwise the slots before it,
                // which are in the log, still come: from the shard, once its storage is back.)
                Volatile.Write(ref _expectedSlot[failed], Math.Max(_expectedSlot[failed], to));
            }
        }

        var first = _unconfirmed.Where(r => r.Shard == failed && r.Slot >= from && r.Slot < to).Select(r => r.Gsn).DefaultIfEmpty(-1).Min();
        if (first < 0)
        {
            return; // nothing of its void slots was released: they are simply skipped from now on
        }

        _notices.Add(new MisSpeculatedRange(first, NextGsn, failed));
        var stay = _unconfirmed.Where(r => r.Gsn >= first && !(r.Shard == failed && r.Slot >= from && r.Slot < to)).ToList();
        foreach (var r in stay)
        {
            _notices.Add(new SpeculativeRecord(r.Gsn, r.Shard, r.Payload, r.Tag));
        }

        var before = _unconfirmed.Where(r => r.Gsn < first).ToList();
        _unconfirmed.Clear();
        foreach (var r in before.Concat(stay))
        {
            _unconfirmed.Enqueue(r);
        }
    }

    /// <summary>Releases every event that can be released now, in order.</summary>
    public void Drain(List<SpecLogEvent> events)
    {
        events.AddRange(_notices);
        _notices.Clear();
        while (NextGsn < _history.KnownEndGsn)
        {
            var (shard, slot) = _history.Locate(NextGsn);
            if (_history.IsVoid(shard, slot))
            {
                NextGsn++; // a failed shard's void slot: a no-op, whatever it held
                continue;
            }

            if (slot >= _expectedSlot[shard])
            {
                break; // the owner has not said yet what is in this slot
            }

            var queue = _entries[shard];
            while (queue.TryPeek(out var head) && head.Entry.Slot + head.Entry.SlotCount <= slot)
            {
                queue.Dequeue();
            }

            if (!queue.TryPeek(out var item) || item.Entry.Slot > slot)
            {
                throw new InvalidOperationException($"Shard {shard} slot {slot} (GSN {NextGsn}) is missing from its pushes.");
            }

            var entry = item.Entry;
            if (!entry.IsNoOp)
            {
                if (item.ReceivedMicros > 0 && SpecLogMetrics.StageDuration.Enabled)
                {
                    var now = SpecLogMetrics.NowMicros();
                    SpecLogMetrics.RecordStage(SpecLogMetrics.Stages.OrderWait, item.ReceivedMicros, now);
                    if (_released.Count == 65_536)
                    {
                        _released.Dequeue(); // confirmations stopped coming; keep the measurement bounded
                    }

                    _released.Enqueue((NextGsn, now));
                }

                events.Add(new SpeculativeRecord(NextGsn, shard, entry.Payload, entry.Tag));
                _unconfirmed.Enqueue((NextGsn, shard, slot, entry.Payload, entry.Tag));
                queue.Dequeue();
                NextGsn++;
                continue;
            }

            // Skip the no-op slots of this shard that are contiguous in GSN space: the rest of its run in this cut
            // (blocked layout); in an interleaved cut the next position usually belongs to another shard.
            var w = _history.WindowOfGsn(NextGsn);
            var cfg = _history[w];
            if (cfg.Layout == CutLayout.Interleaved)
            {
                NextGsn++;
                continue;
            }

            var q = cfg.QuotaOf(shard);
            var inCut = (slot - _history.SlotStart(w, shard)) % q;
            var run = Math.Min(q - inCut, entry.Slot + entry.SlotCount - slot);
            NextGsn += run;
        }

        var confirmed = Math.Min(_confirmedSeen, NextGsn);
        if (confirmed > _confirmedEmitted)
        {
            if (_released.Count > 0)
            {
                var now = SpecLogMetrics.NowMicros();
                while (_released.TryPeek(out var r) && r.Gsn < confirmed)
                {
                    _released.Dequeue();
                    SpecLogMetrics.RecordStage(SpecLogMetrics.Stages.ConfirmWait, r.ReleasedMicros, now);
                }
            }

            events.Add(new ConfirmedRange(_confirmedEmitted, confirmed));
            _confirmedEmitted = confirmed;
            while (_unconfirmed.TryPeek(out var r) && r.Gsn < confirmed)
            {
                _unconfirmed.Dequeue();
            }
        }
    }
}
