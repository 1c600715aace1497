using System.Diagnostics;
using System.Globalization;
using HdrHistogram;

namespace SpecLog.Bench.Reporting;

/// <summary>
/// Percentiles of one latency distribution, in microseconds. Built from an HdrHistogram whose values are
/// <see cref="TimeSpan"/> ticks (100 ns): record with <see cref="NewHistogram"/> and <see cref="RecordSince"/>
/// (or <c>Stopwatch.GetElapsedTime(start).Ticks</c>), then call <see cref="FromTicks"/>.
/// </summary>
public sealed record LatencySummary(long Count, double MeanUs, double P50Us, double P90Us, double P99Us, double P999Us, double MaxUs)
{
    private const double TicksPerMicrosecond = TimeSpan.TicksPerMillisecond / 1000.0;

    /// <summary>Column headings matching <see cref="ToRow"/>: the label column, then samples and the percentiles in ms.</summary>
    public static string[] Columns(string labelColumn) =>
        [labelColumn, "samples", "p50 (ms)", "p90 (ms)", "p99 (ms)", "p99.9 (ms)", "max (ms)"];

    /// <summary>A histogram for tick values up to 60 s with 3 significant digits (0.1 % value precision).</summary>
    public static LongHistogram NewHistogram() => new(TimeSpan.FromSeconds(60).Ticks, 3);

    /// <summary>Records the time since <paramref name="startTimestamp"/> (a <see cref="Stopwatch.GetTimestamp"/> value) in ticks, clamped to the histogram's range.</summary>
    public static void RecordSince(LongHistogram histogram, long startTimestamp)
    {
        long ticks = Stopwatch.GetElapsedTime(startTimestamp).Ticks;
        histogram.RecordValue(Math.Clamp(ticks, 0, histogram.HighestTrackableValue));
    }

    /// <summary>Records a duration in <see cref="TimeSpan"/> ticks, clamped; locks the histogram, so several threads may record into it.</summary>
    public static void RecordTicks(LongHistogram histogram, long ticks)
    {
        lock (histogram)
        {
            histogram.RecordValue(Math.Clamp(ticks, 0, histogram.HighestTrackableValue));
        }
    }

    /// <summary>Records a duration measured in <see cref="Stopwatch"/> ticks (converted to TimeSpan ticks), clamped; one recording thread.</summary>
    public static void RecordStopwatchTicks(LongHistogram histogram, long stopwatchTicks) =>
        histogram.RecordValue(Math.Clamp((long)(stopwatchTicks * ((double)TimeSpan.TicksPerSecond / Stopwatch.Frequency)), 0, histogram.HighestTrackableValue));

    /// <summary>Summarises a histogram recorded in <see cref="TimeSpan"/> ticks. An empty histogram gives NaN percentiles.</summary>
    public static LatencySummary FromTicks(HistogramBase histogram)
    {
        if (histogram.TotalCount == 0)
        {
            return new LatencySummary(0, double.NaN, double.NaN, double.NaN, double.NaN, double.NaN, double.NaN);
        }

        return new LatencySummary(
            histogram.TotalCount,
            histogram.GetMean() / TicksPerMicrosecond,
            histogram.GetValueAtPercentile(50) / TicksPerMicrosecond,
            histogram.GetValueAtPercentile(90) / TicksPerMicrosecond,
            histogram.GetValueAtPercentile(99) / TicksPerMicrosecond,
            histogram.GetValueAtPercentile(99.9) / TicksPerMicrosecond,
            histogram.GetMaxValue() / TicksPerMicrosecond);
    }

    /// <summary>Microseconds formatted as milliseconds with 3 decimals ("0.042"), or "n/a".</summary>
    public static string Ms(double microseconds) =>
        double.IsFinite(microseconds) ? (microseconds / 1000).ToString("F3", CultureInfo.InvariantCulture) : "n/a";

    /// <summary>Median in ms, formatted.</summary>
    public string P50Ms => Ms(P50Us);

    /// <summary>90th percentile in ms, formatted.</summary>
    public string P90Ms => Ms(P90Us);

    /// <summary>99th percentile in ms, formatted.</summary>
    public string P99Ms => Ms(P99Us);

    /// <summary>99.9th percentile in ms, formatted.</summary>
    public string P999Ms => Ms(P999Us);

    /// <summary>Maximum in ms, formatted.</summary>
    public string MaxMs => Ms(MaxUs);

    /// <summary>A table row for <see cref="Columns"/>: label, samples, p50, p90, p99, p99.9, max (ms).</summary>
    public string[] ToRow(string label) =>
        [label, Count.ToString(CultureInfo.InvariantCulture), P50Ms, P90Ms, P99Ms, P999Ms, MaxMs];

    /// <summary>
    /// Adds <c>{prefix}_count</c>, <c>{prefix}_mean_us</c>, <c>{prefix}_p50_us</c>, <c>{prefix}_p90_us</c>,
    /// <c>{prefix}_p99_us</c>, <c>{prefix}_p999_us</c> and <c>{prefix}_max_us</c> to the report's figures.
    /// </summary>
    public void AddFigures(BenchReport report, string prefix)
    {
        report.SetFigure($"{prefix}_count", Count);
        report.SetFigure($"{prefix}_mean_us", Round(MeanUs));
        report.SetFigure($"{prefix}_p50_us", Round(P50Us));
        report.SetFigure($"{prefix}_p90_us", Round(P90Us));
        report.SetFigure($"{prefix}_p99_us", Round(P99Us));
        report.SetFigure($"{prefix}_p999_us", Round(P999Us));
        report.SetFigure($"{prefix}_max_us", Round(MaxUs));
    }

    /// <summary>"p50 0.042 ms, p90 …, p99 …, p99.9 …, max … (n=5000)".</summary>
    public override string ToString() =>
        $"p50 {P50Ms} ms, p90 {P90Ms}, p99 {P99Ms}, p99.9 {P999Ms}, max {MaxMs} (n={Count.ToString(CultureInfo.InvariantCulture)})";

    // Tick resolution is 0.1 us; one decimal keeps the JSON honest without float noise.
    private static double Round(double microseconds) => double.IsFinite(microseconds) ? Math.Round(microseconds, 1) : microseconds;
}
