using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text;
using SpecLog.Client;

namespace SpecLog.Silo.Tests;

/// <summary>
/// A nemesis against three real silo processes with Azurite membership and replicated shards: eight producers append
/// (exactly-once, through the client's own retries), two subscribers read speculatively, and at random times from a
/// printed seed a node is killed with SIGKILL and restarted, or paused with SIGSTOP and resumed, one node at a time;
/// at the end the whole cluster is killed and restarted. A history check then requires: no acknowledged record lost
/// (each readable at its GSN, also after the whole-cluster restart), no record written twice, every subscriber's
/// GSNs strictly increasing, and every record a subscriber got speculatively committed at the GSN it was delivered
/// with (no mis-speculation: no shard ever loses all its replicas here). Once during the faults a shard is added, and
/// later one is removed (the producers name no shard: the client spreads their appends over the shards that take
/// them); once the log is trimmed; and now and then a killed node also loses its shard replicas' data, which rebuild
/// from their peers. NEMESIS_SEED replays a schedule;
/// NEMESIS_KILLS sets the number of single-node kills (10 in CI, plus the three of the whole-cluster kill; the long run
/// in the README uses 100); NEMESIS_OUTPUT names a file for every silo's output of a passing run.
/// </summary>
[Collection(SiloProcessCollection.Name)]
public sealed class NemesisTests
{
    private const int Shards = 2;
    private const int Producers = 8;
    private static readonly string[] Nodes = ["node-0", "node-1", "node-2"];
    private static readonly TimeSpan StepTimeout = TimeSpan.FromSeconds(90);

    [Fact(Timeout = 3_600_000)] // the documented long run (100 kills) takes about half an hour
    public async Task Kills_pauses_and_restarts_lose_nothing_write_nothing_twice_and_move_no_speculative_record()
    {
        var ct = TestContext.Current.CancellationToken;
        var seed = int.TryParse(Environment.GetEnvironmentVariable("NEMESIS_SEED"), out var s) ? s : Random.Shared.Next();
        var targetKills = int.TryParse(Environment.GetEnvironmentVariable("NEMESIS_KILLS"), out var f) ? f : 10;
        var random = new Random(seed);
        var log = new List<string>();
        var clock = Stopwatch.StartNew();
        void Note(string message)
        {
            lock (log)
            {
                log.Add($"{clock.Elapsed.TotalSeconds,7:0.00}s  {message}");
            }
        }

        Note($"seed {seed} (replay with NEMESIS_SEED={seed}), {targetKills} single-node kills, pauses between");
        var root = Path.Combine(Path.GetTempPath(), "speclog-nemesis", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(root);
        var clusterId = "nemesis-" + Guid.NewGuid().ToString("N")[..12];
        var output = new ConcurrentQueue<string>();
        var silos = new SiloProcess?[Nodes.Length];
        var lives = new int[Nodes.Length];
        var ports = Nodes.Select(_ => SiloProcess.FreePorts()).ToArray();
        TestClient? client = null;
        await using var azurite = await AzuriteServer.StartAsync(ct);

        SiloProcess StartNode(int i)
        {
            lives[i]++;
            // Ordering replicas checkpoint every 64 KiB of records: kills land before, during and after checkpoints.
            silos[i] = SiloProcess.StartClusterNode($"{Nodes[i]}#{lives[i]}", Nodes[i], Path.Combine(root, Nodes[i]), Shards, output, ports[i], clusterId, azurite.ConnectionString, "--SpecLog:Replication:CheckpointMinBytes=65536");
            return silos[i]!;
        }

        var acks = new ConcurrentDictionary<string, long>();
        var unknown = new ConcurrentDictionary<string, byte>();
        var subscribers = new[] { new Subscriber(), new Subscriber() };
        var kills = 0;
        var pauses = 0;
        var wipes = 0;
        long trimPoint = 0;
        List<(long Gsn, string Text)> trimmedLog = [];
        TimeoutException? stalled = null;
        using var load = CancellationTokenSource.CreateLinkedTokenSource(ct);
        try
        {
            for (var i = 0; i < Nodes.Length; i++)
            {
                StartNode(i);
            }

            await Waits.UntilAsync(() => silos.All(x => x!.IsUp), "three silos up", StepTimeout, ct);
            client = await TestClient.ConnectClusterAsync(azurite.ConnectionString, clusterId, StepTimeout, ct, output);
            var log0 = client.Log;
            var subscriptionTasks = subscribers.Select(sub => sub.RunAsync(log0, load.Token)).ToArray();
            var producers = Enumerable.Range(0, Producers).Select(p => Task.Run(async () =>
            {
                for (var i = 0; !load.IsCancellationRequested; i++)
                {
                    var text = $"nemesis-{p}-{i}";
                    try
                    {
                        var gsn = await log0.AppendAsync(Encoding.UTF8.GetBytes(text), cancellationToken: load.Token);
                        Assert.True(acks.TryAdd(text, gsn), $"{text} acknowledged twice");
                    }
                    catch (Exception) when (!ct.IsCancellationRequested)
                    {
                        unknown.TryAdd(text, 0); // its outcome is unknown: it may or may not be in the log, once
                    }
                }
            }, CancellationToken.None)).ToArray();

            await Waits.UntilAsync(() => acks.Count >= 200, "200 acknowledged appends before the first fault", StepTimeout, ct);
            Note($"cluster up, {acks.Count} acknowledged");
            var addAt = random.Next(1, Math.Max(2, targetKills / 2));
            var removeAt = random.Next(addAt + 1, Math.Max(addAt + 2, targetKills));
            var trimAt = random.Next(2, Math.Max(3, targetKills));
            var lastWipe = -10;
            for (var fault = 0; kills < targetKills; fault++)
            {
                if (fault == trimAt)
                {
                    // The log is trimmed below half of what both subscribers have seen confirmed. What it held there is
                    // read first, so the history check still covers it.
                    var point = Math.Min(subscribers.Min(x => x.Confirmed), acks.Values.Max()) / 2;
                    if (point > 0)
                    {
                        trimmedLog = await ReadAllAsync(log0, 0, point, ct);
                        await log0.TrimAsync(point, ct);
                        trimPoint = point;
                        Note($"fault {fault + 1}: the log trimmed below GSN {point} ({trimmedLog.Count} records there) at {acks.Count} acknowledged");
                    }
                }

                if (fault == addAt || fault == removeAt)
                {
                    // The shard set changes while the faults go on (a node may be down, or paused a moment ago).
                    var change = fault == addAt
                        ? await log0.AddShardAsync(StepTimeout, ct)
                        : await log0.RemoveShardAsync((await log0.GetActiveShardsAsync(ct))[random.Next(2)], StepTimeout, ct);
                    Note($"fault {fault + 1}: shard {change.Shard} {(fault == addAt ? "added from" : "removed from")} window {change.Window} (GSN {change.StartGsn}) at {acks.Count} acknowledged");
                }

                // A silo paused past Orleans' failure detection is declared dead and stops itself when it resumes:
                // start it again, so that at most one node is ever down.
                for (var i = 0; i < Nodes.Length; i++)
                {
                    if (silos[i]!.HasExited)
                    {
                        await silos[i]!.DisposeAsync();
                        var back = StartNode(i);
                        await Waits.UntilAsync(() => back.IsUp, $"{Nodes[i]} up again after it stopped itself", StepTimeout, ct);
                        Note($"  {Nodes[i]} had stopped itself (declared dead while paused); restarted");
                    }
                }

                await Task.Delay(random.Next(300, 2_000), ct);
                var node = random.Next(Nodes.Length);
                if (random.NextDouble() < 0.7)
                {
                    // Now and then the node also loses its shard replicas' data (as if its volume were replaced), but
                    // only while no replica is still rebuilding from an earlier loss: two lost copies of one entry are
                    // more than three replicas survive.
                    var wipe = random.NextDouble() < 0.2 && fault - lastWipe >= 2 && await NobodyRebuildingAsync(client.Grains);
                    silos[node]!.KillHard();
                    kills++;
                    Note($"fault {fault + 1}: {Nodes[node]} killed (SIGKILL) at {acks.Count} acknowledged");
                    await Task.Delay(random.Next(0, 2_000), ct);
                    await silos[node]!.DisposeAsync();
                    if (wipe)
                    {
                        var lost = Directory.GetDirectories(Path.Combine(root, Nodes[node]), "shard-*-replica-*");
                        var ordering = Directory.GetDirectories(Path.Combine(root, Nodes[node]), "sequencer-replica-*");
                        foreach (var dir in lost.Concat(ordering))
                        {
                            Directory.Delete(dir, recursive: true);
                        }

                        wipes++;
                        lastWipe = fault;
                        Note($"  {Nodes[node]} lost its disk: {lost.Length} shard replica and {ordering.Length} ordering replica directories deleted (they rebuild from their peers)");
                    }

                    var restarted = StartNode(node);
                    await Waits.UntilAsync(() => restarted.IsUp, $"{Nodes[node]} up again", StepTimeout, ct);
                    Note($"  {Nodes[node]} restarted");
                }
                else
                {
                    var pause = random.Next(300, 2_500);
                    Signal("STOP", silos[node]!.Id);
                    pauses++;
                    Note($"fault {fault + 1}: {Nodes[node]} paused (SIGSTOP) for {pause} ms at {acks.Count} acknowledged");
                    await Task.Delay(pause, ct);
                    Signal("CONT", silos[node]!.Id);
                }

                // The log serves between faults: appends are acknowledged again before the next one. If it does not,
                // the history is still checked (safety first) before the test fails for liveness.
                var before = acks.Count;
                try
                {
                    await Waits.UntilAsync(() => acks.Count >= before + 50, $"50 acknowledgements after fault {fault + 1}", StepTimeout, ct);
                }
                catch (TimeoutException e)
                {
                    stalled = e;
                    Note($"STALLED: {e.Message} Checking the history so far.");
                    foreach (var line in await DescribeAsync(client.Grains))
                    {
                        Note("  " + line);
                    }

                    break;
                }
            }

            await load.CancelAsync();
            await Task.WhenAll(producers).WaitAsync(StepTimeout, ct);
            await Task.WhenAll(subscriptionTasks).WaitAsync(StepTimeout, ct);
            Note($"{kills} kills ({wipes} with the node's shard data lost), {pauses} pauses; {acks.Count} acknowledged, {unknown.Count} with unknown outcome; subscribers got {subscribers[0].Records.Count} and {subscribers[1].Records.Count} speculative records");

            // The committed log up to the last acknowledged GSN (below the trim point, as read before the trim).
            var end = acks.Values.Max() + 1;
            var committed = trimmedLog.Concat(await ReadAllAsync(client.Log, trimPoint, end, ct)).ToList();
            var byText = committed.GroupBy(r => r.Text).ToDictionary(g => g.Key, g => g.Select(r => r.Gsn).ToList());
            var twice = byText.Where(kv => kv.Value.Count > 1).Select(kv => kv.Key).ToList();
            Assert.True(twice.Count == 0, $"{twice.Count} records written more than once, e.g. {string.Join(", ", twice.Take(5))}");
            foreach (var (text, gsn) in acks)
            {
                Assert.True(byText.TryGetValue(text, out var at), $"acknowledged {text} (GSN {gsn}) is not in the log");
                Assert.Equal(gsn, at[0]);
            }

            Assert.All(committed, r => Assert.True(acks.ContainsKey(r.Text) || unknown.ContainsKey(r.Text), $"{r.Text} at GSN {r.Gsn} was never appended"));
            var atGsn = committed.ToDictionary(r => r.Gsn, r => r.Text);
            foreach (var (sub, index) in subscribers.Select((x, i) => (x, i)))
            {
                Assert.True(sub.Error is null, $"subscriber {index} failed: {sub.Error}");
                var records = sub.Records;
                Assert.NotEmpty(records);
                for (var i = 1; i < records.Count; i++)
                {
                    Assert.True(records[i].Gsn > records[i - 1].Gsn, $"subscriber {index}: GSN {records[i].Gsn} after {records[i - 1].Gsn}");
                }

                foreach (var (gsn, text) in records.Where(r => r.Gsn < end))
                {
                    Assert.True(atGsn.TryGetValue(gsn, out var c) && c == text, $"subscriber {index} got {text} speculatively at GSN {gsn}; committed there: {(atGsn.TryGetValue(gsn, out var x) ? x : "nothing")}");
                }
            }

            Note($"history checked: {committed.Count} records below GSN {end}, every acknowledged one at its GSN, none twice, no speculative record moved");
            try
            {
                var ordering = await Task.WhenAll(Enumerable.Range(0, 3).Select(k => client!.Grains.GetGrain<ISequencerReplicaGrain>(k).GetStatusAsync().WaitAsync(TimeSpan.FromSeconds(10), ct)));
                Note("ordering replicas: " + string.Join("; ", ordering.Select(r => $"{r.Replica} ({r.Role}): {r.Checkpoints} checkpoints this life, log {r.LogFirstEntry}..{r.LogEntries}, compacted below {r.Base0}/{r.Base1}, windows from {r.FirstWindow}")));
            }
            catch (TimeoutException)
            {
                Note("ordering replicas: a status did not come within 10 s");
            }

            if (stalled is not null)
            {
                throw stalled;
            }

            // The whole cluster dies at once and comes back: everything acknowledged is still at its GSN.
            await client.DisposeAsync();
            client = null;
            foreach (var silo in silos)
            {
                silo!.KillHard();
                await silo.DisposeAsync();
            }

            kills += Nodes.Length;
            for (var i = 0; i < Nodes.Length; i++)
            {
                StartNode(i);
            }

            await Waits.UntilAsync(() => silos.All(x => x!.IsUp), "three silos up after the whole-cluster kill", StepTimeout, ct);
            client = await TestClient.ConnectClusterAsync(azurite.ConnectionString, clusterId, StepTimeout, ct, output);
            var again = (await ReadAllAsync(client.Log, trimPoint, end, ct)).ToDictionary(r => r.Gsn, r => r.Text);
            foreach (var (text, gsn) in acks.Where(a => a.Value >= trimPoint))
            {
                Assert.True(again.TryGetValue(gsn, out var t) && t == text, $"acknowledged {text} is not at GSN {gsn} after the whole-cluster restart");
            }

            var next = await client.Log.AppendAsync(Encoding.UTF8.GetBytes("after-whole-cluster-restart"), cancellationToken: ct);
            Assert.True(next >= end, $"new append at GSN {next}, inside the old log (below {end})");
            Note($"whole cluster killed and restarted: all {acks.Count(a => a.Value >= trimPoint)} acknowledged records at or above the trim point at their GSNs; {kills} kills in all");
        }
        catch (Exception e)
        {
            var fullOutput = root + ".log";
            await File.WriteAllLinesAsync(fullOutput, output, CancellationToken.None);
            throw new InvalidOperationException(
                $"{e.Message} (seed {seed}; every silo's whole output: {fullOutput}){Environment.NewLine}--- steps ---{Environment.NewLine}{string.Join(Environment.NewLine, log)}",
                e);
        }
        finally
        {
            await load.CancelAsync();
            if (client is not null)
            {
                await client.DisposeAsync();
            }

            foreach (var silo in silos)
            {
                if (silo is not null)
                {
                    Signal("CONT", silo.Id, ignoreErrors: true);
                    await silo.DisposeAsync();
                }
            }

            try
            {
                Directory.Delete(root, recursive: true);
            }
            catch (IOException)
            {
            }
        }

        if (Environment.GetEnvironmentVariable("NEMESIS_OUTPUT") is { Length: > 0 } keep)
        {
            // A passing run's silo output is kept only when asked (a long run's evidence: rebuilds, checkpoints, stalls).
            await File.WriteAllLinesAsync(keep, output, CancellationToken.None);
            Note($"every silo's whole output: {keep}");
        }

        TestContext.Current.TestOutputHelper?.WriteLine(string.Join(Environment.NewLine, log));
    }

    private static async Task<List<(long Gsn, string Text)>> ReadAllAsync(SpecLogClient log, long start, long end, CancellationToken ct)
    {
        var result = new List<(long, string)>();
        for (var from = start; from < end; from += 4096)
        {
            foreach (var r in await log.ReadRangeAsync(from, Math.Min(end, from + 4096), ct))
            {
                result.Add((r.Gsn, Encoding.UTF8.GetString(r.Payload.Span)));
            }
        }

        return result;
    }

    /// <summary>True if every shard replica answers and none is probing or rebuilding a lost state.</summary>
    private static async Task<bool> NobodyRebuildingAsync(IGrainFactory grains)
    {
        try
        {
            for (var k = 0; k < Nodes.Length; k++)
            {
                var ordering = await grains.GetGrain<ISequencerReplicaGrain>(k).GetStatusAsync().WaitAsync(TimeSpan.FromSeconds(3));
                if (ordering.Role is "Probing" or "Rebuilding")
                {
                    return false;
                }
            }

            var shards = (await grains.GetGrain<ISequencerGrain>(0).GetStatusAsync().WaitAsync(TimeSpan.FromSeconds(3))).ShardCount;
            for (var shard = 0; shard < shards; shard++)
            {
                for (var r = 0; r < Nodes.Length; r++)
                {
                    var status = await grains.GetGrain<IShardGrain>(ShardKeys.Of(shard, r)).GetStatusAsync().WaitAsync(TimeSpan.FromSeconds(3));
                    if (status.Role is "Probing" or "Rebuilding")
                    {
                        return false;
                    }
                }
            }

            return true;
        }
        catch (Exception)
        {
            return false; // a replica that does not answer may be rebuilding
        }
    }

    /// <summary>What every ordering replica and every shard replica says about itself (for a stalled run's report).</summary>
    private static async Task<List<string>> DescribeAsync(IGrainFactory grains)
    {
        var lines = new List<string>();
        async Task Ask<T>(string what, Func<Task<T>> call)
        {
            try
            {
                lines.Add($"{what}: {await call().WaitAsync(TimeSpan.FromSeconds(5))}");
            }
            catch (Exception e)
            {
                lines.Add($"{what}: {e.GetType().Name} {e.Message}");
            }
        }

        for (var k = 0; k < Nodes.Length; k++)
        {
            var replica = grains.GetGrain<ISequencerReplicaGrain>(k);
            await Ask($"ordering replica {k}", replica.GetStatusAsync);
            await Ask($"ordering replica {k} state", async () =>
            {
                var s = await replica.GetSequencerStatusAsync();
                return $"cut {s.CommittedCut}, gsn {s.CommittedGsn}, windows {s.Windows}, reports {s.ReportsApplied}, completed [{string.Join(", ", s.CompletedCuts)}], window {s.CurrentWindow}";
            });
        }

        var shards = Shards;
        try
        {
            shards = (await grains.GetGrain<ISequencerGrain>(0).GetStatusAsync().WaitAsync(TimeSpan.FromSeconds(5))).ShardCount;
        }
        catch (Exception e)
        {
            lines.Add($"shard count: {e.GetType().Name} {e.Message}");
        }

        for (var shard = 0; shard < shards; shard++)
        {
            for (var r = 0; r < Nodes.Length; r++)
            {
                await Ask($"shard {shard} replica {r}", grains.GetGrain<IShardGrain>(ShardKeys.Of(shard, r)).GetStatusAsync);
            }
        }

        return lines;
    }

    private static void Signal(string signal, int pid, bool ignoreErrors = false)
    {
        try
        {
            using var kill = Process.Start(new ProcessStartInfo("kill", $"-{signal} {pid}") { UseShellExecute = false, RedirectStandardError = true })!;
            kill.WaitForExit();
        }
        catch (Exception) when (ignoreErrors)
        {
        }
    }

    /// <summary>A speculative subscriber from GSN 0 that remembers every record it was given.</summary>
    private sealed class Subscriber
    {
        private readonly List<(long Gsn, string Text)> _records = [];

        public List<(long Gsn, string Text)> Records
        {
            get
            {
                lock (_records)
                {
                    return [.. _records];
                }
            }
        }

        public Exception? Error { get; private set; }

        /// <summary>The end of the confirmed prefix it was told of.</summary>
        public long Confirmed { get; private set; }

        public async Task RunAsync(SpecLogClient log, CancellationToken ct)
        {
            try
            {
                await foreach (var e in log.SubscribeAsync(0, ct))
                {
                    if (e is SpeculativeRecord r)
                    {
                        lock (_records)
                        {
                            _records.Add((r.Gsn, Encoding.UTF8.GetString(r.Payload.Span)));
                        }
                    }
                    else if (e is ConfirmedRange c)
                    {
                        Confirmed = Math.Max(Confirmed, c.ToGsn);
                    }
                    else if (e is MisSpeculatedRange m)
                    {
                        throw new InvalidOperationException($"mis-speculated range [{m.FromGsn}, {m.ToGsn}) although no shard lost all its replicas");
                    }
                }
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
            }
            catch (Exception e)
            {
                Error = e;
            }
        }
    }
}
