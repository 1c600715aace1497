using System.Buffers.Binary;
using System.Diagnostics;
using HdrHistogram;

namespace SpecLog.Bench.Peers;

/// <summary>One log system under the peers workload: appends acknowledged by the system, and one consumer fed by it.</summary>
internal interface IPeerLog : IAsyncDisposable
{
    /// <summary>Row label (e.g. "redis (AOF off)").</summary>
    string Name { get; }

    /// <summary>What the consumer reports, one histogram each: ["delivery"], or ["speculative", "confirmed"] for SpecLog.</summary>
    IReadOnlyList<string> DeliveryKinds { get; }

    /// <summary>Starts the one consumer; it calls <paramref name="delivered"/>(kind, record) for each record it receives.</summary>
    Task StartConsumerAsync(Action<int, ReadOnlySpan<byte>> delivered, CancellationToken cancellationToken);

    /// <summary>Appends one record; completes when the system acknowledges it (durably, as configured).</summary>
    Task AppendAsync(byte[] record, CancellationToken cancellationToken);
}

/// <summary>
/// Records carry, in their first 8 bytes, the <see cref="Stopwatch"/> timestamp at which the appender sent them; the
/// consumer reads it back, so append→delivery latency is measured by one clock in one process for every system.
/// </summary>
internal static class PeerRecord
{
    public const int HEADER_BYTES = 16;

    public static byte[] Create(int size, int appender)
    {
        var record = new byte[Math.Max(size, HEADER_BYTES)];
        BinaryPrimitives.WriteInt32LittleEndian(record.AsSpan(8), appender);
        for (var i = HEADER_BYTES; i < record.Length; i++)
        {
            record[i] = (byte)('a' + (i % 26));
        }

        return record;
    }

    public static void Stamp(byte[] record, long timestamp) => BinaryPrimitives.WriteInt64LittleEndian(record, timestamp);

    public static long SentAt(ReadOnlySpan<byte> record) => record.Length < 8 ? 0 : BinaryPrimitives.ReadInt64LittleEndian(record);
}

/// <summary>Percentiles of one latency histogram, in milliseconds.</summary>
internal sealed record LatencyStats(double P50, double P90, double P99, double P999, double Max, long Count)
{
    public static LatencyStats From(LongHistogram h) => h.TotalCount == 0
        ? new LatencyStats(double.NaN, double.NaN, double.NaN, double.NaN, double.NaN, 0)
        : new LatencyStats(Ms(h.GetValueAtPercentile(50)), Ms(h.GetValueAtPercentile(90)), Ms(h.GetValueAtPercentile(99)), Ms(h.GetValueAtPercentile(99.9)), Ms(h.GetMaxValue()), h.TotalCount);

    private static double Ms(long ticks) => ticks * 1000.0 / Stopwatch.Frequency;
}

/// <summary>Outcome of one open-loop run against one system.</summary>
internal sealed record OpenLoopResult(LatencyStats Ack, IReadOnlyList<LatencyStats> Delivery, long Issued, long Acked, long Failed, double OfferedPerSecond);

/// <summary>The workload every system gets: open-loop rate-limited appenders, one consumer; and a closed-loop saturation run.</summary>
internal static class PeerWorkload
{
    /// <summary>
    /// <paramref name="appenders"/> appenders at <paramref name="ratePerAppender"/> appends/s each, never waiting for acks
    /// (open loop). One dedicated pacing thread wakes about every millisecond and sends every append that is due, stamping
    /// each record with the moment it is handed to the client library. Ack and delivery latencies count from that stamp.
    /// Only appends sent inside the measured window (after the warm-up) are counted.
    /// </summary>
    public static async Task<OpenLoopResult> RunOpenLoopAsync(
        IPeerLog log, int appenders, int ratePerAppender, int recordSize, double warmupSeconds, double seconds, CancellationToken cancellationToken)
    {
        var ackHistogram = new LongHistogram(Stopwatch.Frequency * 60, 3);
        var deliveryHistograms = log.DeliveryKinds.Select(_ => new LongHistogram(Stopwatch.Frequency * 60, 3)).ToArray();
        var deliveredCounts = new long[deliveryHistograms.Length];
        long measureFrom = long.MaxValue, measureTo = long.MaxValue;
        long issued = 0, acked = 0, failed = 0;

        using var stopConsumer = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        await log.StartConsumerAsync((kind, record) =>
        {
            var sent = PeerRecord.SentAt(record);
            var now = Stopwatch.GetTimestamp();
            if (sent < Volatile.Read(ref measureFrom) || sent >= Volatile.Read(ref measureTo))
            {
                return;
            }

            var histogram = deliveryHistograms[kind];
            lock (histogram)
            {
                histogram.RecordValue(Math.Clamp(now - sent, 0, histogram.HighestTrackableValue));
                deliveredCounts[kind]++;
            }
        }, stopConsumer.Token);

        var inFlight = new List<Task>();
        var pacer = new Thread(() =>
        {
            var total = appenders * ratePerAppender;
            var interval = (double)Stopwatch.Frequency / total;
            var start = Stopwatch.GetTimestamp();
            var warmupEnd = start + (long)(warmupSeconds * Stopwatch.Frequency);
            var end = warmupEnd + (long)(seconds * Stopwatch.Frequency);
            Volatile.Write(ref measureFrom, warmupEnd);
            Volatile.Write(ref measureTo, end);
            long next = 0;
            while (!cancellationToken.IsCancellationRequested)
            {
                var now = Stopwatch.GetTimestamp();
                if (now >= end)
                {
                    break;
                }

                // Send everything due by now (appender i of n owns every n-th slot of the merged schedule).
                while (start + (long)(next * interval) <= now)
                {
                    var record = PeerRecord.Create(recordSize, (int)(next % appenders));
                    var sent = Stopwatch.GetTimestamp();
                    PeerRecord.Stamp(record, sent);
                    var measured = sent >= warmupEnd && sent < end;
                    if (measured)
                    {
                        issued++;
                    }

                    inFlight.Add(AppendOneAsync(record, sent, measured));
                    if (inFlight.Count > 8192)
                    {
                        inFlight.RemoveAll(t => t.IsCompleted);
                    }

                    next++;
                }

                Thread.Sleep(1);
            }
        })
        {
            IsBackground = true,
            Name = "peers pacer",
            Priority = ThreadPriority.AboveNormal,
        };
        pacer.Start();
        await Task.Run(pacer.Join, cancellationToken);
        await Task.WhenAll(inFlight.ToArray());

        // Let the consumer catch up with everything acknowledged (a few seconds at most).
        var deadline = Stopwatch.GetTimestamp() + 5 * Stopwatch.Frequency;
        while (Stopwatch.GetTimestamp() < deadline && Behind())
        {
            await Task.Delay(20, cancellationToken);
        }

        await stopConsumer.CancelAsync();
        LatencyStats ack;
        lock (ackHistogram)
        {
            ack = LatencyStats.From(ackHistogram);
        }

        var deliveries = deliveryHistograms.Select(h => { lock (h) { return LatencyStats.From(h); } }).ToArray();
        return new OpenLoopResult(ack, deliveries, issued, acked, failed, appenders * (double)ratePerAppender);

        bool Behind()
        {
            lock (ackHistogram)
            {
                for (var k = 0; k < deliveredCounts.Length; k++)
                {
                    lock (deliveryHistograms[k])
                    {
                        if (deliveredCounts[k] < acked)
                        {
                            return true;
                        }
                    }
                }
            }

            return false;
        }

        async Task AppendOneAsync(byte[] record, long sent, bool measured)
        {
            try
            {
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
                await log.AppendAsync(record, timeout.Token);
                if (measured)
                {
                    var elapsed = Stopwatch.GetTimestamp() - sent;
                    lock (ackHistogram)
                    {
                        ackHistogram.RecordValue(Math.Min(elapsed, ackHistogram.HighestTrackableValue));
                        acked++;
                    }
                }
            }
            catch (Exception) when (measured)
            {
                Interlocked.Increment(ref failed);
            }
            catch (Exception)
            {
            }
        }
    }

    /// <summary>
    /// Closed loop: <paramref name="concurrency"/> appenders each append and await the ack, again and again, for
    /// <paramref name="seconds"/> after a short warm-up; returns acknowledged appends per second.
    /// </summary>
    public static async Task<double> RunSaturationAsync(IPeerLog log, int concurrency, int recordSize, double seconds, CancellationToken cancellationToken)
    {
        long counted = 0;
        var warmupEnd = Stopwatch.GetTimestamp() + Stopwatch.Frequency / 2;
        var end = warmupEnd + (long)(seconds * Stopwatch.Frequency);
        var workers = Enumerable.Range(0, concurrency).Select(w => Task.Run(async () =>
        {
            var record = PeerRecord.Create(recordSize, w);
            while (!cancellationToken.IsCancellationRequested)
            {
                PeerRecord.Stamp(record, Stopwatch.GetTimestamp());
                await log.AppendAsync((byte[])record.Clone(), cancellationToken);
                var now = Stopwatch.GetTimestamp();
                if (now >= end)
                {
                    break;
                }

                if (now >= warmupEnd)
                {
                    Interlocked.Increment(ref counted);
                }
            }
        }, cancellationToken)).ToArray();
        await Task.WhenAll(workers);
        return counted / seconds;
    }
}
