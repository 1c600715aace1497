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
/// Belfast's end-to-end microbenchmark (its <c>single_client_e2e.go</c>), the batched variant of scenario 1: open-loop
/// appenders, one GSN-ordered whole-log subscriber handing records to a compute thread that takes every record waiting
/// as one batch and busy-waits the compute time once per batch; E2E = max(confirmation seen, compute done) − append
/// start. SpecLog (speculative delivery) and Scalog mode (delivery after ordering) alternate in one run, on each
/// ordering layer asked for. Belfast drops batches of 15 or more records with a warning; here they are computed like
/// the others (so the consumer keeps up at any rate) and counted.
/// </summary>
public sealed class E2eBelfastScenario : IScenario
{
    private const int HeaderBytes = 9;
    private const int BelfastBatchLimit = 15;
    private static readonly OrderingMode[] s_modes = [OrderingMode.FixAnte, OrderingMode.Scalog];

    public string Name => "e2e-belfast";

    public string Description =>
        "Belfast's batched E2E microbenchmark, SpecLog vs Scalog mode per ordering layer "
        + "[--compute-ms 0.1,0.5,1,1.5,2,5 --compute sleep|spin --rate 20000 --appenders 10 --record-size 100 --shards 4 --seconds 4 --warmup 1 --rounds 2 --configs Copilot:3,Single:1 --no-at-confirm --report-name e2e-belfast --out bench/results]";

    public async Task<int> RunAsync(BenchArgs args)
    {
        var computes = (args.Get("compute-ms") ?? "0.1,0.5,1,1.5,2,5").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(v => double.Parse(v, CultureInfo.InvariantCulture)).ToArray();
        var configs = (args.Get("configs") ?? "Copilot:3,Single:1").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(c => c.Split(':')).Select(p => (Mode: Enum.Parse<SequencerReplication>(p[0], ignoreCase: true), Silos: p.Length > 1 ? int.Parse(p[1], CultureInfo.InvariantCulture) : 1)).ToArray();
        var spin = (args.Get("compute") ?? "sleep").Equals("spin", StringComparison.OrdinalIgnoreCase);
        var s = new Settings(args.GetInt("rate", 20_000), args.GetInt("appenders", 10), args.GetInt("record-size", 100), args.GetInt("shards", 4),
            args.GetDouble("seconds", 4), args.GetDouble("warmup", 1), spin);
        var rounds = args.GetInt("rounds", 2);
        var atConfirm = args.Get("no-at-confirm") is null;
        var outDir = args.Get("out") ?? Path.Combine("bench", "results");
        var name = args.Get("report-name") ?? Name;
        if (computes.Length == 0 || computes.Any(c => c <= 0) || configs.Length == 0 || s.Rate < 1 || s.Appenders < 1 || s.RecordSize < HeaderBytes
            || s.Shards < 1 || s.Seconds <= 0 || rounds < 1 || configs.Any(c => c.Silos < 1))
        {
            throw new ArgumentException("--compute-ms, --configs, --rate, --appenders, --shards, --seconds and --rounds must be positive; --record-size at least 9.");
        }

        var report = new BenchReport($"E2E, Belfast's batched microbenchmark: SpecLog vs Scalog mode ({s.RecordSize} B records at {s.Rate:N0} appends/s)");
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"e2e-belfast: compute {string.Join(", ", computes)} ms; {s.Appenders} open-loop appenders at {s.Rate} appends/s in all; {s.RecordSize} B records; {s.Shards} shards; {string.Join(", ", configs.Select(c => $"{c.Mode} on {c.Silos} silo(s)"))}; {rounds} round(s)"));
        var all = new List<Row>();
        var progress = new ProgressLine("e2e-belfast", configs.Length * (computes.Length + (atConfirm ? 1 : 0)) * rounds * s_modes.Length);
        var done = 0;
        foreach (var (mode, silos) in configs)
        {
            var list = computes.ToList();
            for (var i = 0; i < list.Count; i++)
            {
                var compute = list[i];
                var agg = s_modes.ToDictionary(m => m, _ => new Aggregate());
                for (var round = 0; round < rounds; round++)
                {
                    foreach (var m in round % 2 == 0 ? s_modes : Enumerable.Reverse(s_modes).ToArray())
                    {
                        progress.Step($"{mode} on {silos} silo(s), compute {compute:0.###} ms, round {round + 1}, {(m == OrderingMode.FixAnte ? "SpecLog" : "Scalog")}");
                        agg[m].Add(await RunOnceAsync(mode, silos, m, compute, s));
                        progress.Report(++done);
                    }
                }

                var row = new Row(mode, silos, compute, i >= computes.Length, agg[OrderingMode.FixAnte], agg[OrderingMode.Scalog]);
                all.Add(row);
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"  {mode} {silos} silo(s) compute {compute:0.###} ms: SpecLog E2E p50 {LatencySummary.Ms(row.Spec.E2e.P50Us)} (ideal {LatencySummary.Ms(row.IdealUs)}), Scalog {LatencySummary.Ms(row.Scalog.E2e.P50Us)}, ratio {row.Ratio:F2}×; delivery {LatencySummary.Ms(row.Spec.Delivery.P50Us)}, confirmation {LatencySummary.Ms(row.Spec.Confirm.P50Us)} / Scalog {LatencySummary.Ms(row.Scalog.Confirm.P50Us)}"));
                if (atConfirm && i == computes.Length - 1)
                {
                    // Where overlap pays most: compute as long as Scalog mode's confirmation (measured at 1.5 ms, else the nearest).
                    var basis = all.Where(r => r.Mode == mode && r.Silos == silos && !r.AtConfirm).MinBy(r => Math.Abs(r.Compute - 1.5))!;
                    list.Add(Math.Round(Math.Clamp(basis.Scalog.Confirm.P50Us / 1000, 0.1, 20), 2));
                }
            }
        }

        progress.Done();
        Build(report, all, s, rounds);
        var (md, json) = await report.WriteAsync(outDir, name);
        // Only the default workload (100 B records, 20,000/s) feeds latest.json's e2e_belfast_* keys.
        var keys = name == Name ? report.Figures.Keys.Where(k => k.StartsWith("e2e_belfast_", StringComparison.Ordinal)).ToArray() : [];
        await report.MergeFiguresAsync(Path.Combine(Path.GetFullPath(outDir), "latest.json"), keys);
        Console.WriteLine(report.ToMarkdown());
        Console.WriteLine($"wrote {md}, {json}; merged {string.Join(", ", keys)} into latest.json");
        return 0;
    }

    private static void Build(BenchReport report, List<Row> rows, Settings s, int rounds)
    {
        report.AddSection("Setup").AddText(string.Create(CultureInfo.InvariantCulture,
            $"Belfast's `single_client_e2e.go`, on this log: {s.Appenders} open-loop appenders share {s.Rate:N0} appends/s of {s.RecordSize}-byte records over {s.Shards} shards; one whole-log "
            + $"subscriber in GSN order posts each record to a compute thread, which takes every record waiting as one batch and busy-waits the compute time once per batch. "
            + $"E2E = max(confirmation seen, compute done) − append call. SpecLog computes on speculative delivery, Scalog mode on delivery after ordering. "
            + $"*Ideal* = max(confirmation p50, delivery p50 + compute): what full overlap of compute and ordering would give; *overlap* = SpecLog E2E p50 ÷ ideal (1.0 = realised). "
            + $"The compute time is {(s.Spin ? "busy-waited, as Belfast does (on 2 cores that takes one of them from the log)" : "slept (nanosleep, then a spin of the last 60 µs): Belfast busy-waits, but on this 2-core machine a spinning compute thread takes a whole core from the log (`--compute spin` measures that)")}. "
            + $"Batches of {BelfastBatchLimit} or more records, which Belfast drops with a warning, are computed here and counted. A fresh cluster per run (fsync on); the systems alternate, "
            + $"{rounds} round(s) each, merged. Rows marked *at confirmation* use a compute time equal to Scalog mode's confirmation p50."));
        var t = report.AddSection("Results").AddTable("ordering layer", "compute (ms)", "SpecLog E2E p50", "p99", "Scalog E2E p50", "p99", "Scalog ÷ SpecLog (p50)",
            "SpecLog delivery p50", "SpecLog confirmation p50", "Scalog confirmation p50", "ideal p50", "overlap", "mean batch", "batches ≥ 15");
        foreach (var r in rows)
        {
            t.AddRow($"{r.Mode} on {r.Silos} silo{(r.Silos == 1 ? "" : "s")}", r.Compute.ToString("0.###", CultureInfo.InvariantCulture) + (r.AtConfirm ? " (at confirmation)" : ""),
                LatencySummary.Ms(r.Spec.E2e.P50Us), LatencySummary.Ms(r.Spec.E2e.P99Us), LatencySummary.Ms(r.Scalog.E2e.P50Us), LatencySummary.Ms(r.Scalog.E2e.P99Us),
                r.Ratio.ToString("F2", CultureInfo.InvariantCulture) + "×", LatencySummary.Ms(r.Spec.Delivery.P50Us), LatencySummary.Ms(r.Spec.Confirm.P50Us), LatencySummary.Ms(r.Scalog.Confirm.P50Us),
                LatencySummary.Ms(r.IdealUs), r.Overlap.ToString("F2", CultureInfo.InvariantCulture), r.Spec.MeanBatch.ToString("F1", CultureInfo.InvariantCulture),
                $"{r.Spec.LargeBatches} / {r.Scalog.LargeBatches}");
        }

        foreach (var (mode, key) in new[] { (SequencerReplication.Copilot, "copilot"), (SequencerReplication.Single, "single"), (SequencerReplication.MultiPaxos, "multipaxos") })
        {
            if (rows.Where(r => r.Mode == mode && !r.AtConfirm).MinBy(r => Math.Abs(r.Compute - 1.5)) is { } at15 && Math.Abs(at15.Compute - 1.5) < 1e-9)
            {
                report.SetFigure($"e2e_belfast_ratio_1_5ms_{key}", Math.Round(at15.Ratio, 3));
                report.SetFigure($"e2e_belfast_overlap_{key}", Math.Round(at15.Overlap, 3));
                report.SetFigure($"e2e_belfast_spec_e2e_p50_us_1_5ms_{key}", Math.Round(at15.Spec.E2e.P50Us, 1));
                report.SetFigure($"e2e_belfast_scalog_e2e_p50_us_1_5ms_{key}", Math.Round(at15.Scalog.E2e.P50Us, 1));
            }

            if (rows.FirstOrDefault(r => r.Mode == mode && r.AtConfirm) is { } atConfirm)
            {
                report.SetFigure($"e2e_belfast_ratio_at_confirm_{key}", Math.Round(atConfirm.Ratio, 3));
                report.SetFigure($"e2e_belfast_at_confirm_compute_ms_{key}", atConfirm.Compute);
            }
        }
    }

    private static async Task<Run> RunOnceAsync(SequencerReplication replication, int silos, OrderingMode mode, double computeMs, Settings s)
    {
        var bench = await BenchCluster.StartAsync(silos, o =>
        {
            o.ShardCount = s.Shards;
            o.Fsync = true;
            o.SegmentSize = 16L << 20;
            o.Ordering.Mode = mode;
            o.Replication.Mode = replication;
        });
        using var stop = new CancellationTokenSource();
        using var queue = new BlockingCollection<(long Gsn, long Start, long Delivered, bool Measured)>();
        var computed = new List<(long Gsn, long Start, long Delivered, long Done)>();
        var confirmations = new ConfirmationTimes();
        var computeTicks = (long)(computeMs / 1000 * Stopwatch.Frequency);
        long batches = 0, batched = 0, large = 0;
        var consumer = new Thread(() =>
        {
            var batch = new List<(long Gsn, long Start, long Delivered, bool Measured)>();
            foreach (var first in queue.GetConsumingEnumerable())
            {
                batch.Clear();
                batch.Add(first);
                while (queue.TryTake(out var more))
                {
                    batch.Add(more);
                }

                var end = Stopwatch.GetTimestamp() + computeTicks;
                if (!s.Spin)
                {
                    Native.WaitUntil(end); // the compute time passes without taking one of the two cores from the log
                }

                while (Stopwatch.GetTimestamp() < end)
                {
                    Thread.SpinWait(20);
                }

                var doneAt = Stopwatch.GetTimestamp();
                batches++;
                batched += batch.Count;
                large += batch.Count >= BelfastBatchLimit ? 1 : 0;
                lock (computed)
                {
                    foreach (var r in batch.Where(r => r.Measured))
                    {
                        computed.Add((r.Gsn, r.Start, r.Delivered, doneAt));
                    }
                }
            }
        })
        { IsBackground = true, Name = "e2e-belfast-compute" };
        try
        {
            var client = bench.Client;
            for (var i = 0; i < s.Shards; i++)
            {
                await client.AppendAsync(new byte[s.RecordSize], i); // activates every shard and the ordering layer
            }

            consumer.Start();
            var subscription = Task.Run(async () =>
            {
                try
                {
                    await foreach (var e in client.SubscribeAsync(0, stop.Token))
                    {
                        var now = Stopwatch.GetTimestamp();
                        if (e is SpeculativeRecord r && r.Payload.Length >= HeaderBytes)
                        {
                            queue.Add((r.Gsn, BinaryPrimitives.ReadInt64LittleEndian(r.Payload.Span), now, r.Payload.Span[8] == 1));
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

            long outstanding = 0, failed = 0;
            var start = Stopwatch.GetTimestamp() + Stopwatch.Frequency / 100;
            var measureFrom = start + (long)(s.Warmup * Stopwatch.Frequency);
            var end = measureFrom + (long)(s.Seconds * Stopwatch.Frequency);
            var perAppender = s.Rate / (double)s.Appenders;
            using var giveUp = new CancellationTokenSource();
            giveUp.CancelAfter(Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), end) + TimeSpan.FromSeconds(30));
            var appenders = OpenLoopPacer.RunAsync(s.Appenders, perAppender, start, end, (appender, k, due) =>
            {
                Interlocked.Increment(ref outstanding);
                _ = AppendAsync(due >= measureFrom, appender % s.Shards);
            });
            await appenders;
            var drain = Stopwatch.GetTimestamp() + 30 * Stopwatch.Frequency;
            while (Interlocked.Read(ref outstanding) > 0 && Stopwatch.GetTimestamp() < drain)
            {
                await Task.Delay(10);
            }

            await Task.Delay(300); // the last confirmations and computes
            await stop.CancelAsync();
            await subscription;
            queue.CompleteAdding();
            consumer.Join(TimeSpan.FromSeconds(10));

            var run = new Run(Interlocked.Read(ref failed), batches == 0 ? double.NaN : batched / (double)batches, large);
            lock (computed)
            {
                foreach (var (gsn, sent, delivered, doneAt) in computed)
                {
                    if (confirmations.TimeOf(gsn) is { } confirmedAt)
                    {
                        LatencySummary.RecordStopwatchTicks(run.E2eHistogram, Math.Max(confirmedAt, doneAt) - sent);
                        LatencySummary.RecordStopwatchTicks(run.DeliveryHistogram, delivered - sent);
                        LatencySummary.RecordStopwatchTicks(run.ConfirmHistogram, confirmedAt - sent);
                    }
                }
            }

            return run;

            async Task AppendAsync(bool measured, int shard)
            {
                var payload = new byte[s.RecordSize];
                BinaryPrimitives.WriteInt64LittleEndian(payload, Stopwatch.GetTimestamp());
                payload[8] = measured ? (byte)1 : (byte)0;
                try
                {
                    await client.AppendAsync(payload, shard, giveUp.Token);
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
        }
        finally
        {
            queue.CompleteAdding();
            await bench.DisposeAsync();
        }
    }


    private sealed record Settings(int Rate, int Appenders, int RecordSize, int Shards, double Seconds, double Warmup, bool Spin);

    private sealed class Run(long failed, double meanBatch, long largeBatches)
    {
        public LongHistogram E2eHistogram { get; } = LatencySummary.NewHistogram();
        public LongHistogram DeliveryHistogram { get; } = LatencySummary.NewHistogram();
        public LongHistogram ConfirmHistogram { get; } = LatencySummary.NewHistogram();
        public long Failed { get; } = failed;
        public double MeanBatch { get; } = meanBatch;
        public long LargeBatches { get; } = largeBatches;
    }

    private sealed class Aggregate
    {
        private readonly LongHistogram _e2e = LatencySummary.NewHistogram();
        private readonly LongHistogram _delivery = LatencySummary.NewHistogram();
        private readonly LongHistogram _confirm = LatencySummary.NewHistogram();
        private readonly List<double> _batches = [];

        public LatencySummary E2e => LatencySummary.FromTicks(_e2e);
        public LatencySummary Delivery => LatencySummary.FromTicks(_delivery);
        public LatencySummary Confirm => LatencySummary.FromTicks(_confirm);
        public double MeanBatch => _batches.Count == 0 ? double.NaN : _batches.Where(double.IsFinite).DefaultIfEmpty(double.NaN).Average();
        public long LargeBatches { get; private set; }
        public long Failed { get; private set; }

        public void Add(Run r)
        {
            _e2e.Add(r.E2eHistogram);
            _delivery.Add(r.DeliveryHistogram);
            _confirm.Add(r.ConfirmHistogram);
            _batches.Add(r.MeanBatch);
            LargeBatches += r.LargeBatches;
            Failed += r.Failed;
        }
    }

    private sealed record Row(SequencerReplication Mode, int Silos, double Compute, bool AtConfirm, Aggregate Spec, Aggregate Scalog)
    {
        public double Ratio => Scalog.E2e.P50Us / Spec.E2e.P50Us;

        public double IdealUs => Math.Max(Spec.Confirm.P50Us, Spec.Delivery.P50Us + Compute * 1000);

        public double Overlap => Spec.E2e.P50Us / IdealUs;
    }
}
