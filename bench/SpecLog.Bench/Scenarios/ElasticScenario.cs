using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using Orleans.Hosting;
using SpecLog.Bench.Reporting;
using SpecLog.Client;
using SpecLog.Server;

namespace SpecLog.Bench.Scenarios;

/// <summary>
/// Cuts one grain off, as when every replica of a shard is unreachable: calls to it fail, and so do its own calls.
/// First only its reports may be lost (<see cref="Set"/>): it goes on delivering records it never reports.
/// </summary>
internal sealed class BenchCutOff : IIncomingGrainCallFilter, IOutgoingGrainCallFilter
{
    private static volatile HashSet<GrainId> _grains = [];
    private static volatile bool _reportsOnly;

    /// <summary>Cuts <paramref name="grains"/> off (none: nothing); with <paramref name="reportsOnly"/> only their calls to the ordering layer fail.</summary>
    public static void Set(IEnumerable<GrainId> grains, bool reportsOnly = false)
    {
        _reportsOnly = reportsOnly;
        _grains = [.. grains];
    }

    public Task Invoke(IIncomingGrainCallContext context) =>
        !_reportsOnly && _grains.Contains(context.TargetId) ? throw new SiloUnavailableException("bench: shard cut off") : context.Invoke();

    public Task Invoke(IOutgoingGrainCallContext context) =>
        context.SourceId is { } source && _grains.Contains(source) && (!_reportsOnly || context.InterfaceName.Contains("Sequencer", StringComparison.Ordinal))
            ? throw new SiloUnavailableException("bench: shard cut off")
            : context.Invoke();
}

/// <summary>
/// Elasticity: shards added and removed while the log serves an open-loop load through <see cref="SpecLogClient"/>
/// (appends name no shard) and a whole-log subscriber reads. Measured per change: the time until the ordering layer has
/// decided it, and for an added shard the time until the subscriber receives the shard's first record (GSN order, so
/// every position before it is known too). Also counted: appends that failed, and mis-speculation notices. Last, a
/// whole-shard failure: one shard's reports are lost for 300 ms, then it is cut off entirely; measured are the times
/// from its silence to the ordering layer's decision and to the subscriber's mis-speculation notice.
/// </summary>
public sealed class ElasticScenario : IScenario
{
    public string Name => "elastic";

    public string Description =>
        "add and remove shards under load: add → decided, add → first delivered record of the new shard, remove → decided "
        + "[--configs Copilot:1,Copilot:3 --shards 2 --adds 4 --rate 2000 --gap 0.5 --out bench/results]";

    public async Task<int> RunAsync(BenchArgs args)
    {
        var configs = (args.Get("configs") ?? "Copilot:1,Copilot:3").Split(',', StringSplitOptions.RemoveEmptyEntries)
            .Select(c => c.Split(':')).Select(p => (Mode: Enum.Parse<SequencerReplication>(p[0], ignoreCase: true), Silos: int.Parse(p[1], CultureInfo.InvariantCulture))).ToArray();
        var shards = args.GetInt("shards", 2);
        var adds = args.GetInt("adds", 4);
        var rate = args.GetDouble("rate", 2000);
        var gap = args.GetDouble("gap", 0.5);
        var outDir = args.Get("out") ?? Path.Combine("bench", "results");
        if (shards < 1 || adds < 1 || rate <= 0 || gap < 0)
        {
            throw new ArgumentException("--shards and --adds at least 1, --rate positive, --gap not negative.");
        }

        var report = new BenchReport("Elasticity: shards added and removed under load");
        report.AddSection("Setup").AddText(string.Create(CultureInfo.InvariantCulture,
            $"A fresh in-process cluster per configuration, starting with {shards} shards (3 replicas each on 3 silos, 1 on 1 silo), fsync on, default Fix-Ante settings. "
            + $"Appends at {rate:0} /s open loop through `SpecLogClient.AppendAsync` without naming a shard (100 B records); one whole-log subscriber from GSN 0. "
            + $"{adds} times `AddShardAsync`, {gap} s apart, then the added shards are removed again with `RemoveShardAsync`. "
            + $"*decided*: the call's own time (the ordering layer has decided the window of the change); *first delivery*: from the call to the subscriber's first record of the new shard, in GSN order."));
        var table = report.AddSection("Shard-set changes").AddTable("configuration", "adds", "add → decided p50 (ms)", "max", "add → first delivery p50 (ms)", "max", "remove → decided p50 (ms)", "max", "appends", "failed", "mis-speculations");
        var where = report.AddSection("Where an add's time goes").AddTable("configuration", "join taken p50 (ms)", "decided", "new shard has a leader", "its first record durable", "subscriber reached the new window", "first record delivered", "its GSN − window start (p50)");
        report.Sections[^1].AddText(
            "Each from the `AddShardAsync` call, p50 over the adds. *Join taken*: the ordering layer's status counts the shard (its replicas start then); *decided*: the call returned; "
            + "*leader*: one of its replicas leads; *first record durable*: its leader holds a record on a majority (those two are polled every 2 ms); *reached the new window*: the subscriber received a record at or past the first GSN of the window that gives the shard slots; *delivered*: the shard's first record reached the subscriber.");
        var failures = report.AddSection("Whole-shard failure").AddTable("configuration", "silence → declared failed (ms)", "silence → mis-speculation notice (ms)", "declared → notice (ms)", "records taken back", "appends failed on the shard");
        report.Sections[^1].AddText(string.Create(CultureInfo.InvariantCulture,
            $"After the shard-set changes, shard 0's reports are lost for 300 ms (it keeps delivering records it does not report), then it is cut off entirely (calls to it and from it fail). "
            + $"`SpecLog:ShardFailureTimeout` is {FailureTimeout.TotalMilliseconds:0} ms here (5 s by default with replicated shards, above any failover). *Records taken back*: the lost records the subscriber had received, which the notice names."));
        var exit = 0;
        foreach (var (mode, silos) in configs)
        {
            var label = $"{mode} on {silos} silo{(silos > 1 ? "s" : "")}";
            Console.WriteLine($"elastic: {label}");
            await using var cluster = await BenchCluster.StartAsync(silos, o =>
            {
                o.ShardCount = shards;
                o.Replication.Mode = mode;
                o.ShardReplicas = silos >= 3 ? 3 : 1;
                o.ShardFailureTimeout = FailureTimeout;
            }, silo =>
            {
                silo.AddIncomingGrainCallFilter<BenchCutOff>();
                silo.AddOutgoingGrainCallFilter<BenchCutOff>();
            });
            var result = await MeasureAsync(cluster, adds, rate, gap);
            var key = $"{mode.ToString().ToLowerInvariant()}_{silos}silo";
            table.AddRow(label, adds.ToString(CultureInfo.InvariantCulture),
                Ms(Quantile(result.Decided, 0.5)), Ms(Quantile(result.Decided, 1)),
                Ms(Quantile(result.FirstDelivery, 0.5)), Ms(Quantile(result.FirstDelivery, 1)),
                Ms(Quantile(result.Removed, 0.5)), Ms(Quantile(result.Removed, 1)),
                result.Appends.ToString(CultureInfo.InvariantCulture), result.Failed.ToString(CultureInfo.InvariantCulture), result.MisSpeculations.ToString(CultureInfo.InvariantCulture));
            report.SetFigure($"elastic_add_first_delivery_p50_ms_{key}", Math.Round(Quantile(result.FirstDelivery, 0.5), 1));
            report.SetFigure($"elastic_add_first_delivery_max_ms_{key}", Math.Round(Quantile(result.FirstDelivery, 1), 1));
            report.SetFigure($"elastic_add_decided_p50_ms_{key}", Math.Round(Quantile(result.Decided, 0.5), 1));
            report.SetFigure($"elastic_failed_appends_{key}", result.Failed);
            report.SetFigure($"shard_failure_declared_ms_{key}", Math.Round(result.Declared, 1));
            report.SetFigure($"shard_failure_notice_ms_{key}", Math.Round(result.Notice, 1));
            where.AddRow(label, Ms(Quantile(result.Stages.Select(x => x.JoinTaken).ToList(), 0.5)), Ms(Quantile(result.Stages.Select(x => x.Decided).ToList(), 0.5)),
                Ms(Quantile(result.Stages.Select(x => x.Leader).ToList(), 0.5)), Ms(Quantile(result.Stages.Select(x => x.FirstDurable).ToList(), 0.5)),
                Ms(Quantile(result.Stages.Select(x => x.WindowReached).ToList(), 0.5)), Ms(Quantile(result.Stages.Select(x => x.FirstDelivery).ToList(), 0.5)),
                Ms(Quantile(result.Stages.Select(x => (double)x.SlotsIntoWindow).ToList(), 0.5)));
            failures.AddRow(label, Ms(result.Declared), Ms(result.Notice), Ms(result.Notice - result.Declared), result.Lost.ToString(CultureInfo.InvariantCulture), result.FailedOnShard.ToString(CultureInfo.InvariantCulture));
            exit = result.Failed > 0 || result.MisSpeculations > 0 || result.FirstDelivery.Count < adds ? 2 : exit;
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  add → first delivery p50 {Quantile(result.FirstDelivery, 0.5):0} ms max {Quantile(result.FirstDelivery, 1):0} ms; {result.Failed} of {result.Appends} appends failed; {result.MisSpeculations} mis-speculations"));
        }

        Console.WriteLine();
        Console.Write(report.ToMarkdown());
        var (md, json) = await report.WriteAsync(outDir, "elastic");
        await report.MergeFiguresAsync(Path.Combine(outDir, "latest.json"), report.Figures.Keys.ToList());
        Console.WriteLine($"wrote {md} and {json}; merged its figures into latest.json");
        return exit;
    }

    private static readonly TimeSpan FailureTimeout = TimeSpan.FromMilliseconds(500);

    /// <summary>Where an add's time went, each from the <c>AddShardAsync</c> call (ms): see <see cref="WatchAddAsync"/>.</summary>
    private sealed record AddStages(double JoinTaken, double Decided, double Leader, double FirstDurable, double WindowReached, double FirstDelivery, long SlotsIntoWindow);

    /// <summary>
    /// Polls (every 2 ms, until cancelled) when the ordering layer took the join (its status counts the shard), when one
    /// of the new shard's replicas leads, and when the leader holds its first record durably (a majority has it).
    /// </summary>
    private static async Task<(double JoinTaken, double Leader, double FirstDurable)> WatchAddAsync(BenchCluster cluster, int shard, int replicas, long t0, CancellationToken ct)
    {
        double joinTaken = double.NaN, leader = double.NaN, durable = double.NaN;
        var sequencer = cluster.Grains.GetGrain<ISequencerGrain>(0);
        try
        {
            while (!ct.IsCancellationRequested && double.IsNaN(durable))
            {
                var at = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
                if (double.IsNaN(joinTaken) && (await sequencer.GetStatusAsync()).ShardCount > shard)
                {
                    joinTaken = at;
                }

                if (!double.IsNaN(joinTaken))
                {
                    foreach (var status in await Task.WhenAll(Enumerable.Range(0, replicas).Select(r => cluster.Grains.GetGrain<IShardGrain>(ShardKeys.Of(shard, r)).GetStatusAsync())))
                    {
                        if (status.Role is "Leader" or "Single")
                        {
                            leader = double.IsNaN(leader) ? at : leader;
                            durable = status.DurableRecords > 0 ? at : durable;
                        }
                    }
                }

                await Task.Delay(2, ct);
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }

        return (joinTaken, leader, durable);
    }

    private sealed record Measured(List<double> Decided, List<double> FirstDelivery, List<double> Removed, List<AddStages> Stages, long Appends, long Failed, long MisSpeculations,
        double Declared, double Notice, long Lost, long FailedOnShard);

    private static async Task<Measured> MeasureAsync(BenchCluster cluster, int adds, double rate, double gap)
    {
        var client = cluster.Client;
        long noticeAt = 0, lost = 0, failedOnShard = 0;
        var records = new ConcurrentDictionary<long, int>();
        using var stop = new CancellationTokenSource();
        var firstSeen = new ConcurrentDictionary<int, (long At, long Gsn)>();
        var progress = new List<(long Gsn, long At)>(); // the subscriber's records, in GSN order, with arrival times
        var seen = new SemaphoreSlim(0);
        long misSpeculations = 0;
        var subscriber = Task.Run(async () =>
        {
            try
            {
                await foreach (var e in client.SubscribeAsync(0, stop.Token))
                {
                    if (e is SpeculativeRecord r)
                    {
                        records[r.Gsn] = r.Shard;
                        var now = Stopwatch.GetTimestamp();
                        lock (progress)
                        {
                            progress.Add((r.Gsn, now));
                        }

                        if (firstSeen.TryAdd(r.Shard, (now, r.Gsn)))
                        {
                            seen.Release();
                        }
                    }
                    else if (e is MisSpeculatedRange m)
                    {
                        Interlocked.Increment(ref misSpeculations);
                        Interlocked.CompareExchange(ref noticeAt, Stopwatch.GetTimestamp(), 0);
                        Interlocked.Add(ref lost, records.Count(kv => kv.Key >= m.FromGsn && kv.Value == m.Shard));
                        foreach (var g in records.Keys.Where(g => g >= m.FromGsn).ToList())
                        {
                            records.TryRemove(g, out _);
                        }
                    }
                }
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
            }
        });

        long appends = 0, failed = 0;
        var pending = new ConcurrentDictionary<Task, byte>();
        var payload = new byte[100];
        var load = Task.Run(async () =>
        {
            var started = Stopwatch.GetTimestamp();
            using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(1));
            while (await timer.WaitForNextTickAsync(CancellationToken.None) && !stop.IsCancellationRequested)
            {
                var due = (long)(Stopwatch.GetElapsedTime(started).TotalSeconds * rate);
                while (Interlocked.Read(ref appends) < due)
                {
                    Interlocked.Increment(ref appends);
                    var append = client.AppendAsync(payload);
                    pending.TryAdd(append, 0);
                    _ = append.ContinueWith(t =>
                    {
                        if (t.Exception?.InnerException is ShardFailedException)
                        {
                            Interlocked.Increment(ref failedOnShard); // waiting on the shard that failed: expected
                        }
                        else if (!t.IsCompletedSuccessfully)
                        {
                            Interlocked.Increment(ref failed);
                        }

                        pending.TryRemove(t, out _);
                    }, TaskScheduler.Default);
                }
            }
        });

        await Task.Delay(TimeSpan.FromSeconds(1)); // warm: windows follow the rate
        var decided = new List<double>();
        var firstDelivery = new List<double>();
        var added = new List<int>();
        var stages = new List<AddStages>();
        var sequencer = cluster.Grains.GetGrain<ISequencerGrain>(0);
        var replicaCount = (await sequencer.GetStatusAsync()).ShardReplicas;
        for (var i = 0; i < adds; i++)
        {
            var shard = (await sequencer.GetStatusAsync()).ShardCount;
            using var watching = new CancellationTokenSource();
            var t0 = Stopwatch.GetTimestamp();
            var watch = WatchAddAsync(cluster, shard, replicaCount, t0, watching.Token);
            var change = await client.AddShardAsync();
            var decidedAt = Stopwatch.GetTimestamp();
            decided.Add(Stopwatch.GetElapsedTime(t0, decidedAt).TotalMilliseconds);
            added.Add(change.Shard);
            using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            try
            {
                while (!firstSeen.ContainsKey(change.Shard))
                {
                    await seen.WaitAsync(wait.Token);
                }

                var (firstAt, firstGsn) = firstSeen[change.Shard];
                firstDelivery.Add(Stopwatch.GetElapsedTime(t0, firstAt).TotalMilliseconds);
                long reachedAt;
                lock (progress)
                {
                    reachedAt = progress.FirstOrDefault(p => p.Gsn >= change.StartGsn).At;
                }

                await watching.CancelAsync();
                var (joinTaken, leader, durable) = await watch;
                stages.Add(new AddStages(joinTaken, Stopwatch.GetElapsedTime(t0, decidedAt).TotalMilliseconds, leader, durable,
                    reachedAt == 0 ? double.NaN : Stopwatch.GetElapsedTime(t0, reachedAt).TotalMilliseconds,
                    Stopwatch.GetElapsedTime(t0, firstAt).TotalMilliseconds, firstGsn - change.StartGsn));
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"  shard {change.Shard}: join taken {joinTaken:0.0} ms, decided {stages[^1].Decided:0.0}, leader {leader:0.0}, first record durable {durable:0.0}, subscriber reached the window {stages[^1].WindowReached:0.0}, first record delivered {stages[^1].FirstDelivery:0.0} (GSN {firstGsn}, {firstGsn - change.StartGsn} into window {change.Window})"));
            }
            catch (OperationCanceledException)
            {
                Console.Error.WriteLine($"  shard {change.Shard}: no record delivered within 10 s of adding it");
            }

            await Task.Delay(TimeSpan.FromSeconds(gap));
        }

        var removed = new List<double>();
        foreach (var shard in added)
        {
            var t0 = Stopwatch.GetTimestamp();
            await client.RemoveShardAsync(shard);
            removed.Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
            await Task.Delay(TimeSpan.FromSeconds(gap));
        }

        // A whole-shard failure: shard 0's reports are lost, then everything to and from it.
        var misSpeculationsBefore = Interlocked.Read(ref misSpeculations);
        var victim = (await client.GetActiveShardsAsync())[0];
        var replicas = (await sequencer.GetStatusAsync()).ShardReplicas;
        var all = Enumerable.Range(0, replicas).Select(r => cluster.Grains.GetGrain<IShardGrain>(ShardKeys.Of(victim, r)).GetGrainId()).ToList();
        BenchCutOff.Set(all, reportsOnly: true);
        var silent = Stopwatch.GetTimestamp();
        await Task.Delay(300);
        BenchCutOff.Set(all); // every replica gone
        double declared = double.NaN, notice = double.NaN;
        while (Stopwatch.GetElapsedTime(silent) < TimeSpan.FromSeconds(20))
        {
            if (((await sequencer.GetStatusAsync()).FailedShards ?? []).Contains(victim))
            {
                declared = Stopwatch.GetElapsedTime(silent).TotalMilliseconds;
                break;
            }

            await Task.Delay(5);
        }

        await Task.Delay(TimeSpan.FromSeconds(1));
        if (Interlocked.Read(ref noticeAt) is var at && at != 0 && Interlocked.Read(ref misSpeculations) > misSpeculationsBefore)
        {
            notice = Stopwatch.GetElapsedTime(silent, at).TotalMilliseconds;
        }

        await stop.CancelAsync();
        await load;
        await Task.WhenAll(pending.Keys).ContinueWith(_ => { }, TaskScheduler.Default);
        await subscriber;
        BenchCutOff.Set([]);
        return new Measured(decided, firstDelivery, removed, stages, Interlocked.Read(ref appends), Interlocked.Read(ref failed), misSpeculationsBefore,
            declared, notice, Interlocked.Read(ref lost), Interlocked.Read(ref failedOnShard));
    }

    private static double Quantile(List<double> values, double q)
    {
        var sorted = values.Where(double.IsFinite).Order().ToArray(); // a stage not seen (NaN) is left out
        if (sorted.Length == 0)
        {
            return double.NaN;
        }

        return sorted[Math.Min(sorted.Length - 1, (int)(q * sorted.Length))];
    }

    private static string Ms(double value) => double.IsFinite(value) ? value.ToString("0", CultureInfo.InvariantCulture) : "—";
}
