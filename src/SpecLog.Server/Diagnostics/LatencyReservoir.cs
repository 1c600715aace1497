namespace SpecLog.Server.Diagnostics;

/// <summary>
/// A shard's most recent latencies (a ring of <see cref="Capacity"/> samples, in µs), summarised as percentiles for its
/// status and the dashboard. Recording is one array store; the percentiles are computed only when asked.
/// </summary>
internal sealed class LatencyReservoir
{
    /// <summary>Samples kept: enough for a stable p99, few enough to sort on every status call.</summary>
    public const int Capacity = 512;

    private readonly long[] _samples = new long[Capacity];
    private long _count;

    /// <summary>Records one latency, from <paramref name="startMicros"/> to <paramref name="endMicros"/>; ignored when the start is unknown (0).</summary>
    public void Record(long startMicros, long endMicros)
    {
        if (startMicros <= 0 || endMicros < startMicros)
        {
            return;
        }

        _samples[_count % Capacity] = endMicros - startMicros;
        _count++;
    }

    /// <summary>The percentiles of the samples held, or null when there are none.</summary>
    public RecentLatency? Summarise()
    {
        var n = (int)Math.Min(_count, Capacity);
        if (n == 0)
        {
            return null;
        }

        var sorted = _samples[..n];
        Array.Sort(sorted);
        return new RecentLatency(n, At(sorted, 0.50), At(sorted, 0.99));
    }

    private static double At(long[] sorted, double quantile) =>
        sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(quantile * sorted.Length) - 1)] / 1000.0;
}
