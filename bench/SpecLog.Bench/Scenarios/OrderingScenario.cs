using System.Diagnostics;
using System.Globalization;
using HdrHistogram;
using SpecLog.Bench.Reporting;
using SpecLog.Bench.Workloads;
using SpecLog.Client;
using SpecLog.Server;

namespace SpecLog.Bench.Scenarios;

/// <summary>
/// Append latency with a healthy and with a slowed ordering-layer leader, for each replication mode, side by side in
/// one run: an in-process cluster (default 3 silos, in-memory transport, real fsync'd storage) per configuration,
/// configurations interleaved over several rounds, medians of the per-round percentiles reported.
/// </summary>
public sealed class OrderingScenario : IScenario
{
    public string Name => "ordering";

    public string Description =>
        "append p50/p99 with and without a slowed pilot/leader, for several delays: Copilot vs Multi-Paxos (vs Single) "
        + "[--modes Copilot,MultiPaxos,Single --delay-ms 0.1,1,10,20 --silos 3 --replicas 3 --rate 1000 --record-size 100 --seconds 8 --warmup 2 --rounds 3 --pingpong-ms 6 --takeover-ms 10 --no-fsync --ordering Name=Value,... --out bench/results]";

    public async Task<int> RunAsync(BenchArgs args)
    {
        var modes = (args.Get("modes") ?? "Copilot,MultiPaxos,Single").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(m => Enum.Parse<SequencerReplication>(m, ignoreCase: true)).ToArray();
        var silos = args.GetInt("silos", 3);
        var replicas = args.GetInt("replicas", 3);
        var rate = args.GetInt("rate", 1000);
        var recordSize = args.GetInt("record-size", 100);
        var seconds = args.GetDouble("seconds", 8);
        var warmup = args.GetDouble("warmup", 2);
        var rounds = args.GetInt("rounds", 3);
        var delays = (args.Get("delay-ms") ?? "0.1,1,10,20").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(d => double.Parse(d, CultureInfo.InvariantCulture)).Distinct().Order().ToArray();
        var defaults = new ReplicationOptions();
        var pingPong = TimeSpan.FromMilliseconds(args.GetDouble("pingpong-ms", defaults.PingPongWait.TotalMilliseconds));
        var fsync = args.Get("no-fsync") is null;
        var takeover = TimeSpan.FromMilliseconds(args.GetDouble("takeover-ms", defaults.TakeoverTimeout.TotalMilliseconds));
        var ordering = OrderingOverrides.Parse(args.Get("ordering"));
        if (silos < 1 || rate < 1 || recordSize < 1 || seconds <= 0 || rounds < 1 || modes.Length == 0 || delays.Length == 0 || delays.Any(d => d <= 0))
        {
            throw new ArgumentException("--silos, --rate, --record-size, --seconds, --rounds and every --delay-ms value must be positive; --modes must name at least one mode.");
        }

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"ordering: {silos} silos in one process, {replicas} replicas, {rate} appends/s open loop, {seconds} s measured after {warmup} s warm-up, slow = every call to the pilot/leader delayed {string.Join(", ", delays)} ms, {rounds} rounds, fsync {(fsync ? "on" : "OFF")}, ping-pong wait {pingPong.TotalMilliseconds} ms, takeover {takeover.TotalMilliseconds} ms"));
        Console.WriteLine($"machine: {Environment.ProcessorCount} cores; load average {LoadAverage()}");
        // Single is the unreplicated baseline, healthy only: its sequencer grain handles one call at a time, so a delay
        // injected at its door would serialise (20 ms per report) instead of delaying each message as for the replicas.
        // Delay 0 = healthy.
        var configs = modes.SelectMany(m => m == SequencerReplication.Single
            ? new[] { (Mode: m, Delay: 0.0) }
            : delays.Select(d => (Mode: m, Delay: d)).Prepend((Mode: m, Delay: 0.0))).ToArray();
        var results = configs.ToDictionary(c => c, _ => new List<RunResult>());
        var progress = new ProgressLine("ordering", (long)rounds * configs.Length);
        long done = 0;
        for (var round = 0; round < rounds; round++)
        {
            // Reverse the order every other round so no configuration always runs on a warmer machine.
            foreach (var config in round % 2 == 0 ? configs : configs.Reverse())
            {
                progress.Step($"round {round + 1}/{rounds}, {Label(config.Mode, config.Delay)}");
                var r = await RunOnceAsync(config.Mode, TimeSpan.FromMilliseconds(config.Delay), silos, replicas, rate, recordSize, seconds, warmup, pingPong, takeover, fsync, ordering);
                results[config].Add(r);
                progress.Report(++done, string.Create(CultureInfo.InvariantCulture,
                    $"{Label(config.Mode, config.Delay)}: p50 {r.P50:F2} ms p90 {r.P90:F2} p99 {r.P99:F2} max {r.Max:F1}, done {r.Completed}/{r.Issued}, failed {r.Failed}{(config.Delay > 0 ? $", injected delay p50 {r.InjectedP50:F3} ms" : "")}"));
            }
        }

        progress.Done();
        var report = new BenchReport("Ordering layer: a slow pilot or leader (scenario 6)");
        var section = report.AddSection("Append latency, healthy and with every message to the pilot/leader delayed");
        section.AddText(string.Create(CultureInfo.InvariantCulture,
            $"{silos} silos in one process (in-memory transport between silos), {replicas} replicas, fsync {(fsync ? "on" : "OFF")}, {rate} appends/s open loop from one client ({recordSize} B records), latency from each append's scheduled start; "
            + $"{seconds} s per run after {warmup} s warm-up, a fresh cluster per run, {rounds} round(s) with the configurations interleaved (order reversed every other round); medians over rounds of each run's percentiles (ms). "
            + $"*Slow*: an incoming grain-call filter delays every call to the replica that pilots log 0 (the Multi-Paxos leader) by the given time before it runs; "
            + $"delays under 0.5 ms are spun (timers are too coarse), longer ones use a timer, so the *injected* column shows what the filter actually waited (p50). "
            + $"Copilot ping-pong wait {pingPong.TotalMilliseconds} ms, fast-takeover timeout {takeover.TotalMilliseconds} ms."));
        var table = section.AddTable("mode", "pilot delay (ms)", "injected p50 (ms)", "p50", "p90", "p99", "completed/offered", "failed", "slow ÷ healthy p50", "slow ÷ healthy p99");
        foreach (var config in configs)
        {
            var list = results[config];
            var healthy = results[(config.Mode, 0.0)];
            var p50 = Median(list.Select(r => r.P50));
            var p99 = Median(list.Select(r => r.P99));
            var ratio50 = p50 / Median(healthy.Select(r => r.P50));
            var ratio99 = p99 / Median(healthy.Select(r => r.P99));
            table.AddRow(config.Mode.ToString(), config.Delay == 0 ? "healthy" : Num(config.Delay), config.Delay == 0 ? "–" : Median(list.Select(r => r.InjectedP50)).ToString("F3", CultureInfo.InvariantCulture),
                F(p50), F(Median(list.Select(r => r.P90))), F(p99),
                $"{list.Sum(r => r.Completed)}/{list.Sum(r => r.Issued)}", list.Sum(r => r.Failed).ToString(CultureInfo.InvariantCulture), F(ratio50), F(ratio99));
            if (config.Delay > 0)
            {
                var mode = config.Mode.ToString().ToLowerInvariant();
                report.SetFigure($"slow_pilot_{Num(config.Delay).Replace('.', '_')}ms_p99_ratio_{mode}", Math.Round(ratio99, 3));
                if (config.Delay == delays.Max())
                {
                    report.SetFigure($"slow_pilot_p99_ratio_{mode}", Math.Round(ratio99, 3)); // the issue's key: the largest delay run (20 ms by default)
                }
            }
        }

        var slowModes = modes.Where(m => m != SequencerReplication.Single).ToArray();
        if (slowModes.Length > 0)
        {
            var sideBySide = report.AddSection("Side by side");
            var st = sideBySide.AddTable(["pilot delay (ms)", .. slowModes.Select(m => $"{m} p99 (ms)"), .. slowModes.Skip(1).Select(m => $"{m} ÷ {slowModes[0]} p99")]);
            foreach (var d in delays.Prepend(0))
            {
                var p99s = slowModes.Select(m => Median(results[(m, d)].Select(r => r.P99))).ToArray();
                st.AddRow([d == 0 ? "healthy" : Num(d), .. p99s.Select(F), .. p99s.Skip(1).Select(p => F(p / p99s[0]))]);
            }

            var chart = sideBySide.AddChart("p99-ratio", "Append p99 with a slow pilot ÷ healthy", "pilot delay per message (ms)", "slow ÷ healthy p99");
            chart.LogX = true;
            var p99Chart = sideBySide.AddChart("p99", "Append p99 against the pilot's delay", "pilot delay per message (ms)", "append p99 (ms)");
            p99Chart.LogX = true;
            foreach (var m in slowModes)
            {
                var healthy99 = Median(results[(m, 0.0)].Select(r => r.P99));
                chart.AddSeries(m.ToString(), delays, delays.Select(d => Median(results[(m, d)].Select(r => r.P99)) / healthy99));
                p99Chart.AddSeries(m.ToString(), delays, delays.Select(d => Median(results[(m, d)].Select(r => r.P99))));
            }
        }

        var outDir = args.Get("out") ?? Path.Combine("bench", "results");
        var (markdown, _) = await report.WriteAsync(outDir, "ordering");
        await report.MergeFiguresAsync(Path.Combine(outDir, "latest.json"), report.Figures.Keys.ToList());
        Console.WriteLine();
        Console.Write(report.ToMarkdown());
        Console.WriteLine($"wrote {markdown}");
        return results.Values.Any(l => l.Any(r => r.Completed == 0)) ? 2 : 0;
    }

    private static string Num(double v) => v.ToString("0.###", CultureInfo.InvariantCulture);

    private static string F(double value) => value.ToString("F2", CultureInfo.InvariantCulture);

    private static string Label(SequencerReplication mode, double delayMs) => delayMs == 0 ? $"{mode}, healthy" : $"{mode}, pilot +{Num(delayMs)} ms";

    private static double Median(IEnumerable<double> values)
    {
        var sorted = values.OrderBy(v => v).ToArray();
        return sorted.Length == 0 ? double.NaN : sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }

    private static string LoadAverage()
    {
        try
        {
            return File.ReadAllText("/proc/loadavg").Split(' ')[0];
        }
        catch (IOException)
        {
            return "?";
        }
    }

    private sealed record RunResult(double P50, double P90, double P99, double Max, long Issued, long Completed, long Failed, double InjectedP50);

    private static async Task<RunResult> RunOnceAsync(
        SequencerReplication mode, TimeSpan delay, int silos, int replicas, int rate, int recordSize, double seconds, double warmup, TimeSpan pingPong, TimeSpan takeover, bool fsync,
        Action<SpecLog.FixAnte.FixAnteOptions> ordering)
    {
        var bench = await BenchCluster.StartAsync(
            silos,
            o =>
            {
                o.Replication.Mode = mode;
                o.Fsync = fsync;
                o.Replication.Replicas = replicas;
                o.Replication.PingPongWait = pingPong;
                o.Replication.TakeoverTimeout = takeover;
                ordering(o.Ordering);
            },
            silo => silo.AddIncomingGrainCallFilter<SlowLeaderFilter>());
        try
        {
            var client = bench.Client;
            var payload = new byte[recordSize];
            await client.AppendAsync(payload); // activates shards and the ordering layer
            SlowLeaderFilter.Injected.Reset();
            if (delay > TimeSpan.Zero)
            {
                SlowLeaderFilter.Delay = delay;
                SlowLeaderFilter.Target = (await bench.Grains.GetGrain<ISequencerReplicaGrain>(1 % replicas).GetStatusAsync()).Pilot0;
            }

            var histogram = new LongHistogram(TimeSpan.FromSeconds(60).Ticks, 3);
            long issued = 0, completed = 0, failed = 0;
            var inFlight = new List<Task>();
            var total = (long)((warmup + seconds) * rate);
            var warmupCount = (long)(warmup * rate);
            var start = Stopwatch.GetTimestamp();
            await OpenLoopPacer.RunAsync(1, rate, start, start + (long)(total * (double)Stopwatch.Frequency / rate), (_, i, due) =>
            {
                var measured = i >= warmupCount;
                if (measured)
                {
                    issued++;
                }

                inFlight.Add(AppendOneAsync(client, payload, due, measured));
                if (inFlight.Count > 4096)
                {
                    inFlight.RemoveAll(t => t.IsCompleted);
                }
            });

            await Task.WhenAll(inFlight);
            if (mode != SequencerReplication.Single)
            {
                var statuses = await Task.WhenAll(Enumerable.Range(0, replicas).Select(r => bench.Grains.GetGrain<ISequencerReplicaGrain>(r).GetStatusAsync()));
                Console.WriteLine("    replicas: " + string.Join("; ", statuses.Select(st =>
                    $"r{st.Replica}{(st.ActivePilot0 ? " P0" : "")}{(st.ActivePilot1 ? " P1" : "")} exec {st.Executed0}+{st.Executed1} cmds {st.CommandsExecuted} fast {st.FastCommits} slow {st.SlowPaths} takeovers {st.Takeovers} skips {st.NullDependencySkips} wakeups {st.Wakeups}")));
            }

            return new RunResult(
                histogram.GetValueAtPercentile(50) / (double)TimeSpan.TicksPerMillisecond,
                histogram.GetValueAtPercentile(90) / (double)TimeSpan.TicksPerMillisecond,
                histogram.GetValueAtPercentile(99) / (double)TimeSpan.TicksPerMillisecond,
                histogram.GetMaxValue() / (double)TimeSpan.TicksPerMillisecond,
                issued,
                completed,
                failed,
                SlowLeaderFilter.InjectedP50Ms());

            async Task AppendOneAsync(SpecLogClient c, byte[] p, long scheduled, bool record)
            {
                try
                {
                    using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
                    await c.AppendAsync(p, cancellationToken: timeout.Token);
                    if (record)
                    {
                        var ticks = (long)(Stopwatch.GetElapsedTime(scheduled).Ticks);
                        lock (histogram)
                        {
                            histogram.RecordValue(Math.Min(ticks, histogram.HighestTrackableValue));
                            completed++;
                        }
                    }
                }
                catch (Exception) when (record)
                {
                    Interlocked.Increment(ref failed);
                }
                catch (Exception)
                {
                }
            }
        }
        finally
        {
            SlowLeaderFilter.Target = SlowLeaderFilter.None;
            await bench.DisposeAsync();
        }
    }

    /// <summary>
    /// Delays every call to the targeted replica before it reaches the grain (replica grains are reentrant, so calls
    /// overlap). Delays under 0.5 ms are spun, since timers fire on a millisecond grid; the delays actually waited are
    /// recorded in <see cref="Injected"/>.
    /// </summary>
    private sealed class SlowLeaderFilter : IIncomingGrainCallFilter
    {
        public const int None = -1;
        private static readonly TimeSpan s_spinBelow = TimeSpan.FromMilliseconds(0.5);
        private static int _target = None;

        public static TimeSpan Delay { get; set; }

        /// <summary>The delays injected (TimeSpan ticks).</summary>
        public static LongHistogram Injected { get; } = new(TimeSpan.FromSeconds(10).Ticks, 3);

        public static double InjectedP50Ms()
        {
            lock (Injected)
            {
                return Injected.TotalCount == 0 ? double.NaN : Injected.GetValueAtPercentile(50) / (double)TimeSpan.TicksPerMillisecond;
            }
        }

        public static int Target
        {
            get => Volatile.Read(ref _target);
            set => Volatile.Write(ref _target, value);
        }

        public async Task Invoke(IIncomingGrainCallContext context)
        {
            var target = Target;
            if (target != None && context.Grain is ISequencerReplicaGrain && context.TargetId.GetIntegerKey() == target)
            {
                var started = Stopwatch.GetTimestamp();
                if (Delay < s_spinBelow)
                {
                    await Task.Yield(); // off the caller's turn, then spin on this thread
                    var until = started + (long)(Delay.TotalSeconds * Stopwatch.Frequency);
                    while (Stopwatch.GetTimestamp() < until)
                    {
                        Thread.SpinWait(20);
                    }
                }
                else
                {
                    await Task.Delay(Delay);
                }

                var waited = Stopwatch.GetElapsedTime(started).Ticks;
                lock (Injected)
                {
                    Injected.RecordValue(Math.Min(waited, Injected.HighestTrackableValue));
                }
            }

            await context.Invoke();
        }
    }
}
