using System.Diagnostics;

namespace SpecLog.Quickstart;

/// <summary>Latency samples in milliseconds: all of them for the final table, and those of the current second for the live line.</summary>
internal sealed class LatencyRecorder(string name)
{
    private readonly Lock _lock = new();
    private readonly List<double> _all = [];
    private List<double> _interval = [];

    public string Name { get; } = name;

    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _all.Count;
            }
        }
    }

    /// <summary>Records the time from <paramref name="startTimestamp"/> to now.</summary>
    public void AddSince(long startTimestamp) => Add(Stopwatch.GetElapsedTime(startTimestamp).TotalMilliseconds);

    public void Add(double milliseconds)
    {
        lock (_lock)
        {
            _all.Add(milliseconds);
            _interval.Add(milliseconds);
        }
    }

    /// <summary>The samples since the previous call, sorted.</summary>
    public double[] TakeInterval()
    {
        List<double> taken;
        lock (_lock)
        {
            taken = _interval;
            _interval = [];
        }

        var sorted = taken.ToArray();
        Array.Sort(sorted);
        return sorted;
    }

    /// <summary>Every sample, sorted.</summary>
    public double[] Snapshot()
    {
        double[] all;
        lock (_lock)
        {
            all = [.. _all];
        }

        Array.Sort(all);
        return all;
    }

    /// <summary>The <paramref name="quantile"/> (0 to 1) of sorted samples by the nearest-rank method; NaN if there are none.</summary>
    public static double Percentile(double[] sorted, double quantile)
    {
        if (sorted.Length == 0)
        {
            return double.NaN;
        }

        var rank = (int)Math.Ceiling(quantile * sorted.Length);
        return sorted[Math.Clamp(rank - 1, 0, sorted.Length - 1)];
    }
}
