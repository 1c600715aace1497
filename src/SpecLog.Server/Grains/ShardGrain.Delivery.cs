using System.Buffers.Binary;
using SpecLog.Storage;

namespace SpecLog.Server.Grains;

/// <summary>The shard's delivery side: pushes to subscribers and reads of durable entries, from the recent-entry cache or from disk.</summary>
internal sealed partial class ShardGrain
{
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
            ? Collect(sub.NextSlot, limit, _options.PushMaxEntries, _options.PushMaxBytes, out toSlot)
            : [];
        var newWindows = sub.KnownWindows < windows ? WindowSlice.From(_core.History, sub.KnownWindows) : WindowSlice.Empty;
        var now = NowMicros();
        var batch = new ShardEventBatch(_shard, sub.NextSlot, toSlot, entries, newWindows.Windows, confirmed, 0, 0, now, newWindows.Base);
        if (toSlot > sub.NextSlot)
        {
            SpecLogMetrics.RecordStage(SpecLogMetrics.Stages.DeliverWait, _durableMarks.FirstCovering(toSlot), now);
        }

        _pushes++;
        SpecLogMetrics.Pushes.Add(1);
        sub.InFlight = true;
        PushAsync(sub, batch, windows).Ignore();
    }

    private async Task PushAsync(Subscriber sub, ShardEventBatch batch, int windows)
    {
        try
        {
            await sub.Observer.OnShardEvents(batch);
            sub.NextSlot = batch.ToSlot;
            sub.KnownWindows = windows;
            sub.ConfirmedSent = batch.ConfirmedGsn;
            sub.InFlight = false;
        }
        catch (Exception e)
        {
            // The subscriber is gone, broken or not reading (stalled); it resubscribes from its own position if it is
            // still alive, so the shard keeps nothing for it meanwhile.
            if (_subscribers.TryGetValue(sub.Id, out var registered) && ReferenceEquals(registered, sub))
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

    /// <summary>Consecutive entries covering slots [from, limit), cut to the budget; no-op runs are clipped to the range.</summary>
    private ShardEntry[] Collect(long from, long limit, int maxEntries, int maxBytes, out long toSlot)
    {
        var result = new List<ShardEntry>();
        var bytes = 0;
        var slot = from;
        if (slot < _cache.FirstSlot || _cache.Count == 0)
        {
            slot = CollectFromDisk(slot, Math.Min(limit, _cache.Count == 0 ? limit : _cache.FirstSlot), result, maxEntries, maxBytes, ref bytes);
        }

        if (slot < limit && result.Count < maxEntries && bytes < maxBytes)
        {
            var pos = _cache.Find(slot);
            while (pos >= 0 && pos < _cache.Count && slot < limit && result.Count < maxEntries && bytes < maxBytes)
            {
                ref readonly var e = ref _cache[pos];
                Emit(e.Slot, e.SlotCount, e.Payload, slot, limit, result, ref bytes);
                slot = Math.Min(e.SlotEnd, limit);
                pos++;
            }
        }

        toSlot = slot;
        return [.. result];
    }

    private long CollectFromDisk(long from, long limit, List<ShardEntry> result, int maxEntries, int maxBytes, ref int bytes)
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
        while (position < limit && result.Count < maxEntries && bytes < maxBytes && index < _log.DurableIndex)
        {
            var chunk = _log.ReadRange(index, 256);
            if (chunk.Count == 0)
            {
                break;
            }

            foreach (var e in chunk)
            {
                var (count, payload) = Decode(e);
                if (slot + count > position && position < limit && result.Count < maxEntries && bytes < maxBytes)
                {
                    Emit(slot, count, payload, position, limit, result, ref bytes);
                    position = Math.Min(slot + count, limit);
                }

                slot += count;
                index++;
            }
        }

        return position;
    }

    private void Emit(long entrySlot, long count, byte[]? payload, long from, long limit, List<ShardEntry> result, ref int bytes)
    {
        if (payload is null)
        {
            var start = Math.Max(entrySlot, from);
            var end = Math.Min(entrySlot + count, limit);
            result.Add(new ShardEntry(start, -1, end - start, null));
            return;
        }

        result.Add(new ShardEntry(entrySlot, _core.History.GsnOfSlot(_shard, entrySlot), 0, payload));
        bytes += payload.Length;
    }

    private static (long Count, byte[]? Payload) Decode(in StoredEntry e) => e.Kind switch
    {
        RecordKind => (1, e.Payload.ToArray()),
        IdentifiedRecordKind => (1, e.Payload[AppendIdBytes..].ToArray()),
        NoOpKind => (BinaryPrimitives.ReadInt64LittleEndian(e.Payload.Span), null),
        _ => throw new InvalidDataException($"Unknown entry kind {e.Kind} at storage index {e.Index}."),
    };

    private sealed class Subscriber(Guid id, IShardObserver observer, long nextSlot)
    {
        public Guid Id { get; } = id;

        public IShardObserver Observer { get; set; } = observer;

        public long NextSlot { get; set; } = nextSlot;

        public int KnownWindows { get; set; }

        public long ConfirmedSent { get; set; } = -1;

        public bool InFlight { get; set; }
    }
}
