using System.Buffers.Binary;
using System.Diagnostics;
using HdrHistogram;
using SpecLog.Bench.Reporting;
using SpecLog.Client;

namespace SpecLog.Bench.Workloads;

/// <summary>
/// Consumes a subscription of records that carry, in their first 8 bytes, the <see cref="Stopwatch"/> timestamp of
/// their append call and in byte 8 a "measured" flag: records each measured record's delivery latency and, if asked,
/// the latency to the <see cref="ConfirmedRange"/> that covers it. Ends quietly when <c>stop</c> is cancelled.
/// </summary>
internal static class DeliveryProbe
{
    /// <summary>Bytes of the header: the timestamp and the flag.</summary>
    public const int HeaderBytes = 9;

    public static async Task RunAsync(IAsyncEnumerable<SpecLogEvent> events, LongHistogram delivery, LongHistogram? confirmed, CancellationToken stop)
    {
        var pending = new Queue<(long Gsn, long Sent)>();
        try
        {
            await foreach (var e in events)
            {
                var now = Stopwatch.GetTimestamp();
                if (e is SpeculativeRecord rec && rec.Payload.Length >= HeaderBytes && rec.Payload.Span[8] == 1)
                {
                    var sent = BinaryPrimitives.ReadInt64LittleEndian(rec.Payload.Span);
                    LatencySummary.RecordTicks(delivery, Stopwatch.GetElapsedTime(sent, now).Ticks);
                    if (confirmed is not null)
                    {
                        pending.Enqueue((rec.Gsn, sent));
                    }
                }
                else if (e is ConfirmedRange range && confirmed is not null)
                {
                    while (pending.Count > 0 && pending.Peek().Gsn < range.ToGsn)
                    {
                        LatencySummary.RecordTicks(confirmed, Stopwatch.GetElapsedTime(pending.Dequeue().Sent, now).Ticks);
                    }
                }
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
        }
    }
}
