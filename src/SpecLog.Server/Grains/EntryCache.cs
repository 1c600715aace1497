namespace SpecLog.Server.Grains;

/// <summary>One entry of a shard's log as the shard grain tracks it in memory.</summary>
internal readonly record struct CachedEntry(long Slot, long SlotCount, long StorageIndex, byte[]? Payload, string? Tag = null)
{
    public bool IsNoOp => Payload is null;

    public long SlotEnd => Slot + SlotCount;
}

/// <summary>
/// The most recent entries of a shard, in slot order, bounded by bytes: what subscribers and reads usually need
/// without touching the disk. Entries leave from the front once the cache is over its budget and they are durable.
/// </summary>
internal sealed class EntryCache(long maxBytes)
{
    private CachedEntry[] _items = new CachedEntry[1024];
    private int _head;
    private int _count;
    private long _bytes;

    public int Count => _count;

    /// <summary>First slot held (or the next slot to be added, when empty).</summary>
    public long FirstSlot { get; private set; }

    public void Reset(long nextSlot)
    {
        _head = 0;
        _count = 0;
        _bytes = 0;
        FirstSlot = nextSlot;
    }

    public void Add(in CachedEntry entry)
    {
        if (_count == _items.Length)
        {
            var bigger = new CachedEntry[_items.Length * 2];
            for (var i = 0; i < _count; i++)
            {
                bigger[i] = _items[(_head + i) % _items.Length];
            }

            _items = bigger;
            _head = 0;
        }

        if (_count == 0)
        {
            FirstSlot = entry.Slot;
        }

        _items[(_head + _count) % _items.Length] = entry;
        _count++;
        _bytes += 56 + (entry.Payload?.Length ?? 0) + (entry.Tag?.Length ?? 0) * 2;
    }

    /// <summary>Drops old entries while over budget; only entries whose storage index is below <paramref name="durableIndex"/> may go.</summary>
    public void Trim(long durableIndex)
    {
        while (_count > 1 && _bytes > maxBytes)
        {
            ref var first = ref _items[_head];
            if (first.StorageIndex >= durableIndex)
            {
                return;
            }

            _bytes -= 56 + (first.Payload?.Length ?? 0) + (first.Tag?.Length ?? 0) * 2;
            first = default;
            _head = (_head + 1) % _items.Length;
            _count--;
            FirstSlot = _items[_head].Slot;
        }
    }

    /// <summary>The position (0 … Count−1) of the entry holding <paramref name="slot"/>, or -1 if not cached.</summary>
    public int Find(long slot)
    {
        if (_count == 0 || slot < FirstSlot)
        {
            return -1;
        }

        int lo = 0, hi = _count - 1;
        while (lo <= hi)
        {
            var mid = (lo + hi) >>> 1;
            ref readonly var e = ref _items[(_head + mid) % _items.Length];
            if (slot < e.Slot)
            {
                hi = mid - 1;
            }
            else if (slot >= e.SlotEnd)
            {
                lo = mid + 1;
            }
            else
            {
                return mid;
            }
        }

        return -1;
    }

    public ref readonly CachedEntry this[int position] => ref _items[(_head + position) % _items.Length];
}
