using System.Diagnostics;
using System.Globalization;
using HdrHistogram;
using SpecLog.Bench.Reporting;
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
        "append p50/p99 with and without a slowed pilot/leader: Copilot vs Multi-Paxos (vs Single) "
        + "[--modes Copilot,MultiPaxos,Single --silos 3 --replicas 3 --rate 1000 --seconds 8 --warmup 2 --rounds 3 --delay-ms 20 --pingpong-ms 1 --takeover-ms 10 --no-fsync]";

    public async Task<int> RunAsync(BenchArgs args)
    {
        var modes = (args.Get("modes") ?? "Copilot,MultiPaxos,Single").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(m => Enum.Parse<SequencerReplication>(m, ignoreCase: true)).ToArray();
        var silos = args.GetInt("silos", 3);
        var replicas = args.GetInt("replicas", 3);
        var rate = args.GetInt("rate", 1000);
        var seconds = args.GetDouble("seconds", 8);
        var warmup = args.GetDouble("warmup", 2);
        var rounds = args.GetInt("rounds", 3);
        var delay = TimeSpan.FromMilliseconds(args.GetDouble("delay-ms", 20));
        var defaults = new ReplicationOptions();
        var pingPong = TimeSpan.FromMilliseconds(args.GetDouble("pingpong-ms", defaults.PingPongWait.TotalMilliseconds));
        var fsync = args.Get("no-fsync") is null;
        var takeover = TimeSpan.FromMilliseconds(args.GetDouble("takeover-ms", defaults.TakeoverTimeout.TotalMilliseconds));
        if (silos < 1 || rate < 1 || seconds <= 0 || rounds < 1)
        {
            throw new ArgumentException("--silos, --rate, --seconds and --rounds must be positive.");
        }

        Console.WriteLine($"ordering: {silos} silos in one process, {replicas} replicas, {rate} appends/s open loop, {seconds} s measured after {warmup} s warm-up, slow = every call to the pilot/leader delayed {delay.TotalMilliseconds} ms, {rounds} rounds, fsync {(fsync ? "on" : "OFF")}, ping-pong wait {pingPong.TotalMilliseconds} ms, takeover {takeover.TotalMilliseconds} ms");
        Console.WriteLine($"machine: {Environment.ProcessorCount} cores; load average {LoadAverage()}");
        // Single is the unreplicated baseline, healthy only: its sequencer grain handles one call at a time, so a delay
        // injected at its door would serialise (20 ms per report) instead of delaying each message as for the replicas.
        var configs = modes.SelectMany(m => m == SequencerReplication.Single
            ? new[] { (Mode: m, Slow: false) }
            : new[] { (Mode: m, Slow: false), (Mode: m, Slow: true) }).ToArray();
        var results = configs.ToDictionary(c => c, _ => new List<RunResult>());
        for (var round = 0; round < rounds; round++)
        {
            foreach (var config in configs)
            {
                var r = await RunOnceAsync(config.Mode, config.Slow, silos, replicas, rate, seconds, warmup, delay, pingPong, takeover, fsync);
                results[config].Add(r);
                Console.WriteLine($"  round {round + 1} {Label(config.Mode, config.Slow),-24} p50 {r.P50:F2} ms  p90 {r.P90:F2}  p99 {r.P99:F2}  max {r.Max:F1}  done {r.Completed}/{r.Issued}  failed {r.Failed}");
            }
        }

        Console.WriteLine();
        Console.WriteLine("| configuration | append p50 (ms) | p90 | p99 | completed/offered | slow/healthy p50 | slow/healthy p99 |");
        Console.WriteLine("|---|---|---|---|---|---|---|");
        foreach (var config in configs)
        {
            var list = results[config];
            var healthy = results[(config.Mode, false)];
            var p50 = Median(list.Select(r => r.P50));
            var p99 = Median(list.Select(r => r.P99));
            var ratio50 = p50 / Median(healthy.Select(r => r.P50));
            var ratio99 = p99 / Median(healthy.Select(r => r.P99));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {Label(config.Mode, config.Slow)} | {p50:F2} | {Median(list.Select(r => r.P90)):F2} | {p99:F2} | {list.Sum(r => r.Completed)}/{list.Sum(r => r.Issued)} | {ratio50:F2} | {ratio99:F2} |"));
        }

        Console.WriteLine("(medians over rounds of each run's percentiles; latency from each append's scheduled start, so queueing counts)");

        var report = new BenchReport("Ordering layer: a slow pilot or leader (scenario 6)");
        var section = report.AddSection($"Append latency, healthy and with every message to the pilot/leader delayed {delay.TotalMilliseconds} ms");
        section.AddText(string.Create(CultureInfo.InvariantCulture,
            $"{silos} silos in one process, {replicas} replicas, {rate} appends/s open loop, {seconds} s per run after {warmup} s warm-up, {rounds} round(s) interleaved; medians over rounds of each run's percentiles (ms)."));
        var table = section.AddTable("configuration", "p50", "p90", "p99", "completed/offered", "slow ÷ healthy p50", "slow ÷ healthy p99");
        foreach (var config in configs)
        {
            var list = results[config];
            var healthy = results[(config.Mode, false)];
            var p50 = Median(list.Select(r => r.P50));
            var p99 = Median(list.Select(r => r.P99));
            var ratio99 = p99 / Median(healthy.Select(r => r.P99));
            table.AddRow(Label(config.Mode, config.Slow), F(p50), F(Median(list.Select(r => r.P90))), F(p99),
                $"{list.Sum(r => r.Completed)}/{list.Sum(r => r.Issued)}", F(p50 / Median(healthy.Select(r => r.P50))), F(ratio99));
            if (config.Slow)
            {
                report.SetFigure($"slow_pilot_p99_ratio_{config.Mode.ToString().ToLowerInvariant()}", ratio99);
            }
        }

        report.Finish();
        var outDir = args.Get("out") ?? Path.Combine("bench", "results");
        var (markdown, _) = await report.WriteAsync(outDir, "ordering");
        await report.MergeFiguresAsync(Path.Combine(outDir, "latest.json"), report.Figures.Keys.ToList());
        Console.WriteLine($"wrote {markdown}");
        return 0;
    }

    private static string F(double value) => value.ToString("F2", CultureInfo.InvariantCulture);

    private static string Label(SequencerReplication mode, bool slow) => $"{mode}{(slow ? ", slow leader" : ", healthy")}";

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

    private sealed record RunResult(double P50, double P90, double P99, double Max, long Issued, long Completed, long Failed);

    private static async Task<RunResult> RunOnceAsync(
        SequencerReplication mode, bool slow, int silos, int replicas, int rate, double seconds, double warmup, TimeSpan delay, TimeSpan pingPong, TimeSpan takeover, bool fsync)
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
            },
            silo => silo.AddIncomingGrainCallFilter<SlowLeaderFilter>());
        try
        {
            var client = bench.Client;
            var payload = new byte[100];
            await client.AppendAsync(payload); // activates shards and the ordering layer
            if (slow)
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
            for (long i = 0; i < total; i++)
            {
                var due = start + (long)(i * (double)Stopwatch.Frequency / rate);
                while (Stopwatch.GetTimestamp() < due)
                {
                    var wait = (due - Stopwatch.GetTimestamp()) * 1000 / Stopwatch.Frequency;
                    if (wait > 1)
                    {
                        await Task.Delay((int)wait - 1);
                    }
                    else
                    {
                        Thread.SpinWait(50);
                    }
                }

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
            }

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
                failed);

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

    /// <summary>Delays every call to the targeted replica before it reaches the grain (replica grains are reentrant, so calls overlap).</summary>
    private sealed class SlowLeaderFilter : IIncomingGrainCallFilter
    {
        public const int None = -1;
        private static int _target = None;

        public static TimeSpan Delay { get; set; }

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
                await Task.Delay(Delay);
            }

            await context.Invoke();
        }
    }
}
