using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using HdrHistogram;
using SpecLog.Bench.Reporting;
using SpecLog.Silo.Tests;

namespace SpecLog.Bench.Scenarios;

/// <summary>
/// Shard failover and what replication costs, on real silo processes: three silos (nodes node-0..2) form one cluster
/// through Azure Table membership on a local Azurite, every shard with three replicas. Appends go to shard 0 open loop
/// at <c>--rate</c>/s; <c>--kills</c> times the silo of shard 0's leader is killed with SIGKILL, and the failover time
/// is from the kill to the first acknowledgement of an append started after it (the client finds the new leader by
/// itself); the silo is then restarted and its replica catches up before the next kill. Then the same open-loop load
/// runs for <c>--seconds</c> against a cluster with R = 1 and one with R = 3, alternating <c>--rounds</c> times, for
/// append latency side by side. Writes <c>&lt;out&gt;/failover.md</c> and <c>failover.json</c> and merges the headline
/// figures into <c>&lt;out&gt;/latest.json</c>.
/// </summary>
public sealed class FailoverScenario : IScenario
{
    private static string[] Nodes => ProcessCluster.Nodes;
    private static readonly TimeSpan StepTimeout = TimeSpan.FromSeconds(90);

    private static readonly string[] s_latestKeys =
        ["failover_p50_ms", "failover_max_ms", "failover_kills", "replicated_append_p50_ms_r1", "replicated_append_p50_ms_r3", "replicated_append_p99_ms_r1", "replicated_append_p99_ms_r3"];

    public string Name => "failover";

    public string Description =>
        "kill -9 the silo of shard 0's leader in a 3-process cluster (Azurite membership); time to the next acknowledged append; "
        + "then R = 1 vs R = 3 append latency [--kills 20 --rate 500 --seconds 10 --rounds 2 --shards 2 --out bench/results --silo-log <file>]";

    /// <summary>Runs silo processes, not an in-process log: no warm-up of the log in this process first.</summary>
    public bool UsesLog => false;

    public async Task<int> RunAsync(BenchArgs args)
    {
        var kills = args.GetInt("kills", 20);
        var rate = args.GetInt("rate", 500);
        var seconds = args.GetDouble("seconds", 10);
        var rounds = args.GetInt("rounds", 2);
        var shards = args.GetInt("shards", 2);
        var outDir = args.Get("out") ?? Path.Combine("bench", "results");
        if (kills < 0 || rate < 1 || seconds <= 0 || rounds < 0 || shards < 1)
        {
            throw new ArgumentException("--kills and --rounds must be at least 0; --rate, --seconds and --shards positive.");
        }

        var report = new BenchReport("Failover: shard leader killed, and what replication costs");
        Console.WriteLine($"failover: {kills} kills at {rate} appends/s, then R=1 vs R=3 for {seconds} s x {rounds}; machine: {report.Machine.Describe()}");
        using var cts = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) =>
        {
            e.Cancel = true;
            cts.Cancel();
        };
        await using var azurite = await AzuriteServer.StartAsync(cts.Token);

        var failovers = new List<double>();
        var servingTimes = new List<double>();
        if (kills > 0)
        {
            await using var cluster = await Cluster.StartAsync(azurite, shards, replicas: 3, cts.Token);
            await using var load = new OpenLoad(cluster.Client.Log, rate);
            await load.WaitForAcksAsync(rate, StepTimeout, cts.Token);
            for (var k = 0; k < kills; k++)
            {
                try
                {
                    await KillOnceAsync(k);
                    if (k == kills - 1 && args.Get("silo-log") is { } siloLog)
                    {
                        await File.WriteAllLinesAsync(siloLog, cluster.Output, CancellationToken.None); // every silo's output, for a failover's anatomy
                    }
                }
                catch (TimeoutException)
                {
                    var dump = Path.Combine(Path.GetTempPath(), $"speclog-failover-{DateTime.UtcNow:yyyyMMdd-HHmmss}.log");
                    await File.WriteAllLinesAsync(dump, cluster.Output, CancellationToken.None);
                    Console.WriteLine($"every silo's output: {dump}");
                    throw;
                }
            }

            async Task KillOnceAsync(int k)
            {
                var (leaderNode, epoch) = await cluster.LeaderOfShard0Async(cts.Token);
                cluster.Kill(leaderNode); // returns once the process is gone (SIGKILL, then waitpid)
                var killedAt = Stopwatch.GetTimestamp();
                var killedAtUtc = DateTime.UtcNow;
                var firstAck = await load.FirstAckOfAppendStartedAfterAsync(killedAt, StepTimeout, cts.Token);
                var ms = Stopwatch.GetElapsedTime(killedAt, firstAck).TotalMilliseconds;
                failovers.Add(ms);
                var serving = cluster.ServingAfter(killedAtUtc, epoch);
                if (serving is { } s)
                {
                    servingTimes.Add(s);
                }

                Console.WriteLine($"  kill {k + 1}/{kills}: {Nodes[leaderNode]} (leader of epoch {epoch}) killed; new leader serving after {(serving is { } v ? $"{v:0} ms" : "?")} (its log line), next append acknowledged after {ms:0} ms");
                await cluster.RestartAsync(leaderNode, cts.Token);
                await cluster.WaitForCaughtUpAsync(cts.Token);
            }

            report.SetFigure("failover_kills", failovers.Count);
            if (failovers.Count > 0)
            {
                var sorted = failovers.Order().ToArray();
                report.SetFigure("failover_p50_ms", Math.Round(sorted[sorted.Length / 2], 1));
                report.SetFigure("failover_max_ms", Math.Round(sorted[^1], 1));
                var section = report.AddSection("Failover of shard 0's leader (kill -9 of its silo)");
                section.AddText(
                    $"{failovers.Count} kills of the silo holding shard 0's leader, {rate} appends/s to shard 0 open loop, 3 replicas per shard. "
                    + "Failover = from the moment the killed process is gone to the first acknowledgement of an append started after it. The replicas notice the silent leader "
                    + "themselves (default SpecLog:ShardElectionTimeout: 400–800 ms, then a pre-vote and a vote), and the client leaves a leader that does not "
                    + "answer within its ReplicatedAppendCallTimeout (500 ms by default). The killed silo also holds an ordering replica, so the first commit "
                    + "may also wait for a Copilot view change.");
                var table = section.AddTable("measured", "p50 ms", "p90 ms", "max ms", "all (ms, in order)");
                table.AddRow("kill → next append acknowledged", Fmt(sorted[sorted.Length / 2]), Fmt(sorted[(int)(sorted.Length * 0.9)]), Fmt(sorted[^1]), string.Join(", ", failovers.Select(Fmt)));
                if (servingTimes.Count > 0)
                {
                    var serving = servingTimes.Order().ToArray();
                    table.AddRow("kill → new leader serving (its log line)", Fmt(serving[serving.Length / 2]), Fmt(serving[(int)(serving.Length * 0.9)]), Fmt(serving[^1]), string.Join(", ", servingTimes.Select(Fmt)));
                    report.SetFigure("failover_serving_p50_ms", Math.Round(serving[serving.Length / 2], 1));
                }
                Console.WriteLine($"failover: p50 {Fmt(sorted[sorted.Length / 2])} ms, max {Fmt(sorted[^1])} ms over {failovers.Count} kills");
            }
        }

        if (rounds > 0)
        {
            var histograms = new Dictionary<int, LongHistogram> { [1] = LatencySummary.NewHistogram(), [3] = LatencySummary.NewHistogram() };
            for (var round = 0; round < rounds; round++)
            {
                foreach (var replicas in new[] { 1, 3 })
                {
                    await using var cluster = await Cluster.StartAsync(azurite, shards, replicas, cts.Token);
                    await using var load = new OpenLoad(cluster.Client.Log, rate);
                    await load.WaitForAcksAsync(rate, StepTimeout, cts.Token); // warm-up second
                    load.Measure(histograms[replicas]);
                    await Task.Delay(TimeSpan.FromSeconds(seconds), cts.Token);
                    load.Measure(null);
                    var s = LatencySummary.FromTicks(histograms[replicas]);
                    Console.WriteLine($"  round {round + 1}, R={replicas}: {s.Count} appends so far, p50 {s.P50Ms} ms, p99 {LatencySummary.Ms(s.P99Us)} ms");
                }
            }

            var section = report.AddSection("What replication costs: R = 1 against R = 3");
            section.AddText(
                $"Three silo processes either way; {rate} appends/s open loop to shard 0, {seconds} s measured per round after a warm-up second, "
                + $"{rounds} alternating rounds. With R = 3 an entry counts as durable once two of its three replicas (on two processes) fsync'd it.");
            var table = section.AddTable(LatencySummary.Columns("replicas"));
            foreach (var (replicas, histogram) in histograms)
            {
                var s = LatencySummary.FromTicks(histogram);
                table.AddRow(s.ToRow($"R = {replicas}"));
                report.SetFigure($"replicated_append_p50_ms_r{replicas}", Math.Round(s.P50Us / 1000, 3));
                report.SetFigure($"replicated_append_p99_ms_r{replicas}", Math.Round(s.P99Us / 1000, 3));
            }
        }

        report.Finish();
        var (md, json) = await report.WriteAsync(outDir, "failover", cts.Token);
        await report.MergeFiguresAsync(Path.Combine(Path.GetFullPath(outDir), "latest.json"), s_latestKeys.Where(report.Figures.ContainsKey), cts.Token);
        Console.WriteLine($"wrote {md} and {json}");
        return 0;
    }

    private static string Fmt(double ms) => ms.ToString("0", CultureInfo.InvariantCulture);

    /// <summary>The three-process cluster (<see cref="ProcessCluster"/>) with what the failover measurement reads of shard 0.</summary>
    private sealed class Cluster : ProcessCluster
    {
        private readonly int _replicas;

        private Cluster(AzuriteServer azurite, int shards, int replicas)
            : base(azurite.ConnectionString, shards, FailoverScenario.StepTimeout, [$"--SpecLog:ShardReplicas={replicas}"])
        {
            _replicas = replicas;
        }

        /// <summary>Milliseconds from <paramref name="killedAtUtc"/> to the log line of shard 0's next leader (an epoch above <paramref name="epoch"/>) saying it serves.</summary>
        public double? ServingAfter(DateTime killedAtUtc, long epoch)
        {
            foreach (var line in Output)
            {
                var at = line.IndexOf(" leads epoch ", StringComparison.Ordinal);
                if (at < 0 || !line.Contains("Shard 0 replica", StringComparison.Ordinal))
                {
                    continue;
                }

                var rest = line[(at + " leads epoch ".Length)..];
                var end = rest.IndexOf(' ', StringComparison.Ordinal);
                var stamp = line.IndexOf("out] ", StringComparison.Ordinal);
                if (end > 0 && long.TryParse(rest[..end], CultureInfo.InvariantCulture, out var e) && e > epoch && stamp > 0
                    && TimeSpan.TryParseExact(line.Substring(stamp + 5, 12), @"hh\:mm\:ss\.fff", CultureInfo.InvariantCulture, out var time))
                {
                    var ms = (time - killedAtUtc.TimeOfDay).TotalMilliseconds;
                    return ms < -43_200_000 ? ms + 86_400_000 : ms; // across midnight
                }
            }

            return null;
        }

        public static Task<Cluster> StartAsync(AzuriteServer azurite, int shards, int replicas, CancellationToken ct) =>
            StartAsync(new Cluster(azurite, shards, replicas), ct);

        /// <summary>The node of shard 0's leader, and its epoch.</summary>
        public async Task<(int Node, long Epoch)> LeaderOfShard0Async(CancellationToken ct)
        {
            var deadline = Stopwatch.GetTimestamp() + (long)(StepTimeout.TotalSeconds * Stopwatch.Frequency);
            while (true)
            {
                var statuses = await Statuses(ct);
                var leader = statuses.FirstOrDefault(s => s.Role == "Leader");
                if (leader is not null)
                {
                    return (leader.Replica % Nodes.Length, leader.Epoch); // replica r of shard 0 lives on node r
                }

                if (Stopwatch.GetTimestamp() > deadline)
                {
                    throw new TimeoutException("No leader of shard 0.");
                }

                await Task.Delay(50, ct);
            }
        }

        /// <summary>Waits until every replica of shard 0 holds the leader's log (so the next kill leaves a full majority).</summary>
        public Task WaitForCaughtUpAsync(CancellationToken ct) => UntilAsync(
            async () =>
            {
                var statuses = await Statuses(ct);
                var leader = statuses.FirstOrDefault(s => s.Role == "Leader");
                return leader is not null && statuses.Count == Nodes.Length && statuses.All(s => s.LogEntries >= leader.LogEntries - 100);
            },
            "shard 0's replicas caught up",
            ct);

        private async Task<List<ShardStatus>> Statuses(CancellationToken ct)
        {
            var result = new List<ShardStatus>();
            for (var r = 0; r < _replicas; r++)
            {
                try
                {
                    result.Add(await Client.Grains.GetGrain<IShardGrain>(ShardKeys.Of(0, r)).GetStatusAsync().WaitAsync(TimeSpan.FromSeconds(2), ct));
                }
                catch (Exception e) when (e is TimeoutException or OrleansException)
                {
                    // The replica's silo is down or starting.
                }
            }

            return result;
        }
    }

    /// <summary>Appends to shard 0 at a fixed rate, each on its own (open loop), remembering when each started and was acknowledged.</summary>
    private sealed class OpenLoad : IAsyncDisposable
    {
        private readonly CancellationTokenSource _stop = new();
        private readonly Task _run;
        private readonly ConcurrentQueue<(long Started, long Acked)> _acks = new();
        private readonly object _gate = new();
        private LongHistogram? _histogram;
        private long _count;

        public OpenLoad(SpecLog.Client.SpecLogClient client, int rate)
        {
            var payload = new byte[100];
            _run = Task.Run(async () =>
            {
                var interval = Stopwatch.Frequency / (double)rate;
                var next = (double)Stopwatch.GetTimestamp();
                while (!_stop.IsCancellationRequested)
                {
                    next += interval;
                    var wait = (long)next - Stopwatch.GetTimestamp();
                    if (wait > 0)
                    {
                        await Task.Delay(TimeSpan.FromSeconds(wait / (double)Stopwatch.Frequency), CancellationToken.None);
                    }

                    var started = Stopwatch.GetTimestamp();
                    _ = AppendAsync(client, payload, started);
                }
            });
        }

        public void Measure(LongHistogram? histogram)
        {
            lock (_gate)
            {
                _histogram = histogram;
            }
        }

        public async Task WaitForAcksAsync(int count, TimeSpan timeout, CancellationToken ct)
        {
            var target = Interlocked.Read(ref _count) + count;
            var deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
            while (Interlocked.Read(ref _count) < target)
            {
                if (Stopwatch.GetTimestamp() > deadline)
                {
                    throw new TimeoutException($"Fewer than {count} appends acknowledged within {timeout}.");
                }

                await Task.Delay(20, ct);
            }
        }

        /// <summary>When the first append started at or after <paramref name="since"/> was acknowledged.</summary>
        public async Task<long> FirstAckOfAppendStartedAfterAsync(long since, TimeSpan timeout, CancellationToken ct)
        {
            var deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
            while (true)
            {
                var first = long.MaxValue;
                foreach (var (started, acked) in _acks)
                {
                    if (started >= since && acked < first)
                    {
                        first = acked;
                    }
                }

                if (first != long.MaxValue)
                {
                    // Later acknowledgements of earlier-started appends may still arrive; the earliest seen so far is final
                    // once a moment has passed (each append is acknowledged on its own).
                    await Task.Delay(100, ct);
                    foreach (var (started, acked) in _acks)
                    {
                        if (started >= since && acked < first)
                        {
                            first = acked;
                        }
                    }

                    while (_acks.Count > 100_000 && _acks.TryDequeue(out _))
                    {
                    }

                    return first;
                }

                if (Stopwatch.GetTimestamp() > deadline)
                {
                    throw new TimeoutException("No append acknowledged after the kill.");
                }

                await Task.Delay(5, ct);
            }
        }

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            await _run;
            _stop.Dispose();
        }

        private async Task AppendAsync(SpecLog.Client.SpecLogClient client, byte[] payload, long started)
        {
            try
            {
                await client.AppendAsync(payload, shard: 0);
            }
            catch (Exception) when (_stop.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                Console.WriteLine($"  append failed: {e.GetType().Name}: {e.Message.Split('\n')[0]}");
                return;
            }

            var acked = Stopwatch.GetTimestamp();
            Interlocked.Increment(ref _count);
            _acks.Enqueue((started, acked));
            lock (_gate)
            {
                if (_histogram is { } h)
                {
                    LatencySummary.RecordStopwatchTicks(h, acked - started);
                }
            }
        }
    }
}
