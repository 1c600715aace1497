using System.Diagnostics;
using SpecLog.Bench.Scenarios;

namespace SpecLog.Bench.Workloads;

/// <summary>
/// Issues open-loop operations at their scheduled times from one dedicated thread that sleeps in short steps
/// (nanosleep, <see cref="Step"/>). <c>await Task.Delay(1)</c> wakes every 4 ms on this kind of host, not every
/// millisecond, so appenders paced with it issued their operations in bursts (80 appends at once every 4 ms at
/// 20,000/s): a load no independent clients produce, which queued calls behind each other and made shards fill
/// several cuts at once. Appender <c>a</c> of <c>n</c> issues its k-th operation at
/// <c>start + (k + a / n) / ratePerAppender</c>, as before (so operation <c>k·n + a</c> of the merged schedule is due
/// at <c>start + (k·n + a) / rate</c>); the pacer issues each within about one step of that time, without spinning a
/// core (a pacer that spins takes one of this machine's two cores from the log).
/// </summary>
internal static class OpenLoopPacer
{
    /// <summary>How long the pacer thread sleeps between checks.</summary>
    public static readonly TimeSpan Step = TimeSpan.FromMicroseconds(100);

    /// <summary>
    /// Calls <paramref name="issue"/>(appender, its operation number k, scheduled timestamp) for every operation due in [start, end) and returns
    /// once the last one is issued. <paramref name="issue"/> runs on the pacer thread and must not block (start the
    /// operation and return).
    /// </summary>
    public static Task RunAsync(int appenders, double ratePerAppender, long start, long end, Action<int, long, long> issue)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(appenders, 1);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(ratePerAppender);
        return Task.Factory.StartNew(() => Run(appenders, ratePerAppender, start, end, issue), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
    }

    private static void Run(int appenders, double ratePerAppender, long start, long end, Action<int, long, long> issue)
    {
        var interval = Stopwatch.Frequency / ratePerAppender;
        var next = new double[appenders];
        var count = new long[appenders];
        for (var a = 0; a < appenders; a++)
        {
            next[a] = start + interval * a / appenders;
        }

        var step = (long)(Step.TotalMilliseconds * 1_000_000);
        while (true)
        {
            var now = Stopwatch.GetTimestamp();
            var earliest = double.MaxValue;
            for (var a = 0; a < appenders; a++)
            {
                while (next[a] <= now && next[a] < end)
                {
                    issue(a, count[a]++, (long)next[a]);
                    next[a] += interval;
                }

                earliest = Math.Min(earliest, next[a]);
            }

            if (earliest >= end)
            {
                return;
            }

            Native.Nap(step);
        }
    }
}
