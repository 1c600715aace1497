using System.Buffers.Binary;
using SpecLog.Storage;

namespace SpecLog.Server.Grains;

/// <summary>The shard's delivery side: pushes to subscribers and reads of durable entries, from the recent-entry cache or from disk.</summary>
internal sealed partial class ShardGrain
{
    /// <summary>How many log entries a push may look at per entry it may send (see <see cref="Collect"/>).</summary>
    private const int ScanFactor = 16;

    private void PumpAll()
    {
        foreach (var sub in _subscribers.Values)
        {
            Pump(sub);
        }
    }

    private void Pump(Subscriber sub)
    {
        if (sub.InFlight)
        {
            return;
        }

        if (_trim is { } trim && sub.NextSlot < trim.Slot)
        {
            // Its next records were trimmed away: it is dropped, and registering again from there fails with LogTrimmedException.
            _subscribers.Remove(sub.Id);
            LogSubscriberTrimmed(logger, _shard, sub.Id, sub.NextSlot, trim.Gsn);
            return;
        }

        var limit = _core.DeliverableSlots;
        var confirmed = _core.CommittedGsn;
        var windows = _core.History.Count;
        if (sub.NextSlot >= limit && confirmed == sub.ConfirmedSent && windows == sub.KnownWindows)
        {
            return;
        }

        var toSlot = sub.NextSlot;
        ShardEntry[] entries = sub.NextSlot < limit
            ? Collect(sub.NextSlot, limit, _options.PushMaxEntries, _options.PushMaxBytes, out toSlot, sub.Filter)
            : [];
        var newWindows = sub.KnownWindows < windows ? WindowSlice.From(_core.History, sub.KnownWindows) : WindowSlice.Empty;
        var now = NowMicros();
        var batch = new ShardEventBatch(_shard, sub.NextSlot, toSlot, entries, newWindows.Windows, confirmed, 0, 0, now, newWindows.Base);
        if (toSlot > sub.NextSlot)
        {
            var durableAt = _durableMarks.FirstCovering(toSlot);
            SpecLogMetrics.RecordStage(SpecLogMetrics.Stages.DeliverWait, durableAt, now);
            _deliveryLatency.Record(durableAt, now);
        }

        _pushes++;
        SpecLogMetrics.Pushes.Add(1);
        sub.InFlight = true;
        sub.PushStartedMicros = now;
        PushAsync(sub, batch, windows, sub.Generation).Ignore();
    }

    private async Task PushAsync(Subscriber sub, ShardEventBatch batch, int windows, long generation)
    {
        try
        {
            await sub.Observer.OnShardEvents(batch);
            if (generation != sub.Generation)
            {
                return; // given up as lost meanwhile: a later push carries on from where the subscriber stood
            }

            sub.NextSlot = batch.ToSlot;
            sub.KnownWindows = windows;
            sub.ConfirmedSent = batch.ConfirmedGsn;
            sub.InFlight = false;
        }
        catch (Exception e)
        {
            // The subscriber is gone, broken or not reading (stalled); it resubscribes from its own position if it is
            // still alive, so the shard keeps nothing for it meanwhile.
            if (_subscribers.TryGetValue(sub.Id, out var registered) && ReferenceEquals(registered, sub) && generation == sub.Generation)
            {
                if (e is SubscriberStalledException)
                {
                    LogSubscriberStalled(logger, _shard, sub.Id, sub.NextSlot);
                }
                else
                {
                    LogSubscriberDropped(logger, e, _shard, sub.Id);
                }

                _subscribers.Remove(sub.Id);
            }

            return;
        }

        if (_subscribers.TryGetValue(sub.Id, out var current) && ReferenceEquals(current, sub))
        {
            Pump(sub);
        }
    }

    /// <summary>
    /// Consecutive entries covering slots [from, limit), cut to the budget; no-op runs are clipped to the range. With a
    /// <paramref name="filter"/>, records it refuses are sent as skipped slots, merged into the no-op runs next to them;
    /// a push then looks at no more than <see cref="ScanFactor"/> × <paramref name="maxEntries"/> log entries, so a
    /// filter that matches little never makes one grain turn read the whole log.
    /// </summary>
    private ShardEntry[] Collect(long from, long limit, int maxEntries, int maxBytes, out long toSlot, Func<string?, bool>? filter = null)
    {
        var result = new List<ShardEntry>();
        var bytes = 0;
        var scan = (long)maxEntries * ScanFactor;
        var slot = from;
        if (slot < _cache.FirstSlot || _cache.Count == 0)
        {
            slot = CollectFromDisk(slot, Math.Min(limit, _cache.Count == 0 ? limit : _cache.FirstSlot), result, maxEntries, maxBytes, ref bytes, ref scan, filter);
        }

        if (slot < limit && result.Count < maxEntries && bytes < maxBytes && scan > 0)
        {
            var pos = _cache.Find(slot);
            while (pos >= 0 && pos < _cache.Count && slot < limit && result.Count < maxEntries && bytes < maxBytes && scan-- > 0)
            {
                ref readonly var e = ref _cache[pos];
                Emit(e.Slot, e.SlotCount, e.Payload, e.Tag, slot, limit, result, ref bytes, filter);
                slot = Math.Min(e.SlotEnd, limit);
                pos++;
            }
        }

        toSlot = slot;
        return [.. result];
    }

    private long CollectFromDisk(long from, long limit, List<ShardEntry> result, int maxEntries, int maxBytes, ref int bytes, ref long scan, Func<string?, bool>? filter)
    {
        // Start at the last sparse-index checkpoint at or before the slot, and walk forward.
        int lo = 0, hi = _sparseIndex.Count - 1, found = 0;
        while (lo <= hi)
        {
            var mid = (lo + hi) >>> 1;
            if (_sparseIndex[mid].Slot <= from)
            {
                found = mid;
                lo = mid + 1;
            }
            else
            {
                hi = mid - 1;
            }
        }

        var (slot, index) = _sparseIndex.Count == 0 ? (_baseSlot, _log.FirstIndex) : _sparseIndex[found];
        var position = from;
        while (position < limit && result.Count < maxEntries && bytes < maxBytes && index < _log.DurableIndex && scan > 0)
        {
            var chunk = _log.ReadRange(index, 256);
            if (chunk.Count == 0)
            {
                break;
            }

            foreach (var e in chunk)
            {
                var (count, payload, tag) = Decode(e);
                if (slot + count > position && position < limit && result.Count < maxEntries && bytes < maxBytes && scan-- > 0)
                {
                    Emit(slot, count, payload, tag, position, limit, result, ref bytes, filter);
                    position = Math.Min(slot + count, limit);
                }

                slot += count;
                index++;
            }
        }

        return position;
    }

    private void Emit(long entrySlot, long count, byte[]? payload, string? tag, long from, long limit, List<ShardEntry> result, ref int bytes, Func<string?, bool>? filter)
    {
        if (payload is null || (filter is not null && !filter(tag)))
        {
            // A no-op run, or a record the subscriber's filter skips: positions without a record, merged with the run before.
            var start = Math.Max(entrySlot, from);
            var end = Math.Min(entrySlot + count, limit);
            if (result.Count > 0 && result[^1] is { IsNoOp: true } last && last.Slot + last.NoOpSlots == start)
            {
                result[^1] = last with { NoOpSlots = end - last.Slot };
            }
            else
            {
                result.Add(new ShardEntry(start, -1, end - start, null));
            }

            return;
        }

        result.Add(new ShardEntry(entrySlot, _core.History.GsnOfSlot(_shard, entrySlot), 0, payload, tag));
        bytes += payload.Length;
    }

    private static (long Count, byte[]? Payload, string? Tag) Decode(in StoredEntry e)
    {
        switch (e.Kind)
        {
            case RecordKind:
                return (1, e.Payload.ToArray(), null);
            case IdentifiedRecordKind:
                return (1, e.Payload[AppendIdBytes..].ToArray(), null);
            case TaggedRecordKind:
                var (tag, payload) = ReadTagged(e.Payload);
                return (1, payload.ToArray(), tag);
            case NoOpKind:
                return (BinaryPrimitives.ReadInt64LittleEndian(e.Payload.Span), null, null);
            default:
                throw new InvalidDataException($"Unknown entry kind {e.Kind} at storage index {e.Index}.");
        }
    }

    private sealed class Subscriber(Guid id, IShardObserver observer, long nextSlot, Func<string?, bool>? filter)
    {
        public Guid Id { get; } = id;

        /// <summary>The subscription's filter (null: every record).</summary>
        public Func<string?, bool>? Filter { get; } = filter;

        public IShardObserver Observer { get; set; } = observer;

        public long NextSlot { get; set; } = nextSlot;

        public int KnownWindows { get; set; }

        public long ConfirmedSent { get; set; } = -1;

        public bool InFlight { get; set; }

        /// <summary>When the push in flight was sent.</summary>
        public long PushStartedMicros { get; set; }

        /// <summary>When the subscriber last refreshed its registration.</summary>
        public long RefreshedMicros { get; set; }

        /// <summary>Counts pushes given up as lost: the answer of an older one changes nothing.</summary>
        public long Generation { get; set; }
    }
}
