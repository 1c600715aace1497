namespace SpecLog.Bench.Workloads;

/// <summary>
/// When a subscriber saw each <c>ConfirmedRange</c> (its end GSN and a Stopwatch timestamp), in arrival order, so that
/// the moment any record's GSN was confirmed can be looked up afterwards. Thread-safe: the subscription adds while
/// the load generator reads <see cref="LastEnd"/>.
/// </summary>
internal sealed class ConfirmationTimes
{
    private readonly List<long> _ends = []; // ConfirmedRange.ToGsn, increasing
    private readonly List<long> _times = [];

    /// <summary>Records that GSNs below <paramref name="toGsn"/> were seen confirmed at <paramref name="timestamp"/>.</summary>
    public void Add(long toGsn, long timestamp)
    {
        lock (_ends)
        {
            _ends.Add(toGsn);
            _times.Add(timestamp);
        }
    }

    /// <summary>The end of the latest confirmation seen (0 before any).</summary>
    public long LastEnd
    {
        get
        {
            lock (_ends)
            {
                return _ends.Count == 0 ? 0 : _ends[^1];
            }
        }
    }

    /// <summary>The timestamp of the first confirmation covering <paramref name="gsn"/>, or null if none did.</summary>
    public long? TimeOf(long gsn)
    {
        lock (_ends)
        {
            int lo = 0, hi = _ends.Count;
            while (lo < hi)
            {
                var mid = (lo + hi) / 2;
                if (_ends[mid] > gsn)
                {
                    hi = mid;
                }
                else
                {
                    lo = mid + 1;
                }
            }

            return lo < _ends.Count ? _times[lo] : null;
        }
    }
}
