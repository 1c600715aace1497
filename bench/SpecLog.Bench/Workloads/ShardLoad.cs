using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Diagnostics;
using SpecLog.Bench.Reporting;
using SpecLog.Client;
using SpecLog.FixAnte;
using SpecLog.Server;

namespace SpecLog.Bench.Workloads;

/// <summary>A burst: <see cref="Count"/> appends to <see cref="Shard"/> issued together at <see cref="AtSeconds"/> (measured time).</summary>
internal readonly record struct Burst(double AtSeconds, int Shard, int Count);

/// <summary>
/// What one <see cref="ShardLoad"/> run does. Times are seconds from the start of the measured period (negative during
/// warm-up).
/// </summary>
internal sealed record ShardLoadSpec
{
    /// <summary>Shards in the log; appender <c>s</c> writes to shard <c>s</c>.</summary>
    public int Shards { get; init; } = 4;

    /// <summary>Open-loop append rate of shard <c>s</c> at time <c>t</c>, appends/s (0 = silent).</summary>
    public required Func<int, double, double> Rate { get; init; }

    /// <summary>Bursts on top of the steady rate.</summary>
    public IReadOnlyList<Burst> Bursts { get; init; } = [];

    /// <summary>Per-record compute time of the consumer, ms (0: the consumer only records when it saw each record).</summary>
    public double ComputeMs { get; init; }

    /// <summary>Record size, bytes (at least <see cref="ShardLoad.HeaderBytes"/>).</summary>
    public int RecordSize { get; init; } = 100;

    /// <summary>Warm-up before the measured period, s.</summary>
    public double Warmup { get; init; } = 1;

    /// <summary>The measured period, s.</summary>
    public double Seconds { get; init; } = 5;

    /// <summary>Interval of shard status samples during the measured period, s.</summary>
    public double SampleSeconds { get; init; } = 0.1;

    /// <summary>Fix-Ante settings of the run (window size, lag-fix, quotas...).</summary>
    public Action<FixAnteOptions> Ordering { get; init; } = _ => { };
}

/// <summary>One measured record: when it was due, and how long after that it reached each stage (µs).</summary>
/// <param name="Shard">The shard it was appended to.</param>
/// <param name="StartSeconds">Its scheduled append time, s from the start of the measured period.</param>
/// <param name="Burst">Index of the burst it belongs to, or −1.</param>
/// <param name="DeliveryUs">Scheduled start → delivered to the subscriber (speculatively in Fix-Ante mode).</param>
/// <param name="ConfirmUs">Scheduled start → the <see cref="ConfirmedRange"/> covering it was seen.</param>
/// <param name="E2eUs">max(confirmation, compute done) − scheduled start.</param>
internal readonly record struct RecordTiming(int Shard, double StartSeconds, int Burst, double DeliveryUs, double ConfirmUs, double E2eUs);

/// <summary>Every shard's status at one moment of the measured period.</summary>
internal readonly record struct StatusSample(double AtSeconds, ShardStatus[] Shards);

/// <summary>The outcome of one <see cref="ShardLoad"/> run.</summary>
internal sealed class ShardLoadResult
{
    public List<RecordTiming> Records { get; } = [];

    public List<StatusSample> Samples { get; } = [];

    /// <summary>Measured appends issued.</summary>
    public long Issued { get; set; }

    /// <summary>Appends (any) that failed or timed out.</summary>
    public long Failed { get; set; }

    /// <summary>Statuses at the start and the end of the measured period.</summary>
    public ShardStatus[] Before { get; set; } = [];

    /// <summary>Statuses at the end of the measured period.</summary>
    public ShardStatus[] After { get; set; } = [];

    /// <summary>The measured period, s.</summary>
    public double Seconds { get; set; }

    /// <summary>No-op slots ÷ all slots over the measured period.</summary>
    public double NoOpFraction
    {
        get
        {
            long noOps = 0, records = 0;
            for (var i = 0; i < After.Length; i++)
            {
                noOps += After[i].NoOpSlots - Before[i].NoOpSlots;
                records += After[i].DurableRecords - Before[i].DurableRecords;
            }

            return noOps + records == 0 ? double.NaN : noOps / (double)(noOps + records);
        }
    }

    /// <summary>Reports the shards sent to the ordering layer per second over the measured period.</summary>
    public double ReportsPerSecond => After.Zip(Before).Sum(p => p.First.ReportsSent - p.Second.ReportsSent) / Seconds;

    /// <summary>Lag-fix signals the shards acted on over the measured period.</summary>
    public long LagFixes => After.Zip(Before).Sum(p => p.First.LagFixes - p.Second.LagFixes);

    /// <summary>Milliseconds per second each shard spent, on average, holding durable records beyond its known windows.</summary>
    public double WindowWaitMsPerSecond => After.Zip(Before).Average(p => (p.First.WindowWaitMicros - p.Second.WindowWaitMicros) / 1000.0) / Seconds;
}

/// <summary>
/// A Fix-Ante workload on a fresh single-silo in-process cluster (fsync on, unreplicated sequencer, so the shards'
/// protocol is what is measured): one open-loop appender per shard at a rate that may change over time, optional
/// bursts, and one whole-log subscriber feeding a consumer thread that spins for the compute time on each record in
/// GSN order. It records, per measured record, delivery, confirmation and E2E (as in scenario 1), and samples the
/// shards' statuses (quotas, no-ops, reports, lag-fixes, window waits) during the measured period.
/// </summary>
internal static class ShardLoad
{
    /// <summary>Payload header: scheduled start (8 B), measured sequence or −1 (8 B), burst index or −1 (4 B), shard (4 B).</summary>
    public const int HeaderBytes = 24;

    public static async Task<ShardLoadResult> RunAsync(ShardLoadSpec spec)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(spec.RecordSize, HeaderBytes);
        var bench = await BenchCluster.StartAsync(1, o =>
        {
            o.ShardCount = spec.Shards;
            o.Fsync = true;
            o.SegmentSize = 16L << 20;
            o.Replication.Mode = SequencerReplication.Single;
            spec.Ordering(o.Ordering);
        });
        var result = new ShardLoadResult { Seconds = spec.Seconds };
        using var stop = new CancellationTokenSource();
        using var queue = new BlockingCollection<(long Start, long Sequence, int Burst, int Shard, long Gsn, long Delivered)>();
        var consumed = new List<(long Start, int Burst, int Shard, long Gsn, long Delivered, long ComputeDone)>();
        var confirmations = new ConfirmationTimes();
        var computeTicks = (long)(spec.ComputeMs / 1000 * Stopwatch.Frequency);
        var consumer = new Thread(() =>
        {
            foreach (var item in queue.GetConsumingEnumerable())
            {
                var end = Stopwatch.GetTimestamp() + computeTicks;
                while (Stopwatch.GetTimestamp() < end)
                {
                    Thread.SpinWait(20);
                }

                if (item.Sequence >= 0)
                {
                    lock (consumed)
                    {
                        consumed.Add((item.Start, item.Burst, item.Shard, item.Gsn, item.Delivered, Stopwatch.GetTimestamp()));
                    }
                }
            }
        })
        { IsBackground = true, Name = "shard-load-consumer" };
        Task subscription = Task.CompletedTask;
        try
        {
            var client = bench.Client;
            var warm = NewPayload(spec.RecordSize, 0, -1, -1, 0);
            for (var s = 0; s < spec.Shards; s++)
            {
                await client.AppendAsync(warm, s); // activates every shard and the sequencer
            }

            consumer.Start();
            subscription = Task.Run(async () =>
            {
                try
                {
                    await foreach (var e in client.SubscribeAsync(0, stop.Token))
                    {
                        var now = Stopwatch.GetTimestamp();
                        if (e is SpeculativeRecord r)
                        {
                            var p = r.Payload.Span;
                            queue.Add((BinaryPrimitives.ReadInt64LittleEndian(p), BinaryPrimitives.ReadInt64LittleEndian(p[8..]),
                                BinaryPrimitives.ReadInt32LittleEndian(p[16..]), r.Shard, r.Gsn, now));
                        }
                        else if (e is ConfirmedRange c)
                        {
                            confirmations.Add(c.ToGsn, now);
                        }
                    }
                }
                catch (OperationCanceledException) when (stop.IsCancellationRequested)
                {
                }
            });

            var frequency = (double)Stopwatch.Frequency;
            var origin = Stopwatch.GetTimestamp() + Stopwatch.Frequency / 100 + (long)(spec.Warmup * frequency); // measured t = 0
            var end = origin + (long)(spec.Seconds * frequency);
            double T(long ts) => (ts - origin) / frequency;
            long At(double t) => origin + (long)(t * frequency);
            long sequence = 0, outstanding = 0, failed = 0, issued = 0, maxGsn = 0;

            void Issue(int shard, long due, int burst)
            {
                var measured = due >= origin && due < end;
                var seq = measured ? Interlocked.Increment(ref sequence) : -1;
                if (measured)
                {
                    Interlocked.Increment(ref issued);
                }

                Interlocked.Increment(ref outstanding);
                _ = AppendOneAsync(NewPayload(spec.RecordSize, due, seq, burst, shard), shard);
            }

            async Task AppendOneAsync(byte[] payload, int shard)
            {
                try
                {
                    using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
                    var gsn = await client.AppendAsync(payload, shard, timeout.Token);
                    long seen;
                    while (gsn > (seen = Interlocked.Read(ref maxGsn)) && Interlocked.CompareExchange(ref maxGsn, gsn, seen) != seen)
                    {
                    }
                }
                catch (Exception)
                {
                    Interlocked.Increment(ref failed);
                }
                finally
                {
                    Interlocked.Decrement(ref outstanding);
                }
            }

            var appenders = Enumerable.Range(0, spec.Shards).Select(shard => Task.Run(async () =>
            {
                var start = At(-spec.Warmup) + (long)(frequency / 1000 * shard / spec.Shards); // stagger
                var next = start;
                while (next < end)
                {
                    var now = Stopwatch.GetTimestamp();
                    while (next <= now && next < end)
                    {
                        var rate = spec.Rate(shard, T(next));
                        if (rate > 0)
                        {
                            Issue(shard, next, -1);
                            next += (long)(frequency / rate);
                        }
                        else
                        {
                            next += Stopwatch.Frequency / 1000; // silent: look again in a millisecond
                        }
                    }

                    await Task.Delay(1);
                }
            })).ToList();
            appenders.AddRange(spec.Bursts.Select((b, index) => Task.Run(async () =>
            {
                var due = At(b.AtSeconds);
                while (Stopwatch.GetTimestamp() < due - Stopwatch.Frequency / 500)
                {
                    await Task.Delay(1);
                }

                while (Stopwatch.GetTimestamp() < due)
                {
                    Thread.SpinWait(20);
                }

                for (var i = 0; i < b.Count; i++)
                {
                    Issue(b.Shard, due, index);
                }
            })));
            var sampler = Task.Run(async () =>
            {
                var grains = bench.Grains;
                var next = origin;
                while (next <= end)
                {
                    var wait = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), next);
                    if (wait > TimeSpan.Zero)
                    {
                        await Task.Delay(wait);
                    }

                    var statuses = await Task.WhenAll(Enumerable.Range(0, spec.Shards).Select(i => grains.GetGrain<IShardGrain>(i).GetStatusAsync()));
                    result.Samples.Add(new StatusSample(T(Stopwatch.GetTimestamp()), statuses));
                    next += (long)(spec.SampleSeconds * frequency);
                }
            });

            await Task.WhenAll(appenders);
            await sampler;
            result.Before = result.Samples[0].Shards;
            result.After = result.Samples[^1].Shards;
            result.Issued = Interlocked.Read(ref issued);

            // Drain: every measured append acknowledged, computed and confirmed (or give up after 30 s).
            var drainStart = Stopwatch.GetTimestamp();
            while (Stopwatch.GetElapsedTime(drainStart) < TimeSpan.FromSeconds(30) && !subscription.IsCompleted)
            {
                int count;
                lock (consumed)
                {
                    count = consumed.Count;
                }

                if (Interlocked.Read(ref outstanding) == 0 && count >= result.Issued - Interlocked.Read(ref failed) && confirmations.LastEnd > Interlocked.Read(ref maxGsn))
                {
                    break;
                }

                await Task.Delay(10);
            }

            await stop.CancelAsync();
            await subscription;
            queue.CompleteAdding();
            consumer.Join();
            result.Failed = Interlocked.Read(ref failed);
            var us = 1_000_000 / frequency;
            foreach (var c in consumed)
            {
                if (confirmations.TimeOf(c.Gsn) is not { } confirmed)
                {
                    continue; // never confirmed within the drain: not measured
                }

                result.Records.Add(new RecordTiming(c.Shard, T(c.Start), c.Burst, (c.Delivered - c.Start) * us, (confirmed - c.Start) * us,
                    (Math.Max(confirmed, c.ComputeDone) - c.Start) * us));
            }

            return result;
        }
        finally
        {
            if (!stop.IsCancellationRequested)
            {
                await stop.CancelAsync();
            }

            try
            {
                await subscription;
            }
            catch (Exception)
            {
            }

            if (!queue.IsAddingCompleted)
            {
                queue.CompleteAdding();
            }

            if (consumer.IsAlive)
            {
                consumer.Join();
            }

            await bench.DisposeAsync();
        }
    }

    /// <summary>
    /// Runs every configuration once per round, alternating (the order reversed every other round so none always runs on a
    /// warmer or more tired machine), with a progress line; returns each configuration's runs.
    /// </summary>
    /// <param name="label">The progress line's label.</param>
    /// <param name="configs">The configurations compared.</param>
    /// <param name="rounds">Rounds.</param>
    /// <param name="name">A configuration's name for the progress line.</param>
    /// <param name="spec">The workload of a configuration.</param>
    /// <param name="summary">One line on a finished run, for the progress line.</param>
    public static async Task<Dictionary<T, List<ShardLoadResult>>> RunRoundsAsync<T>(
        string label, IReadOnlyList<T> configs, int rounds, Func<T, string> name, Func<T, ShardLoadSpec> spec, Func<T, ShardLoadResult, string> summary)
        where T : notnull
    {
        var results = configs.ToDictionary(c => c, _ => new List<ShardLoadResult>());
        var progress = new ProgressLine(label, (long)rounds * configs.Count);
        long done = 0;
        for (var round = 0; round < rounds; round++)
        {
            foreach (var config in round % 2 == 0 ? configs : configs.Reverse())
            {
                progress.Step($"round {round + 1}/{rounds}, {name(config)}");
                var r = await RunAsync(spec(config));
                results[config].Add(r);
                progress.Report(++done, $"{name(config)}: {summary(config, r)}");
            }
        }

        progress.Done();
        return results;
    }

    private static byte[] NewPayload(int size, long start, long sequence, int burst, int shard)
    {
        var payload = new byte[size];
        BinaryPrimitives.WriteInt64LittleEndian(payload, start);
        BinaryPrimitives.WriteInt64LittleEndian(payload.AsSpan(8), sequence);
        BinaryPrimitives.WriteInt32LittleEndian(payload.AsSpan(16), burst);
        BinaryPrimitives.WriteInt32LittleEndian(payload.AsSpan(20), shard);
        return payload;
    }

    /// <summary>The <paramref name="q"/> quantile (0–1) of <paramref name="values"/> (nearest rank), NaN when empty.</summary>
    public static double Quantile(IEnumerable<double> values, double q)
    {
        var sorted = values.Where(double.IsFinite).Order().ToArray();
        return sorted.Length == 0 ? double.NaN : sorted[Math.Clamp((int)Math.Ceiling(q * sorted.Length) - 1, 0, sorted.Length - 1)];
    }
}
