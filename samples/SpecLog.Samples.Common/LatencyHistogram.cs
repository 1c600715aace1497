using HdrHistogram;

namespace SpecLog.Samples;

/// <summary>End-to-end latencies in microseconds (thread-safe), and their percentiles.</summary>
public sealed class LatencyHistogram
{
    private readonly LongHistogram _histogram = new(TimeSpan.FromMinutes(5).Ticks / 10, 3);
    private readonly object _gate = new();

    /// <summary>How many were recorded.</summary>
    public long Count
    {
        get
        {
            lock (_gate)
            {
                return _histogram.TotalCount;
            }
        }
    }

    /// <summary>Records one latency.</summary>
    public void Record(long micros)
    {
        lock (_gate)
        {
            _histogram.RecordValue(Math.Clamp(micros, 1, _histogram.HighestTrackableValue));
        }
    }

    /// <summary>The percentile in milliseconds.</summary>
    public double Ms(double percentile)
    {
        lock (_gate)
        {
            return _histogram.TotalCount == 0 ? double.NaN : _histogram.GetValueAtPercentile(percentile) / 1000.0;
        }
    }

    /// <summary>UTC microseconds now, as payload timestamps carry them.</summary>
    public static long NowMicros() => DateTime.UtcNow.Ticks / 10;
}
