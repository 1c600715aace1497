namespace SpecLog.Consumer;

/// <summary>
/// A list that is appended at the back, released from the front and cut from any index on: the shape of an
/// unconfirmed window. Releasing from the front is O(1) (the dead prefix is compacted when it outgrows the live part).
/// </summary>
internal sealed class SlidingList<T>
{
    private readonly List<T> _items = [];
    private int _head;

    public int Count => _items.Count - _head;

    public T this[int index] => _items[_head + index];

    public void Add(T item) => _items.Add(item);

    /// <summary>Replaces the last item.</summary>
    public void ReplaceLast(T item) => _items[^1] = item;

    /// <summary>Drops the first <paramref name="count"/> items.</summary>
    public void RemoveFront(int count)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(count, Count);
        _head += count;
        if (_head > 64 && _head > _items.Count / 2)
        {
            _items.RemoveRange(0, _head);
            _head = 0;
        }
    }

    /// <summary>Drops every item from index <paramref name="index"/> on.</summary>
    public void TruncateFrom(int index)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(index, Count);
        _items.RemoveRange(_head + index, Count - index);
    }

    /// <summary>The index of the first item for which <paramref name="atOrAfter"/> holds (items are ordered so that it holds for a suffix), or <see cref="Count"/>.</summary>
    public int FirstWhere(Func<T, bool> atOrAfter)
    {
        int lo = 0, hi = Count;
        while (lo < hi)
        {
            var mid = (lo + hi) >>> 1;
            if (atOrAfter(this[mid]))
            {
                hi = mid;
            }
            else
            {
                lo = mid + 1;
            }
        }

        return lo;
    }
}
