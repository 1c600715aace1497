using System.Buffers.Binary;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Globalization;
using HdrHistogram;
using SpecLog.Bench.Reporting;
using SpecLog.Bench.Workloads;
using SpecLog.Client;
using SpecLog.Server;

namespace SpecLog.Bench.Scenarios;

/// <summary>
/// Where an append's and a delivered record's time goes: the stage latencies the log itself records (Meter
/// <c>SpecLog</c>, histogram <c>speclog.stage.duration</c>) and the control traffic it spends (reports, commit
/// notices, subscriber pushes, wake-ups, ordering-layer entries), for several ordering layers and rates, each on a
/// fresh in-process cluster with fsync on, one GSN-ordered and one unordered whole-log subscriber.
/// </summary>
public sealed class AnatomyScenario : IScenario
{
    private const int HeaderBytes = DeliveryProbe.HeaderBytes;

    private static readonly string[] s_appendStages =
    [
        SpecLogMetrics.Stages.ClientQueue, SpecLogMetrics.Stages.Durable, SpecLogMetrics.Stages.ReportWait,
        SpecLogMetrics.Stages.Commit, SpecLogMetrics.Stages.NoticeTransit,
    ];

    private static readonly string[] s_deliveryStages =
    [
        SpecLogMetrics.Stages.Durable, SpecLogMetrics.Stages.DeliverWait, SpecLogMetrics.Stages.PushTransit, SpecLogMetrics.Stages.OrderWait,
    ];

    private static readonly string[] s_allStages =
    [
        SpecLogMetrics.Stages.ClientQueue, SpecLogMetrics.Stages.Durable, SpecLogMetrics.Stages.ReportWait, SpecLogMetrics.Stages.ReportTransit,
        SpecLogMetrics.Stages.Ordering, SpecLogMetrics.Stages.Commit, SpecLogMetrics.Stages.NoticeTransit, SpecLogMetrics.Stages.ShardAppend,
        SpecLogMetrics.Stages.ClientAppend, SpecLogMetrics.Stages.DeliverWait, SpecLogMetrics.Stages.PushTransit, SpecLogMetrics.Stages.OrderWait,
        SpecLogMetrics.Stages.ConfirmWait,
    ];

    public string Name => "anatomy";

    public string Description =>
        "stage latencies and control traffic per append, per ordering layer and rate "
        + "[--configs Single:1,Copilot:1,Copilot:3,MultiPaxos:3,Copilot:3:3 (mode:silos[:shard replicas]) --rates 2000,20000 --shards 4 --appenders 20 --record-size 100 --seconds 5 --warmup 2 --ordering Name=Value,... --out bench/results]";

    public async Task<int> RunAsync(BenchArgs args)
    {
        var configs = (args.Get("configs") ?? "Single:1,Copilot:1,Copilot:3,MultiPaxos:3")
            .Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(c =>
            {
                var parts = c.Split(':');
                return new Config(
                    Enum.Parse<SequencerReplication>(parts[0], ignoreCase: true),
                    parts.Length > 1 ? int.Parse(parts[1], CultureInfo.InvariantCulture) : 1,
                    parts.Length > 2 ? int.Parse(parts[2], CultureInfo.InvariantCulture) : 1);
            }).ToArray();
        var rates = (args.Get("rates") ?? "2000,20000").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(r => int.Parse(r, CultureInfo.InvariantCulture)).ToArray();
        var s = new Settings(args.GetInt("shards", 4), args.GetInt("appenders", 20), args.GetInt("record-size", 100), args.GetDouble("seconds", 5), args.GetDouble("warmup", 2), args.Get("ordering"));
        var ordering = Workloads.OrderingOverrides.Parse(s.Ordering);
        var outDir = args.Get("out") ?? Path.Combine("bench", "results");
        if (configs.Length == 0 || rates.Length == 0 || rates.Any(r => r < 1) || s.Shards < 1 || s.Appenders < 1 || s.Seconds <= 0 || s.RecordSize < HeaderBytes
            || configs.Any(c => c.Silos < 1 || c.Replicas < 1 || c.Replicas > c.Silos || (c.Mode == SequencerReplication.Single && c.Silos != 1)))
        {
            throw new ArgumentException("--configs (Mode:silos[:shard replicas, at most the silos]; Single runs on 1 silo), --rates, --shards, --appenders and --seconds must be positive, --record-size at least 9.");
        }

        var report = new BenchReport("Latency anatomy: where an append's and a delivery's time goes");
        Console.WriteLine($"anatomy: {string.Join(", ", configs.Select(c => c.Name))} at {string.Join(", ", rates)} appends/s over {s.Shards} shards, {s.RecordSize} B records, {s.Seconds} s measured after {s.Warmup} s");
        Console.WriteLine($"machine: {report.Machine.Describe()}");
        var results = new List<RunResult>();
        var progress = new ProgressLine("anatomy", configs.Length * rates.Length);
        foreach (var rate in rates)
        {
            foreach (var config in configs)
            {
                progress.Step($"{config.Name} at {rate}/s");
                var r = await RunOnceAsync(config, rate, s, ordering);
                results.Add(r);
                progress.Report(results.Count);
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"  {config.Name,-16} {rate,6}/s append p50 {LatencySummary.Ms(r.Append.P50Us)} p99 {LatencySummary.Ms(r.Append.P99Us)} | ordered delivery p50 {LatencySummary.Ms(r.Ordered.P50Us)} | unordered p50 {LatencySummary.Ms(r.Unordered.P50Us)} "
                    + $"| reports/append {r.PerAppend(r.Reports):F2} notices/append {r.PerAppend(r.Notices):F2} pushes/append {r.PerAppend(r.Pushes):F2} | no-ops {r.NoOpFraction * 100:F1} %"));
            }
        }

        progress.Done();
        BuildReport(report, results, s);
        var (md, json) = await report.WriteAsync(outDir, "anatomy");
        var latest = Path.Combine(Path.GetFullPath(outDir), "latest.json");
        var keys = report.Figures.Keys.Where(k => k.StartsWith("anatomy_", StringComparison.Ordinal) || s_latestKeys.Contains(k)).ToArray();
        await report.MergeFiguresAsync(latest, keys);
        Console.WriteLine(report.ToMarkdown());
        Console.WriteLine($"wrote {md}, {json}; merged {keys.Length} figures into {latest}");
        return 0;
    }

    private static readonly HashSet<string> s_latestKeys =
    [
        "spec_delivery_unordered_p50_us", "copilot_append_p50_us_2k", "multipaxos_append_p50_us_2k", "single_append_p50_us_2k",
        "copilot_append_p50_us_20k", "ordering_commands_per_append_2k", "noop_fraction_2k",
    ];

    private static void BuildReport(BenchReport report, List<RunResult> results, Settings s)
    {
        var setup = report.AddSection("Setup");
        setup.AddText(string.Create(CultureInfo.InvariantCulture,
            $"One fresh in-process cluster per run (fsync on), {s.Shards} shards, {s.Appenders} open-loop appenders sharing the rate (issued at their scheduled times, within 0.1 ms, by one pacer thread), {s.RecordSize}-byte records, "
            + $"{Workloads.OrderingOverrides.Describe(s.Ordering)}; {s.Warmup} s warm-up, {s.Seconds} s measured. Stage latencies are the log's own `speclog.stage.duration` "
            + $"histograms (Meter `SpecLog`), recorded where each stage happens from UTC-microsecond timestamps (shard stages once per append call: a client batch shares its times). "
            + $"*Append*, *ordered* / *unordered delivery* and *confirmation* are measured by the load generator from the append call (timestamp in the payload). "
            + $"Control traffic is read from every shard's and replica's status at the start and end of the measured period."));

        var ends = report.AddSection("End to end");
        var et = ends.AddTable("config", "offered/s", "achieved/s", "append p50 (ms)", "p99", "ordered delivery p50", "p99", "unordered delivery p50", "p99", "confirmation p50", "p99", "no-ops");
        foreach (var r in results)
        {
            et.AddRow(r.Config.Name, N(r.Rate), N(r.Achieved), LatencySummary.Ms(r.Append.P50Us), LatencySummary.Ms(r.Append.P99Us), LatencySummary.Ms(r.Ordered.P50Us), LatencySummary.Ms(r.Ordered.P99Us),
                LatencySummary.Ms(r.Unordered.P50Us), LatencySummary.Ms(r.Unordered.P99Us), LatencySummary.Ms(r.Confirmed.P50Us), LatencySummary.Ms(r.Confirmed.P99Us), Pct(r.NoOpFraction));
        }

        var stages = report.AddSection("Stages (p50 / p99, ms)");
        stages.AddText("Append path: client.queue → shard.durable → shard.report_wait → shard.commit (report sent → cut committed: the other shards' reports, transit and ordering; "
            + "ordering.report_transit and ordering.execute split it per report) → shard.notice_transit → acknowledgement (shard.append at the shard, client.append at the client). "
            + "Delivery path: shard.durable → shard.deliver_wait (durable → pushed) → subscriber.push_transit → subscriber.order_wait (GSN order: waiting for lower positions) → subscriber.confirm_wait.");
        var st = stages.AddTable(["stage", .. results.Select(r => $"{r.Config.Name} @ {N(r.Rate)}/s")]);
        foreach (var stage in s_allStages)
        {
            st.AddRow([stage, .. results.Select(r => r.Stages.TryGetValue(stage, out var l) && l.Count > 0 ? $"{LatencySummary.Ms(l.P50Us)} / {LatencySummary.Ms(l.P99Us)}" : "—")]);
        }

        var traffic = report.AddSection("Control traffic");
        traffic.AddText("Per second and per acknowledged append over the measured period. Reports are ordering-layer commands (one per report); entries are "
            + "log entries executed (both logs; Copilot / Multi-Paxos), with the share the pilots committed on the fast path; wake-ups are the shards' deadline-ticker wake-ups.");
        var tt = traffic.AddTable("config", "offered/s", "reports/s", "per append", "notices/s", "per append", "pushes/s", "per append", "wake-ups/s", "per append", "entries/s", "fast path", "takeovers", "no-op share");
        foreach (var r in results)
        {
            tt.AddRow(r.Config.Name, N(r.Rate), N(r.Reports / r.Seconds), F2(r.PerAppend(r.Reports)), N(r.Notices / r.Seconds), F2(r.PerAppend(r.Notices)), N(r.Pushes / r.Seconds), F2(r.PerAppend(r.Pushes)),
                N(r.Wakeups / r.Seconds), F2(r.PerAppend(r.Wakeups)), r.Entries < 0 ? "—" : N(r.Entries / r.Seconds), r.Entries <= 0 || double.IsNaN(r.FastShare) ? "—" : Pct(r.FastShare), r.Entries < 0 ? "—" : N(r.Takeovers), Pct(r.NoOpFraction));
        }

        var charts = report.AddSection("Where the time goes (p50 of each stage)");
        charts.AddText("Stacked p50s of the stages in order; *rest* is the end-to-end p50 minus the stages (hops not timed separately, client continuations). Percentiles do not add up exactly; read the bars as proportions.");
        var labels = results.Select(r => $"{r.Config.Name} {N(r.Rate)}/s").ToArray();
        var appendChart = charts.AddChart("append", "Append: where the time goes (p50)", "configuration", "ms");
        appendChart.StackedBars = true;
        appendChart.Categories = labels;
        AddStacked(appendChart, results, s_appendStages, r => r.Append.P50Us);
        var deliveryChart = charts.AddChart("delivery", "GSN-ordered delivery: where the time goes (p50)", "configuration", "ms");
        deliveryChart.StackedBars = true;
        deliveryChart.Categories = labels;
        AddStacked(deliveryChart, results, s_deliveryStages, r => r.Ordered.P50Us);

        foreach (var r in results)
        {
            var prefix = $"anatomy_{r.Config.Key}_{r.Rate / 1000}k";
            foreach (var (stage, l) in r.Stages)
            {
                report.SetFigure($"{prefix}_{Key(stage)}_p50_us", Math.Round(l.P50Us, 1));
            }

            report.SetFigure($"{prefix}_append_p50_us", Math.Round(r.Append.P50Us, 1));
            report.SetFigure($"{prefix}_append_p99_us", Math.Round(r.Append.P99Us, 1));
            report.SetFigure($"{prefix}_ordered_delivery_p50_us", Math.Round(r.Ordered.P50Us, 1));
            report.SetFigure($"{prefix}_reports_per_append", Math.Round(r.PerAppend(r.Reports), 3));
            report.SetFigure($"{prefix}_noop_fraction", Math.Round(r.NoOpFraction, 4));
        }

        // The issue's keys: stage p50s of the single sequencer at 20,000/s; per-mode append p50s; control traffic at 2,000/s.
        if (results.FirstOrDefault(r => r.Config.Mode == SequencerReplication.Single && r.Rate == 20_000) is { } single20)
        {
            foreach (var (stage, l) in single20.Stages)
            {
                report.SetFigure($"anatomy_{Key(stage)}_p50_us", Math.Round(l.P50Us, 1));
            }

            report.SetFigure("spec_delivery_unordered_p50_us", Math.Round(single20.Unordered.P50Us, 1));
        }

        RunResult? Pick(SequencerReplication mode, int rate) =>
            results.Where(r => r.Config.Mode == mode && r.Rate == rate && r.Config.Replicas == 1).OrderByDescending(r => r.Config.Silos).FirstOrDefault();
        void Set(string key, RunResult? r, Func<RunResult, double> value)
        {
            if (r is not null)
            {
                report.SetFigure(key, Math.Round(value(r), 3));
            }
        }

        Set("single_append_p50_us_2k", Pick(SequencerReplication.Single, 2_000), r => r.Append.P50Us);
        Set("copilot_append_p50_us_2k", Pick(SequencerReplication.Copilot, 2_000), r => r.Append.P50Us);
        Set("multipaxos_append_p50_us_2k", Pick(SequencerReplication.MultiPaxos, 2_000), r => r.Append.P50Us);
        Set("copilot_append_p50_us_20k", Pick(SequencerReplication.Copilot, 20_000), r => r.Append.P50Us);
        Set("ordering_commands_per_append_2k", Pick(SequencerReplication.Copilot, 2_000), r => r.PerAppend(r.Reports));
        Set("noop_fraction_2k", Pick(SequencerReplication.Single, 2_000), r => r.NoOpFraction);
    }

    private static void AddStacked(ReportChart chart, List<RunResult> results, string[] stages, Func<RunResult, double> totalUs)
    {
        foreach (var stage in stages)
        {
            chart.AddSeries(stage, results.Select((_, i) => (double)i), results.Select(r => r.Stages.TryGetValue(stage, out var l) ? l.P50Us / 1000 : 0));
        }

        chart.AddSeries("rest", results.Select((_, i) => (double)i), results.Select(r =>
            Math.Max(0, totalUs(r) / 1000 - stages.Sum(st => r.Stages.TryGetValue(st, out var l) && double.IsFinite(l.P50Us) ? l.P50Us / 1000 : 0))));
    }

    private static async Task<RunResult> RunOnceAsync(Config config, int rate, Settings s, Action<SpecLog.FixAnte.FixAnteOptions> ordering)
    {
        var bench = await BenchCluster.StartAsync(config.Silos, o =>
        {
            o.ShardCount = s.Shards;
            o.Fsync = true;
            o.SegmentSize = 16L << 20;
            o.Replication.Mode = config.Mode;
            o.ShardReplicas = config.Replicas;
            ordering(o.Ordering);
        });
        try
        {
            var client = bench.Client;
            var warm = new byte[s.RecordSize];
            for (var i = 0; i < s.Shards; i++)
            {
                await client.AppendAsync(warm, i);
            }

            var append = LatencySummary.NewHistogram();
            var ordered = LatencySummary.NewHistogram();
            var unordered = LatencySummary.NewHistogram();
            var confirmed = LatencySummary.NewHistogram();
            var stageHistograms = s_allStages.ToDictionary(st => st, _ => LatencySummary.NewHistogram());
            var measuring = 0;
            using var listener = new MeterListener();
            listener.InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Meter.Name == SpecLogMetrics.MeterName && instrument.Name == SpecLogMetrics.StageInstrument)
                {
                    l.EnableMeasurementEvents(instrument);
                }
            };
            listener.SetMeasurementEventCallback<double>((_, value, tags, _) =>
            {
                if (Volatile.Read(ref measuring) == 0)
                {
                    return;
                }

                foreach (var tag in tags)
                {
                    if (tag.Key == "stage" && tag.Value is string stage && stageHistograms.TryGetValue(stage, out var h))
                    {
                        LatencySummary.RecordTicks(h, (long)(value * TimeSpan.TicksPerMillisecond));
                    }
                }
            });
            listener.Start();

            using var stop = new CancellationTokenSource();
            var orderedTask = Task.Run(() => DeliveryProbe.RunAsync(client.SubscribeAsync(0, stop.Token), ordered, confirmed, stop.Token));
            var unorderedTask = Task.Run(() => DeliveryProbe.RunAsync(client.SubscribeUnorderedAsync(0, stop.Token), unordered, null, stop.Token));

            long completed = 0, outstanding = 0;
            var perAppender = rate / (double)s.Appenders;
            var start = Stopwatch.GetTimestamp() + Stopwatch.Frequency / 100;
            var warmupEnd = start + (long)(s.Warmup * Stopwatch.Frequency);
            var end = warmupEnd + (long)(s.Seconds * Stopwatch.Frequency);
            Snapshot before = default!;
            var startSnapshot = Task.Run(async () =>
            {
                await Task.Delay(Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), warmupEnd));
                before = await Snapshot.TakeAsync(bench.Grains, s.Shards, config);
                Volatile.Write(ref measuring, 1);
            });
            using var giveUp = new CancellationTokenSource();
            giveUp.CancelAfter(Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), end) + TimeSpan.FromSeconds(30));
            var appenders = OpenLoopPacer.RunAsync(s.Appenders, perAppender, start, end, (appender, k, due) =>
            {
                Interlocked.Increment(ref outstanding);
                _ = AppendOneAsync(due >= warmupEnd);
            });
            await appenders;
            await startSnapshot;
            Volatile.Write(ref measuring, 0);
            var after = await Snapshot.TakeAsync(bench.Grains, s.Shards, config);
            var drain = Stopwatch.GetTimestamp() + 30 * Stopwatch.Frequency;
            while (Interlocked.Read(ref outstanding) > 0 && Stopwatch.GetTimestamp() < drain)
            {
                await Task.Delay(10);
            }

            await Task.Delay(200);
            await stop.CancelAsync();
            await Task.WhenAll(orderedTask, unorderedTask);
            listener.Dispose();
            return new RunResult(config, rate, s.Seconds, Interlocked.Read(ref completed) / s.Seconds,
                LatencySummary.FromTicks(append), LatencySummary.FromTicks(ordered), LatencySummary.FromTicks(unordered), LatencySummary.FromTicks(confirmed),
                stageHistograms.Where(p => p.Value.TotalCount > 0).ToDictionary(p => p.Key, p => LatencySummary.FromTicks(p.Value)),
                after.Reports - before.Reports, after.Notices - before.Notices, after.Pushes - before.Pushes, after.Wakeups - before.Wakeups,
                after.Entries < 0 ? -1 : after.Entries - before.Entries, after.Fast - before.Fast, after.Slow - before.Slow, after.Takeovers - before.Takeovers,
                after.NoOps - before.NoOps, after.Records - before.Records);

            async Task AppendOneAsync(bool measured)
            {
                var payload = new byte[s.RecordSize];
                var sent = Stopwatch.GetTimestamp();
                BinaryPrimitives.WriteInt64LittleEndian(payload, sent);
                payload[8] = measured ? (byte)1 : (byte)0;
                try
                {
                    await client.AppendAsync(payload, cancellationToken: giveUp.Token);
                    var done = Stopwatch.GetTimestamp();
                    if (measured && done <= end)
                    {
                        LatencySummary.RecordTicks(append, Stopwatch.GetElapsedTime(sent, done).Ticks);
                        Interlocked.Increment(ref completed);
                    }
                }
                catch (Exception)
                {
                    // failures show as achieved below offered
                }
                finally
                {
                    Interlocked.Decrement(ref outstanding);
                }
            }
        }
        finally
        {
            await bench.DisposeAsync();
        }
    }

    private static string N(double v) => double.IsFinite(v) ? v.ToString("N0", CultureInfo.InvariantCulture) : "n/a";

    private static string F2(double v) => double.IsFinite(v) ? v.ToString("F2", CultureInfo.InvariantCulture) : "n/a";

    private static string Pct(double v) => double.IsFinite(v) ? (v * 100).ToString("F1", CultureInfo.InvariantCulture) + " %" : "n/a";

    private static string Key(string stage) => stage.Replace('.', '_');

    private sealed record Settings(int Shards, int Appenders, int RecordSize, double Seconds, double Warmup, string? Ordering);

    /// <summary>An ordering mode on some silos, with <paramref name="Replicas"/> replicas per shard (on distinct silos).</summary>
    private sealed record Config(SequencerReplication Mode, int Silos, int Replicas = 1)
    {
        public string Name => (Mode == SequencerReplication.Single ? "Single" : $"{Mode}, {Silos} silo{(Silos == 1 ? "" : "s")}") + (Replicas > 1 ? $", R = {Replicas}" : "");

        public string Key => $"{Mode.ToString().ToLowerInvariant()}_{Silos}silo" + (Replicas > 1 ? $"_r{Replicas}" : "");
    }

    private sealed record Snapshot(long Reports, long Notices, long Pushes, long Wakeups, long NoOps, long Records, long Entries, long Fast, long Slow, long Takeovers)
    {
        public static async Task<Snapshot> TakeAsync(IGrainFactory grains, int shards, Config config)
        {
            var st = await Task.WhenAll(Enumerable.Range(0, shards).Select(async i =>
            {
                // A replicated shard's counters are its leader's (followers report zeros).
                var all = await Task.WhenAll(Enumerable.Range(0, config.Replicas).Select(r => grains.GetGrain<IShardGrain>(ShardKeys.Of(i, r)).GetStatusAsync()));
                return all.FirstOrDefault(x => x.Role is "Leader" or "Single") ?? all[0];
            }));
            long entries = -1, fast = 0, slow = 0, takeovers = 0;
            if (config.Mode != SequencerReplication.Single)
            {
                var replicas = await Task.WhenAll(Enumerable.Range(0, 3).Select(i => grains.GetGrain<ISequencerReplicaGrain>(i).GetStatusAsync()));
                entries = replicas.Max(r => r.Executed0 + r.Executed1); // entries of both logs committed and executed
                fast = replicas.Sum(r => r.FastCommits);
                slow = replicas.Sum(r => r.SlowPaths);
                takeovers = replicas.Sum(r => r.Takeovers);
            }

            return new Snapshot(st.Sum(x => x.ReportsSent), st.Sum(x => x.NoticesReceived), st.Sum(x => x.PushesSent), st.Sum(x => x.Wakeups),
                st.Sum(x => x.NoOpSlots), st.Sum(x => x.DurableRecords), entries, fast, slow, takeovers);
        }
    }

    private sealed record RunResult(
        Config Config, int Rate, double Seconds, double Achieved, LatencySummary Append, LatencySummary Ordered, LatencySummary Unordered, LatencySummary Confirmed,
        Dictionary<string, LatencySummary> Stages, long Reports, long Notices, long Pushes, long Wakeups, long Entries, long Fast, long Slow, long Takeovers, long NoOps, long Records)
    {
        public double NoOpFraction => NoOps + Records == 0 ? double.NaN : NoOps / (double)(NoOps + Records);

        public double FastShare => Slow + Fast <= 0 ? double.NaN : Fast / (double)(Fast + Slow);

        public double PerAppend(long count) => Records == 0 ? double.NaN : count / (double)Records;
    }
}
