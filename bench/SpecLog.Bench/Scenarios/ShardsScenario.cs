using System.Buffers.Binary;
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
/// Append latency, speculative delivery, no-op fraction and saturation throughput against the number of shards, SpecLog
/// (Fix-Ante ordering) and the Scalog baseline mode side by side: one fresh single-silo in-process cluster (real fsync'd
/// storage) per run, the two modes alternating within each round. Each run has an open-loop phase (rate-limited
/// appenders, one whole-log subscriber) and then a closed-loop saturation phase (many outstanding appends).
/// </summary>
public sealed class ShardsScenario : IScenario
{
    private const int HeaderBytes = DeliveryProbe.HeaderBytes; // 8-byte Stopwatch timestamp of the append call + 1 byte "measured" flag

    private static readonly string[] s_latestKeys =
    [
        "append_p50_us", "append_p99_us", "spec_delivery_p50_us", "spec_delivery_p99_us",
        "scalog_append_p50_us", "noop_fraction", "max_durable_appends_per_s",
    ];

    private static readonly OrderingMode[] s_modes = [OrderingMode.FixAnte, OrderingMode.Scalog];

    public string Name => "shards";

    public string Description =>
        "append/delivery latency, no-ops and saturation vs shard count, SpecLog vs Scalog mode "
        + "[--shards 1,2,4,8 --rate 20000 --appenders 20 --record-size 100 --seconds 8 --warmup 2 --rounds 2 "
        + "--sat-seconds 4 --sat-concurrency 256,1024,4096 --replication Single|Copilot --segment-mb 32 --no-fsync --ordering Name=Value,... --out bench/results --short]";

    public async Task<int> RunAsync(BenchArgs args)
    {
        var isShort = args.Get("short") is not null;
        var shardCounts = (args.Get("shards") ?? (isShort ? "4" : "1,2,4,8"))
            .Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(s => int.Parse(s, CultureInfo.InvariantCulture)).ToArray();
        var settings = new Settings(
            Rate: args.GetInt("rate", 20_000),
            Appenders: args.GetInt("appenders", 20),
            RecordSize: args.GetInt("record-size", 100),
            Seconds: args.GetDouble("seconds", isShort ? 4 : 8),
            Warmup: args.GetDouble("warmup", isShort ? 1 : 2),
            SaturationSeconds: args.GetDouble("sat-seconds", isShort ? 3 : 4),
            SaturationConcurrency: (args.Get("sat-concurrency") ?? "256,1024,4096").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Select(v => int.Parse(v, CultureInfo.InvariantCulture)).ToArray(),
            Replication: Enum.Parse<SequencerReplication>(args.Get("replication") ?? nameof(SequencerReplication.Single), ignoreCase: true),
            SegmentBytes: (long)args.GetInt("segment-mb", 32) << 20,
            Fsync: args.Get("no-fsync") is null,
            Ordering: args.Get("ordering"));
        var ordering = OrderingOverrides.Parse(settings.Ordering);
        var rounds = args.GetInt("rounds", isShort ? 1 : 2);
        var outDir = args.Get("out") ?? Path.Combine("bench", "results");
        if (shardCounts.Length == 0 || shardCounts.Any(s => s < 1) || settings.Rate < 1 || settings.Appenders < 1 || settings.Seconds <= 0
            || settings.Warmup < 0 || settings.SaturationSeconds <= 0 || settings.SaturationConcurrency.Length == 0 || settings.SaturationConcurrency.Any(c => c < 1) || rounds < 1)
        {
            throw new ArgumentException("--shards, --rate, --appenders, --seconds, --sat-seconds, --sat-concurrency and --rounds must be positive.");
        }

        if (settings.RecordSize < HeaderBytes)
        {
            throw new ArgumentException($"--record-size must be at least {HeaderBytes} bytes (the send timestamp travels in the payload).");
        }

        var report = new BenchReport("Append latency, delivery and throughput vs shards: SpecLog vs Scalog mode");
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"shards: shard counts {string.Join(",", shardCounts)}, {settings.Rate} appends/s open loop over {settings.Appenders} appenders, {settings.RecordSize} B records, "
            + $"{settings.Seconds} s measured after {settings.Warmup} s warm-up, then {settings.SaturationSeconds} s closed loop at each of {string.Join(", ", settings.SaturationConcurrency)} outstanding appends; "
            + $"{rounds} round(s), ordering layer {settings.Replication}, fsync {(settings.Fsync ? "on" : "OFF")}"));
        Console.WriteLine($"machine: {report.Machine.Describe()}");

        var results = new Dictionary<(int Shards, OrderingMode Mode), List<RunResult>>();
        var progress = new ProgressLine("shards", (long)rounds * shardCounts.Length * s_modes.Length);
        long done = 0;
        for (var round = 0; round < rounds; round++)
        {
            foreach (var shards in shardCounts)
            {
                // Alternate which mode goes first so neither always runs on a warmer (or more tired) machine.
                var order = (round % 2 == 0) ? s_modes : Enumerable.Reverse(s_modes).ToArray();
                foreach (var mode in order)
                {
                    progress.Step($"round {round + 1}/{rounds}, {shards} shard(s), {ModeName(mode)}");
                    var r = await RunOnceAsync(shards, mode, settings, ordering);
                    if (!results.TryGetValue((shards, mode), out var list))
                    {
                        results[(shards, mode)] = list = [];
                    }

                    list.Add(r);
                    progress.Report(++done);
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"  round {round + 1} {shards} shard(s) {ModeName(mode),-7} append p50 {LatencySummary.Ms(r.Append.P50Us)} ms p99 {LatencySummary.Ms(r.Append.P99Us)} | "
                        + $"delivery p50 {LatencySummary.Ms(r.Delivery.P50Us)} p99 {LatencySummary.Ms(r.Delivery.P99Us)} | achieved {r.AchievedRate:F0}/s, done {r.Completed}/{r.Issued}, failed {r.Failed}, "
                        + $"timed out {r.TimedOut} | no-ops {r.NoOpFraction * 100:F2} % | saturation {r.SaturationRate:F0}/s at {r.SaturationConcurrency} outstanding (failed {r.SaturationFailed})"));
                }
            }
        }

        progress.Done();
        BuildReport(report, results, shardCounts, settings, rounds);
        (string markdownPath, string jsonPath) = await report.WriteAsync(outDir, "shards");
        string latestPath = Path.Combine(Path.GetFullPath(outDir), "latest.json");
        var latestKeys = s_latestKeys.Where(report.Figures.ContainsKey).ToArray();
        try
        {
            await report.MergeFiguresAsync(latestPath, latestKeys);
        }
        catch (InvalidDataException ex)
        {
            Console.Error.WriteLine($"wrote {markdownPath} and {jsonPath}, but left {latestPath} alone: {ex.Message}");
            return 1;
        }

        Console.WriteLine();
        Console.WriteLine(report.ToMarkdown());
        Console.WriteLine($"wrote {markdownPath}, {jsonPath}; merged {string.Join(", ", latestKeys)} into {latestPath}");
        return 0;
    }

    private static string ModeName(OrderingMode mode) => mode == OrderingMode.FixAnte ? "SpecLog" : "Scalog";

    private static void BuildReport(BenchReport report, Dictionary<(int Shards, OrderingMode Mode), List<RunResult>> results, int[] shardCounts, Settings s, int rounds)
    {
        string F(double v, string format) => double.IsFinite(v) ? v.ToString(format, CultureInfo.InvariantCulture) : "n/a";
        string Pct(double v) => double.IsFinite(v) ? v.ToString("+0.0;-0.0;0.0", CultureInfo.InvariantCulture) + " %" : "n/a";

        var setup = report.AddSection("Setup");
        setup.AddText(string.Create(CultureInfo.InvariantCulture,
            $"One fresh in-process cluster per run: a single silo, {s.Replication} ordering layer, {OrderingOverrides.Describe(s.Ordering)}, fsync {(s.Fsync ? "on (records are fdatasync'd before they count as durable)" : "OFF")}, "
            + $"{s.SegmentBytes >> 20} MiB segments. SpecLog = `OrderingMode.FixAnte` (speculative delivery), Scalog = `OrderingMode.Scalog` (delivery after ordering); "
            + $"the two alternate within each of {rounds} round(s), and every figure is the median over rounds of that run's value.\n\n"
            + $"- **Open loop**: {s.Appenders} appenders together offer {s.Rate} appends/s ({s.Rate / (double)s.Appenders:F0}/s each) of {s.RecordSize}-byte records through one `SpecLogClient` "
            + $"(shards in turn); one pacer thread (nanosleep steps of 0.1 ms) issues each appender's appends at their scheduled times, staggered between appenders, without waiting for earlier ones. "
            + $"{s.Warmup} s of warm-up, then {s.Seconds} s measured. *Append* is from the `AppendAsync` call to its acknowledgement (the record is durable and its GSN final); "
            + $"*append (sched.)* is from the time the append was due, so it also counts the appenders falling behind. "
            + $"*Delivery* is from the `AppendAsync` call (timestamp carried in the payload) to the record reaching one whole-log `SubscribeAsync` subscriber in the same process; "
            + $"*confirmed* is to the `ConfirmedRange` that covers it. Appends that take over 30 s are counted as timed out. "
            + $"*No-ops* = no-op slots ÷ (no-op slots + records) over the measured period, from every shard's `GetStatusAsync`.\n"
            + $"- **Saturation**: afterwards, in the same cluster with the subscriber gone, N closed-loop appenders each keep one `AppendAsync` outstanding, for N = {string.Join(", ", s.SaturationConcurrency)} in turn "
            + $"(a closed loop's throughput is N ÷ latency, so too few outstanding appends measure latency, not capacity); "
            + $"acknowledged appends per second over {s.SaturationSeconds} s after 1 s of ramp-up at each N; the best N counts."));

        var latency = report.AddSection("Append and delivery latency (open loop)");
        var table = latency.AddTable("shards", "mode", "offered/s", "achieved/s", "done/issued", "failed", "timed out",
            "append p50 (ms)", "p90", "p99", "p99.9", "append (sched.) p99", "delivery p50 (ms)", "p90", "p99", "p99.9", "confirmed p50 (ms)", "p99", "no-ops");
        foreach (var shards in shardCounts)
        {
            foreach (var mode in s_modes)
            {
                var list = results[(shards, mode)];
                table.AddRow(
                    shards.ToString(CultureInfo.InvariantCulture),
                    ModeName(mode),
                    s.Rate.ToString(CultureInfo.InvariantCulture),
                    F(Median(list.Select(r => r.AchievedRate)), "F0"),
                    $"{list.Sum(r => r.Completed)}/{list.Sum(r => r.Issued)}",
                    list.Sum(r => r.Failed).ToString(CultureInfo.InvariantCulture),
                    list.Sum(r => r.TimedOut).ToString(CultureInfo.InvariantCulture),
                    LatencySummary.Ms(Median(list.Select(r => r.Append.P50Us))),
                    LatencySummary.Ms(Median(list.Select(r => r.Append.P90Us))),
                    LatencySummary.Ms(Median(list.Select(r => r.Append.P99Us))),
                    LatencySummary.Ms(Median(list.Select(r => r.Append.P999Us))),
                    LatencySummary.Ms(Median(list.Select(r => r.AppendScheduled.P99Us))),
                    LatencySummary.Ms(Median(list.Select(r => r.Delivery.P50Us))),
                    LatencySummary.Ms(Median(list.Select(r => r.Delivery.P90Us))),
                    LatencySummary.Ms(Median(list.Select(r => r.Delivery.P99Us))),
                    LatencySummary.Ms(Median(list.Select(r => r.Delivery.P999Us))),
                    LatencySummary.Ms(Median(list.Select(r => r.Confirmed.P50Us))),
                    LatencySummary.Ms(Median(list.Select(r => r.Confirmed.P99Us))),
                    F(Median(list.Select(r => r.NoOpFraction * 100)), "F2") + " %");
            }
        }

        var overhead = report.AddSection("SpecLog overhead over Scalog mode");
        overhead.AddText("(SpecLog ÷ Scalog − 1) of the medians above; positive means SpecLog is slower. The paper reports at most 5.8 % append overhead. "
            + "Delivery is where SpecLog should win: it delivers before ordering, Scalog mode after.");
        var ot = overhead.AddTable("shards", "append p50", "append p99", "delivery p50 (SpecLog ÷ Scalog)", "delivery p99 (SpecLog ÷ Scalog)", "saturation (SpecLog ÷ Scalog)");
        foreach (var shards in shardCounts)
        {
            var spec = results[(shards, OrderingMode.FixAnte)];
            var scalog = results[(shards, OrderingMode.Scalog)];
            double Ratio(Func<RunResult, double> pick) => Median(spec.Select(pick)) / Median(scalog.Select(pick));
            ot.AddRow(
                shards.ToString(CultureInfo.InvariantCulture),
                Pct((Ratio(r => r.Append.P50Us) - 1) * 100),
                Pct((Ratio(r => r.Append.P99Us) - 1) * 100),
                F(Ratio(r => r.Delivery.P50Us), "F2") + "×",
                F(Ratio(r => r.Delivery.P99Us), "F2") + "×",
                F(Ratio(r => r.SaturationRate), "F2") + "×");
        }

        var saturation = report.AddSection("Saturation throughput (closed loop)");
        var st = saturation.AddTable("shards", "mode", "durable appends/s (median)", "best", "outstanding appends at best", "failed", "append p50 at saturation (ms)", "p99");
        foreach (var shards in shardCounts)
        {
            foreach (var mode in s_modes)
            {
                var list = results[(shards, mode)];
                st.AddRow(
                    shards.ToString(CultureInfo.InvariantCulture),
                    ModeName(mode),
                    F(Median(list.Select(r => r.SaturationRate)), "F0"),
                    F(list.Max(r => r.SaturationRate), "F0"),
                    list.MaxBy(r => r.SaturationRate)!.SaturationConcurrency.ToString(CultureInfo.InvariantCulture),
                    list.Sum(r => r.SaturationFailed).ToString(CultureInfo.InvariantCulture),
                    LatencySummary.Ms(Median(list.Select(r => r.Saturation.P50Us))),
                    LatencySummary.Ms(Median(list.Select(r => r.Saturation.P99Us))));
            }
        }

        var cpu = report.AddSection("CPU cost (whole process: load generator, client, silo, subscriber)");
        cpu.AddText(string.Create(CultureInfo.InvariantCulture,
            $"Process CPU time over the measured period ÷ appends issued (open loop) or acknowledged (saturation). Everything runs in one process on {report.Machine.Cores} cores, "
            + $"so {report.Machine.Cores} ÷ (CPU per append) bounds the rate this machine can sustain whatever the protocol does."));
        var ct = cpu.AddTable("shards", "mode", "open loop: cores used", "CPU µs per append", "saturation: cores used", "CPU µs per append");
        foreach (var shards in shardCounts)
        {
            foreach (var mode in s_modes)
            {
                var list = results[(shards, mode)];
                ct.AddRow(shards.ToString(CultureInfo.InvariantCulture), ModeName(mode),
                    F(Median(list.Select(r => r.CoresUsed)), "F2"), F(Median(list.Select(r => r.CpuUsPerAppend)), "F1"),
                    F(Median(list.Select(r => r.SaturationCoresUsed)), "F2"), F(Median(list.Select(r => r.SaturationCpuUsPerAppend)), "F1"));
            }
        }

        if (shardCounts.Length > 1)
        {
            var xs = shardCounts.Select(c => (double)c).ToArray();
            var lat = latency.AddChart("append", $"Append latency against shards ({s.Rate} appends/s offered)", "shards", "append latency (ms)");
            var sat = saturation.AddChart("saturation", "Saturation throughput against shards", "shards", "durable appends/s");
            foreach (var mode in s_modes)
            {
                lat.AddSeries($"{ModeName(mode)} p50", xs, shardCounts.Select(c => Median(results[(c, mode)].Select(r => r.Append.P50Us)) / 1000));
                lat.AddSeries($"{ModeName(mode)} p99", xs, shardCounts.Select(c => Median(results[(c, mode)].Select(r => r.Append.P99Us)) / 1000));
                sat.AddSeries(ModeName(mode), xs, shardCounts.Select(c => Median(results[(c, mode)].Select(r => r.SaturationRate))));
            }

            lat.AddSeries("SpecLog delivery p50", xs, shardCounts.Select(c => Median(results[(c, OrderingMode.FixAnte)].Select(r => r.Delivery.P50Us)) / 1000));
        }

        // Headline figures: SpecLog at 4 shards (or the shard count nearest 4 when 4 was not run) at the configured rate.
        var headline = shardCounts.OrderBy(c => Math.Abs(c - 4)).ThenByDescending(c => c).First();
        var hs = results[(headline, OrderingMode.FixAnte)];
        var hc = results[(headline, OrderingMode.Scalog)];
        double Round1(double v) => double.IsFinite(v) ? Math.Round(v, 1) : v;
        report.SetFigure("append_p50_us", Round1(Median(hs.Select(r => r.Append.P50Us))));
        report.SetFigure("append_p99_us", Round1(Median(hs.Select(r => r.Append.P99Us))));
        report.SetFigure("spec_delivery_p50_us", Round1(Median(hs.Select(r => r.Delivery.P50Us))));
        report.SetFigure("spec_delivery_p99_us", Round1(Median(hs.Select(r => r.Delivery.P99Us))));
        report.SetFigure("scalog_append_p50_us", Round1(Median(hc.Select(r => r.Append.P50Us))));
        report.SetFigure("noop_fraction", Math.Round(Median(hs.Select(r => r.NoOpFraction)), 5));
        report.SetFigure("max_durable_appends_per_s", Math.Round(results.Where(kv => kv.Key.Mode == OrderingMode.FixAnte).SelectMany(kv => kv.Value).Max(r => r.SaturationRate)));
        report.SetFigure("shards_headline_shard_count", headline);
        report.SetFigure("shards_headline_cpu_us_per_append", Math.Round(Median(hs.Select(r => r.CpuUsPerAppend)), 1));
        report.SetFigure("shards_headline_cores_used", Math.Round(Median(hs.Select(r => r.CoresUsed)), 2));
        report.SetFigure("saturation_cpu_us_per_append", Math.Round(Median(hs.Select(r => r.SaturationCpuUsPerAppend)), 1));
        report.SetFigure("shards_headline_offered_per_s", s.Rate);
        report.SetFigure("shards_headline_achieved_per_s", Math.Round(Median(hs.Select(r => r.AchievedRate))));
        report.SetFigure("shards_headline_failed", hs.Sum(r => r.Failed + r.TimedOut));
        report.SetFigure("scalog_append_p99_us", Round1(Median(hc.Select(r => r.Append.P99Us))));
        report.SetFigure("scalog_delivery_p50_us", Round1(Median(hc.Select(r => r.Delivery.P50Us))));
        report.SetFigure("append_overhead_p50_pct", Math.Round((Median(hs.Select(r => r.Append.P50Us)) / Median(hc.Select(r => r.Append.P50Us)) - 1) * 100, 2));
        report.SetFigure("append_overhead_p99_pct", Math.Round((Median(hs.Select(r => r.Append.P99Us)) / Median(hc.Select(r => r.Append.P99Us)) - 1) * 100, 2));

        var notes = report.AddSection("Reading the results");
        notes.AddText(string.Create(CultureInfo.InvariantCulture,
            $"Headline figures (`latest.json`) are SpecLog at {headline} shards. The load generator, the client, the silo and the storage threads all share "
            + $"this machine's {report.Machine.Cores} cores, so when the achieved rate falls short of the offered {s.Rate}/s, or *append (sched.)* p99 runs far above "
            + $"*append* p99, the machine (not the log's protocol) is saturated and the latencies include CPU queueing."));
    }

    private static double Median(IEnumerable<double> values)
    {
        var sorted = values.Where(double.IsFinite).OrderBy(v => v).ToArray();
        return sorted.Length == 0 ? double.NaN : sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }

    private sealed record Settings(
        int Rate, int Appenders, int RecordSize, double Seconds, double Warmup, double SaturationSeconds, int[] SaturationConcurrency,
        SequencerReplication Replication, long SegmentBytes, bool Fsync, string? Ordering);

    private sealed record RunResult(
        LatencySummary Append, LatencySummary AppendScheduled, LatencySummary Delivery, LatencySummary Confirmed,
        long Issued, long Completed, long Failed, long TimedOut, double AchievedRate, double NoOpFraction,
        double SaturationRate, long SaturationFailed, LatencySummary Saturation,
        double CoresUsed, double CpuUsPerAppend, double SaturationCoresUsed, double SaturationCpuUsPerAppend, int SaturationConcurrency);

    private static async Task<RunResult> RunOnceAsync(int shards, OrderingMode mode, Settings s, Action<FixAnteOptions> ordering)
    {
        var bench = await BenchCluster.StartAsync(1, o =>
        {
            o.ShardCount = shards;
            ordering(o.Ordering);
            o.Ordering.Mode = mode;
            o.Replication.Mode = s.Replication;
            o.Fsync = s.Fsync;
            o.SegmentSize = s.SegmentBytes;
        });
        try
        {
            var client = bench.Client;
            var grains = bench.Grains;
            var warm = new byte[s.RecordSize];
            for (var i = 0; i < shards; i++)
            {
                await client.AppendAsync(warm, i); // activates every shard and the ordering layer
            }

            var append = LatencySummary.NewHistogram();
            var appendScheduled = LatencySummary.NewHistogram();
            var delivery = LatencySummary.NewHistogram();
            var confirmed = LatencySummary.NewHistogram();

            // One whole-log subscriber: speculative delivery from the send timestamp in the payload, and the
            // confirmation that covers each measured record.
            using var stopSubscriber = new CancellationTokenSource();
            var subscriber = Task.Run(() => DeliveryProbe.RunAsync(client.SubscribeAsync(0, stopSubscriber.Token), delivery, confirmed, stopSubscriber.Token));

            long issued = 0, completed = 0, completedInWindow = 0, failed = 0, timedOut = 0, outstanding = 0;
            var statusBefore = Array.Empty<ShardStatus>();
            (TimeSpan Cpu, long At) cpuBefore = default;
            var perAppender = s.Rate / (double)s.Appenders;
            var start = Stopwatch.GetTimestamp() + Stopwatch.Frequency / 100;
            var warmupEnd = start + (long)(s.Warmup * Stopwatch.Frequency);
            var end = warmupEnd + (long)(s.Seconds * Stopwatch.Frequency);
            var measuredStartStatus = Task.Run(async () =>
            {
                var wait = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), warmupEnd);
                if (wait > TimeSpan.Zero)
                {
                    await Task.Delay(wait);
                }

                cpuBefore = (Process.GetCurrentProcess().TotalProcessorTime, Stopwatch.GetTimestamp());
                statusBefore = await ShardStatusesAsync(grains, shards);
            });

            // Appenders' schedules are staggered so their appends interleave instead of arriving together.
            using var giveUp = new CancellationTokenSource();
            giveUp.CancelAfter(Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), end) + TimeSpan.FromSeconds(30));
            var appenders = OpenLoopPacer.RunAsync(s.Appenders, perAppender, start, end, (appender, k, due) =>
            {
                var measured = due >= warmupEnd;
                if (measured)
                {
                    Interlocked.Increment(ref issued);
                }

                Interlocked.Increment(ref outstanding);
                _ = AppendOneAsync(due, measured);
            });
            await appenders;
            var cpuAfter = (Cpu: Process.GetCurrentProcess().TotalProcessorTime, At: Stopwatch.GetTimestamp());
            await measuredStartStatus;
            var issueEnd = Stopwatch.GetTimestamp();
            var drainDeadline = issueEnd + 35 * Stopwatch.Frequency;
            while (Interlocked.Read(ref outstanding) > 0 && Stopwatch.GetTimestamp() < drainDeadline)
            {
                await Task.Delay(10);
            }

            var statusAfter = await ShardStatusesAsync(grains, shards);
            var achieved = Interlocked.Read(ref completedInWindow) / s.Seconds; // measured acks that arrived before the issuing stopped
            // Let delivery catch up with the last acknowledged records, then stop the subscriber.
            await Task.Delay(200);
            await stopSubscriber.CancelAsync();
            await subscriber;
            long noOps = 0, records = 0;
            for (var i = 0; i < shards; i++)
            {
                noOps += statusAfter[i].NoOpSlots - statusBefore[i].NoOpSlots;
                records += statusAfter[i].DurableRecords - statusBefore[i].DurableRecords;
            }

            var noOpFraction = noOps + records == 0 ? double.NaN : noOps / (double)(noOps + records);
            var best = (Rate: double.NaN, Failed: 0L, Latency: LatencySummary.FromTicks(LatencySummary.NewHistogram()), Cores: double.NaN, CpuUsPerAppend: double.NaN, Concurrency: 0);
            long satFailed = 0;
            foreach (var concurrency in s.SaturationConcurrency)
            {
                var level = await SaturateAsync(client, s, concurrency);
                satFailed += level.Failed;
                if (!(level.Rate <= best.Rate))
                {
                    best = (level.Rate, level.Failed, level.Latency, level.Cores, level.CpuUsPerAppend, concurrency);
                }
            }

            var (satRate, _, satLatency, satCores, satCpuPerAppend, satConcurrency) = best;
            var cpuSeconds = (cpuAfter.Cpu - cpuBefore.Cpu).TotalSeconds;
            var cores = cpuSeconds / Stopwatch.GetElapsedTime(cpuBefore.At, cpuAfter.At).TotalSeconds;
            return new RunResult(
                LatencySummary.FromTicks(append), LatencySummary.FromTicks(appendScheduled), LatencySummary.FromTicks(delivery), LatencySummary.FromTicks(confirmed),
                issued, completed, failed, timedOut, achieved, noOpFraction, satRate, satFailed, satLatency,
                cores, issued == 0 ? double.NaN : cpuSeconds * 1e6 / issued, satCores, satCpuPerAppend, satConcurrency);

            async Task AppendOneAsync(long scheduled, bool measured)
            {
                var payload = new byte[s.RecordSize];
                var sent = Stopwatch.GetTimestamp();
                BinaryPrimitives.WriteInt64LittleEndian(payload, sent);
                payload[8] = measured ? (byte)1 : (byte)0;
                try
                {
                    await client.AppendAsync(payload, cancellationToken: giveUp.Token);
                    if (measured)
                    {
                        var now = Stopwatch.GetTimestamp();
                        LatencySummary.RecordTicks(append, Stopwatch.GetElapsedTime(sent, now).Ticks);
                        LatencySummary.RecordTicks(appendScheduled, Stopwatch.GetElapsedTime(scheduled, now).Ticks);
                        Interlocked.Increment(ref completed);
                        if (now <= end)
                        {
                            Interlocked.Increment(ref completedInWindow);
                        }
                    }
                }
                catch (OperationCanceledException) when (measured)
                {
                    Interlocked.Increment(ref timedOut);
                }
                catch (Exception) when (measured)
                {
                    Interlocked.Increment(ref failed);
                }
                catch (Exception)
                {
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

    private static async Task<(double Rate, long Failed, LatencySummary Latency, double Cores, double CpuUsPerAppend)> SaturateAsync(SpecLogClient client, Settings s, int concurrency)
    {
        var histogram = LatencySummary.NewHistogram();
        long completed = 0, failed = 0;
        var measureStart = Stopwatch.GetTimestamp() + Stopwatch.Frequency; // 1 s ramp-up
        var cpuAtStart = Task.Run(async () =>
        {
            await Task.Delay(Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), measureStart));
            return (Cpu: Process.GetCurrentProcess().TotalProcessorTime, At: Stopwatch.GetTimestamp());
        });
        var end = measureStart + (long)(s.SaturationSeconds * Stopwatch.Frequency);
        var workers = Enumerable.Range(0, concurrency).Select(_ => Task.Run(async () =>
        {
            var payload = new byte[s.RecordSize];
            while (true)
            {
                var started = Stopwatch.GetTimestamp();
                if (started >= end)
                {
                    return;
                }

                try
                {
                    using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
                    await client.AppendAsync(payload, cancellationToken: timeout.Token);
                    var now = Stopwatch.GetTimestamp();
                    if (now >= measureStart && now <= end)
                    {
                        Interlocked.Increment(ref completed);
                        LatencySummary.RecordTicks(histogram, Stopwatch.GetElapsedTime(started, now).Ticks);
                    }
                }
                catch (Exception)
                {
                    Interlocked.Increment(ref failed);
                }
            }
        })).ToArray();
        await Task.WhenAll(workers);
        var cpuEnd = (Cpu: Process.GetCurrentProcess().TotalProcessorTime, At: Stopwatch.GetTimestamp());
        var cpuStart = await cpuAtStart;
        var cpuSeconds = (cpuEnd.Cpu - cpuStart.Cpu).TotalSeconds;
        return (completed / s.SaturationSeconds, failed, LatencySummary.FromTicks(histogram),
            cpuSeconds / Stopwatch.GetElapsedTime(cpuStart.At, cpuEnd.At).TotalSeconds, completed == 0 ? double.NaN : cpuSeconds * 1e6 / completed);
    }

    private static async Task<ShardStatus[]> ShardStatusesAsync(IGrainFactory grains, int shards) =>
        await Task.WhenAll(Enumerable.Range(0, shards).Select(i => grains.GetGrain<IShardGrain>(i).GetStatusAsync()));
}
