using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using HdrHistogram;
using SpecLog.Bench.Reporting;
using SpecLog.Bench.Workloads;
using SpecLog.Client;
using SpecLog.FixAnte;
using SpecLog.Server;

namespace SpecLog.Bench.Scenarios;

/// <summary>
/// Scenario 1, end-to-end latency against per-record compute time. A consumer subscribes to the whole log and spins
/// for a fixed compute time on each record, one record at a time in GSN order, on a dedicated thread. SpecLog
/// (Fix-Ante) delivers speculatively, so the consumer starts computing before the record is committed; in Scalog mode
/// records reach the consumer only once ordered, i.e. at confirmation. E2E of a record is
/// <c>max(confirmation seen, compute done) − append start</c>, where the append start is the record's scheduled
/// open-loop send time carried in its payload. Each run uses a fresh single-silo in-process cluster with fsync on and
/// the unreplicated sequencer (<see cref="SequencerReplication.Single"/>) unless <c>--replication</c> says otherwise; the two systems alternate within each
/// compute time, over several rounds, and each system's rounds are merged into one histogram.
/// </summary>
public sealed class E2eScenario : IScenario
{
    private const string RatioKey = "e2e_ratio_compute_1_5ms";
    private static readonly double[] s_defaultCompute = [0.1, 0.5, 1, 1.5, 2, 5];
    private static readonly double[] s_shortCompute = [0.5, 1.5, 5];

    public string Name => "e2e";

    public string Description =>
        "E2E latency vs per-record compute time, SpecLog (speculative) vs Scalog mode "
        + "[--variant belfast (see e2e-belfast) --compute-ms 0.1,0.5,1,1.5,2,5 --appenders 4 --rate 1000 --max-utilization 0.5 --record-size 100 --shards 4 --seconds 5 --warmup 1 --rounds 2 --replication Single|Copilot|MultiPaxos --short --out bench/results]";

    public async Task<int> RunAsync(BenchArgs args)
    {
        if (string.Equals(args.Get("variant"), "belfast", StringComparison.OrdinalIgnoreCase))
        {
            return await new E2eBelfastScenario().RunAsync(args); // Belfast's batched microbenchmark (also `e2e-belfast`)
        }

        var isShort = args.Get("short") is not null;
        var computeMs = args.Get("compute-ms") is { } list
            ? list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(v => double.Parse(v, CultureInfo.InvariantCulture)).ToArray()
            : isShort ? s_shortCompute : s_defaultCompute;
        var appenders = args.GetInt("appenders", 4);
        var ratePerAppender = args.GetDouble("rate", 1000);
        var maxUtilization = args.GetDouble("max-utilization", 0.5);
        var recordSize = args.GetInt("record-size", 100);
        var shards = args.GetInt("shards", SpecLogOptions.DEFAULT_SHARD_COUNT);
        var seconds = args.GetDouble("seconds", isShort ? 3 : 5);
        var warmup = args.GetDouble("warmup", 1);
        var rounds = args.GetInt("rounds", isShort ? 1 : 2);
        var replication = Enum.Parse<SequencerReplication>(args.Get("replication") ?? nameof(SequencerReplication.Single), ignoreCase: true);
        var outDir = args.Get("out") ?? Path.Combine("bench", "results");
        if (computeMs.Length == 0 || computeMs.Any(c => c <= 0) || appenders < 1 || ratePerAppender <= 0 || maxUtilization is <= 0 or > 1
            || recordSize < 16 || shards < 1 || seconds <= 0 || warmup < 0 || rounds < 1)
        {
            throw new ArgumentException("--compute-ms values, --appenders, --rate, --shards, --seconds and --rounds must be positive, --warmup not negative, --max-utilization in (0, 1], --record-size at least 16.");
        }

        var systems = new[] { OrderingMode.FixAnte, OrderingMode.Scalog };
        var results = new Dictionary<(double Compute, OrderingMode Mode), Aggregate>();
        var rates = new Dictionary<double, double>();
        foreach (var c in computeMs)
        {
            // Keep the single consumer thread at most maxUtilization busy, so queueing behind the compute does not dominate.
            rates[c] = Math.Min(appenders * ratePerAppender, maxUtilization / (c / 1000));
            foreach (var m in systems)
            {
                results[(c, m)] = new Aggregate();
            }
        }

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"e2e: compute {string.Join(", ", computeMs.Select(c => c.ToString(CultureInfo.InvariantCulture)))} ms; {appenders} open-loop appenders at {ratePerAppender} appends/s each, capped so rate × compute ≤ {maxUtilization} of one core; {recordSize} B records; {shards} shards on one silo, sequencer replication {replication}, fsync on; {warmup} s warm-up + {seconds} s measured; {rounds} round(s)"));
        var report = new BenchReport("E2E latency vs per-record compute: SpecLog vs Scalog mode (scenario 1)"
            + (replication == SequencerReplication.Single ? "" : $", ordering layer {replication}"));
        var runs = computeMs.Length * rounds * systems.Length;
        var progress = new ProgressLine("e2e", runs);
        var done = 0;
        foreach (var c in computeMs)
        {
            for (var round = 0; round < rounds; round++)
            {
                // Alternate, and swap the order every round so neither system always runs first.
                var order = round % 2 == 0 ? systems : systems.Reverse().ToArray();
                foreach (var mode in order)
                {
                    progress.Step(string.Create(CultureInfo.InvariantCulture, $"compute {c} ms, {Label(mode)}, round {round + 1}/{rounds}, {rates[c]:F0} appends/s"));
                    var r = await RunOnceAsync(mode, replication, c, rates[c], appenders, recordSize, shards, seconds, warmup);
                    results[(c, mode)].Add(r);
                    done++;
                    progress.Report(done, string.Create(CultureInfo.InvariantCulture,
                        $"{Label(mode)} @ {c} ms: E2E p50 {LatencySummary.Ms(r.E2e.P50Us)} ms p99 {LatencySummary.Ms(r.E2e.P99Us)}, delivery p50 {LatencySummary.Ms(r.Delivery.P50Us)}, confirm p50 {LatencySummary.Ms(r.Confirm.P50Us)}, {r.Measured}/{r.Issued} measured, {r.Failed} failed"));
                }
            }
        }

        progress.Done();

        var setup = report.AddSection("Setup");
        setup.AddText(string.Create(CultureInfo.InvariantCulture,
            $"One consumer subscribes to the whole log (`SubscribeAsync`) and busy-spins for the compute time on each record, one at a time in GSN order, on a dedicated thread. "
            + $"**SpecLog** (`OrderingMode.FixAnte`) starts computing on the `SpeculativeRecord`; in **Scalog mode** (`OrderingMode.Scalog`) records are delivered only once ordered, i.e. at confirmation. "
            + $"E2E per record = max(time its `ConfirmedRange` was seen, compute done) − append start; the append start is the record's scheduled open-loop send time, carried in its payload (so client-side queueing counts). "
            + $"{appenders} open-loop appenders (appender *i* → shard *i* mod {shards}) at {ratePerAppender} appends/s each, scaled down per compute time so that rate × compute ≤ {maxUtilization} of one core (the consumer never saturates); {recordSize} B records. "
            + $"Each run: a fresh in-process single-silo cluster, {shards} shards, **sequencer replication `{replication}`**{(replication == SequencerReplication.Single ? " (unreplicated ordering layer)" : " (its replicas all on this one silo)")}, fsync on, {warmup} s warm-up then {seconds} s measured. "
            + $"The two systems alternate within each compute time (order swapped every round), {rounds} round(s); each system's rounds are merged into one histogram."));

        var main = report.AddSection("E2E latency");
        var table = main.AddTable("compute (ms)", "appends/s", "SpecLog E2E p50 (ms)", "SpecLog E2E p99 (ms)", "Scalog E2E p50 (ms)", "Scalog E2E p99 (ms)", "Scalog/SpecLog p50", "Scalog/SpecLog p99");
        foreach (var c in computeMs)
        {
            var spec = results[(c, OrderingMode.FixAnte)].E2e();
            var scalog = results[(c, OrderingMode.Scalog)].E2e();
            var r50 = scalog.P50Us / spec.P50Us;
            var r99 = scalog.P99Us / spec.P99Us;
            table.AddRow(Num(c), rates[c].ToString("F0", CultureInfo.InvariantCulture), spec.P50Ms, spec.P99Ms, scalog.P50Ms, scalog.P99Ms, Ratio(r50), Ratio(r99));
            var tag = "c" + Num(c).Replace('.', '_') + "ms";
            report.SetFigure($"e2e_{tag}_speclog_p50_us", Round(spec.P50Us));
            report.SetFigure($"e2e_{tag}_speclog_p99_us", Round(spec.P99Us));
            report.SetFigure($"e2e_{tag}_scalog_p50_us", Round(scalog.P50Us));
            report.SetFigure($"e2e_{tag}_scalog_p99_us", Round(scalog.P99Us));
            report.SetFigure($"e2e_{tag}_ratio_p50", Math.Round(r50, 3));
            report.SetFigure($"e2e_{tag}_ratio_p99", Math.Round(r99, 3));
            if (Math.Abs(c - 1.5) < 1e-9)
            {
                report.SetFigure(RatioKey, Math.Round(r50, 3));
            }
        }

        main.AddText("Ratios above 1 mean SpecLog's end-to-end latency is lower. The paper (Belfast) reports about 1.6× at 1.5 ms of compute.");
        if (computeMs.Length > 1)
        {
            var chart = main.AddChart("e2e", "E2E latency against per-record compute", "compute per record (ms)", "E2E (ms)");
            chart.LogX = true;
            foreach (var m in systems)
            {
                chart.AddSeries($"{Label(m)} p50", computeMs, computeMs.Select(c => results[(c, m)].E2e().P50Us / 1000));
                chart.AddSeries($"{Label(m)} p99", computeMs, computeMs.Select(c => results[(c, m)].E2e().P99Us / 1000));
            }

            var ratioChart = main.AddChart("ratio", "Scalog-mode E2E ÷ SpecLog E2E", "compute per record (ms)", "ratio (above 1: SpecLog lower)");
            ratioChart.LogX = true;
            ratioChart.AddSeries("p50", computeMs, computeMs.Select(c => results[(c, OrderingMode.Scalog)].E2e().P50Us / results[(c, OrderingMode.FixAnte)].E2e().P50Us));
            ratioChart.AddSeries("p99", computeMs, computeMs.Select(c => results[(c, OrderingMode.Scalog)].E2e().P99Us / results[(c, OrderingMode.FixAnte)].E2e().P99Us));
        }

        var detail = report.AddSection("Where the time goes");
        var dt = detail.AddTable("compute (ms)", "system", "measured/offered", "failed", "delivery p50 (ms)", "confirm p50 (ms)", "confirm p99 (ms)", "wait for consumer p99 (ms)", "E2E p50 (ms)", "E2E p90 (ms)", "E2E p99.9 (ms)", "E2E max (ms)");
        foreach (var c in computeMs)
        {
            foreach (var m in systems)
            {
                var a = results[(c, m)];
                var e2e = a.E2e();
                var confirm = LatencySummary.FromTicks(a.ConfirmHistogram);
                dt.AddRow(Num(c), Label(m), $"{a.Measured}/{a.Issued}", a.Failed.ToString(CultureInfo.InvariantCulture),
                    LatencySummary.FromTicks(a.DeliveryHistogram).P50Ms, confirm.P50Ms, confirm.P99Ms, LatencySummary.FromTicks(a.WaitHistogram).P99Ms,
                    e2e.P50Ms, e2e.P90Ms, e2e.P999Ms, e2e.MaxMs);
            }
        }

        detail.AddText("Delivery: append start → record handed to the consumer (speculative in SpecLog, after ordering in Scalog mode). Confirm: append start → its `ConfirmedRange` seen by the consumer. "
            + "Wait for consumer: delivery → compute start (queueing behind earlier records' compute).");

        Console.WriteLine();
        Console.Write(report.ToMarkdown());
        var (md, json) = await report.WriteAsync(outDir, replication == SequencerReplication.Single ? "e2e" : $"e2e-{replication.ToString().ToLowerInvariant()}");
        Console.WriteLine($"wrote {md} and {json}");
        if (report.Figures.ContainsKey(RatioKey))
        {
            var latest = Path.Combine(outDir, "latest.json");
            await report.MergeFiguresAsync(latest, [RatioKey]);
            Console.WriteLine($"merged {RatioKey} into {latest}");
        }

        return results.Values.Any(a => a.Measured == 0) ? 2 : 0;
    }

    private static string Label(OrderingMode mode) => mode == OrderingMode.FixAnte ? "SpecLog" : "Scalog mode";

    private static string Num(double v) => v.ToString("0.###", CultureInfo.InvariantCulture);

    private static string Ratio(double r) => double.IsFinite(r) ? r.ToString("F2", CultureInfo.InvariantCulture) : "n/a";

    private static double Round(double us) => double.IsFinite(us) ? Math.Round(us, 1) : us;


    /// <summary>One run's histograms (TimeSpan ticks) and counts.</summary>
    private sealed class RunResult
    {
        public LongHistogram E2eHistogram { get; } = LatencySummary.NewHistogram();
        public LongHistogram DeliveryHistogram { get; } = LatencySummary.NewHistogram();
        public LongHistogram ConfirmHistogram { get; } = LatencySummary.NewHistogram();
        public LongHistogram WaitHistogram { get; } = LatencySummary.NewHistogram();
        public long Issued { get; set; }
        public long Measured { get; set; }
        public long Failed { get; set; }
        public LatencySummary E2e => LatencySummary.FromTicks(E2eHistogram);
        public LatencySummary Delivery => LatencySummary.FromTicks(DeliveryHistogram);
        public LatencySummary Confirm => LatencySummary.FromTicks(ConfirmHistogram);
    }

    /// <summary>All rounds of one (compute, system) pair, merged.</summary>
    private sealed class Aggregate
    {
        public LongHistogram E2eHistogram { get; } = LatencySummary.NewHistogram();
        public LongHistogram DeliveryHistogram { get; } = LatencySummary.NewHistogram();
        public LongHistogram ConfirmHistogram { get; } = LatencySummary.NewHistogram();
        public LongHistogram WaitHistogram { get; } = LatencySummary.NewHistogram();
        public long Issued { get; private set; }
        public long Measured { get; private set; }
        public long Failed { get; private set; }

        public void Add(RunResult r)
        {
            E2eHistogram.Add(r.E2eHistogram);
            DeliveryHistogram.Add(r.DeliveryHistogram);
            ConfirmHistogram.Add(r.ConfirmHistogram);
            WaitHistogram.Add(r.WaitHistogram);
            Issued += r.Issued;
            Measured += r.Measured;
            Failed += r.Failed;
        }

        public LatencySummary E2e() => LatencySummary.FromTicks(E2eHistogram);
    }

    /// <summary>What the consumer thread saw of one record (Stopwatch timestamps).</summary>
    private readonly record struct Consumed(long Gsn, long Sequence, long Start, long Delivered, long ComputeBegin, long ComputeDone);

    private static async Task<RunResult> RunOnceAsync(OrderingMode mode, SequencerReplication replication, double computeMs, double rate, int appenders, int recordSize, int shards, double seconds, double warmup)
    {
        var bench = await BenchCluster.StartAsync(1, o =>
        {
            o.ShardCount = shards;
            o.Fsync = true;
            o.SegmentSize = 16L << 20;
            o.Ordering.Mode = mode;
            o.Replication.Mode = replication;
        });
        using var stop = new CancellationTokenSource();
        using var queue = new BlockingCollection<(long Gsn, long Sequence, long Start, long Delivered)>();
        var consumed = new List<Consumed>();
        var confirmations = new ConfirmationTimes();
        var computeTicks = (long)(computeMs / 1000 * Stopwatch.Frequency);
        var consumer = new Thread(() =>
        {
            foreach (var item in queue.GetConsumingEnumerable())
            {
                var begin = Stopwatch.GetTimestamp();
                var end = begin + computeTicks;
                while (Stopwatch.GetTimestamp() < end)
                {
                    Thread.SpinWait(20);
                }

                var doneAt = Stopwatch.GetTimestamp();
                lock (consumed)
                {
                    consumed.Add(new Consumed(item.Gsn, item.Sequence, item.Start, item.Delivered, begin, doneAt));
                }
            }
        })
        { IsBackground = true, Name = "e2e-consumer" };
        Task subscription = Task.CompletedTask;
        try
        {
            var client = bench.Client;
            var firstPayload = new byte[recordSize];
            BinaryPrimitives.WriteInt64LittleEndian(firstPayload.AsSpan(8), -1); // sequence −1: not measured
            await client.AppendAsync(firstPayload); // activates the shards and the sequencer
            consumer.Start();
            var delivered = 0L;
            subscription = Task.Run(async () =>
            {
                await foreach (var e in client.SubscribeAsync(0, stop.Token))
                {
                    var now = Stopwatch.GetTimestamp();
                    switch (e)
                    {
                        case SpeculativeRecord r:
                            var span = r.Payload.Span;
                            queue.Add((r.Gsn, BinaryPrimitives.ReadInt64LittleEndian(span[8..]), BinaryPrimitives.ReadInt64LittleEndian(span), now));
                            Interlocked.Increment(ref delivered);
                            break;
                        case ConfirmedRange c:
                            confirmations.Add(c.ToGsn, now);
                            break;
                        default:
                            break;
                    }
                }
            });

            var ready = Stopwatch.GetTimestamp();
            while (Interlocked.Read(ref delivered) == 0 && Stopwatch.GetElapsedTime(ready) < TimeSpan.FromSeconds(15) && !subscription.IsCompleted)
            {
                await Task.Delay(5);
            }

            if (Interlocked.Read(ref delivered) == 0)
            {
                if (subscription.IsFaulted)
                {
                    await subscription;
                }

                throw new InvalidOperationException("The subscription delivered nothing within 15 s.");
            }

            // One open-loop schedule at the total rate; record k belongs to appender k mod appenders, which writes to
            // shard (appender mod shards), so each appender runs at rate/appenders with interleaved send times.
            var total = (long)Math.Round((warmup + seconds) * rate);
            var warmupCount = (long)Math.Round(warmup * rate);
            var inFlight = new List<Task>();
            long maxGsn = 0, failed = 0;
            var start = Stopwatch.GetTimestamp();
            await OpenLoopPacer.RunAsync(appenders, rate / appenders, start, start + (long)(total * (double)Stopwatch.Frequency / rate), (appender, k, due) =>
            {
                var i = k * appenders + appender;
                var payload = new byte[recordSize];
                BinaryPrimitives.WriteInt64LittleEndian(payload, due);
                BinaryPrimitives.WriteInt64LittleEndian(payload.AsSpan(8), i);
                inFlight.Add(AppendOneAsync(payload, appender % shards));
                if (inFlight.Count > 4096)
                {
                    inFlight.RemoveAll(t => t.IsCompleted);
                }
            });

            await Task.WhenAll(inFlight);

            // Drain: every appended record computed and confirmed (or give up after 30 s).
            var drainStart = Stopwatch.GetTimestamp();
            while (Stopwatch.GetElapsedTime(drainStart) < TimeSpan.FromSeconds(30) && !subscription.IsCompleted)
            {
                int count;
                lock (consumed)
                {
                    count = consumed.Count;
                }

                if (count >= total + 1 - failed && confirmations.LastEnd > Interlocked.Read(ref maxGsn))
                {
                    break;
                }

                await Task.Delay(10);
            }

            await stop.CancelAsync();
            try
            {
                await subscription;
            }
            catch (OperationCanceledException)
            {
            }

            queue.CompleteAdding();
            consumer.Join();

            var result = new RunResult { Issued = total - warmupCount, Failed = failed };
            foreach (var c in consumed)
            {
                if (c.Sequence < warmupCount)
                {
                    continue;
                }

                if (confirmations.TimeOf(c.Gsn) is not { } confirmed)
                {
                    continue; // never confirmed within the drain: counts as not measured
                }

                LatencySummary.RecordStopwatchTicks(result.E2eHistogram, Math.Max(confirmed, c.ComputeDone) - c.Start);
                LatencySummary.RecordStopwatchTicks(result.DeliveryHistogram, c.Delivered - c.Start);
                LatencySummary.RecordStopwatchTicks(result.ConfirmHistogram, confirmed - c.Start);
                LatencySummary.RecordStopwatchTicks(result.WaitHistogram, c.ComputeBegin - c.Delivered);
                result.Measured++;
            }

            return result;

            async Task AppendOneAsync(byte[] p, int s)
            {
                try
                {
                    using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
                    var gsn = await client.AppendAsync(p, s, timeout.Token);
                    long seen;
                    while (gsn > (seen = Interlocked.Read(ref maxGsn)) && Interlocked.CompareExchange(ref maxGsn, gsn, seen) != seen)
                    {
                    }
                }
                catch (Exception)
                {
                    Interlocked.Increment(ref failed);
                }
            }
        }
        finally
        {
            if (!stop.IsCancellationRequested)
            {
                await stop.CancelAsync();
            }

            if (!queue.IsAddingCompleted)
            {
                try
                {
                    await subscription;
                }
                catch (Exception)
                {
                }

                queue.CompleteAdding();
            }

            if (consumer.IsAlive)
            {
                consumer.Join();
            }

            await bench.DisposeAsync();
        }
    }
}
