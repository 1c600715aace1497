using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text;
using SpecLog.Client;

namespace SpecLog.Silo.Tests;

/// <summary>
/// Three silo processes on loopback form one cluster through Azure Table membership (a real Azurite, started here),
/// with the shipped <c>appsettings.Cluster.json</c>: the Copilot ordering replicas run on three different processes,
/// each shard and replica only on its data node. A node holding only an ordering replica is killed with SIGKILL
/// under load and the log keeps acknowledging appends; it is restarted and catches up. Then a node holding a shard is
/// killed and restarted on its ports: the shard comes back where its data is. Every acknowledged record is read back
/// at its GSN, no record is in the log twice, and after every process is killed at once and started again the records
/// are still there and appends continue.
/// </summary>
[Collection(SiloProcessCollection.Name)]
public sealed class ClusterProcessTests
{
    private const int Shards = 2; // shard 0 on node-0, shard 1 on node-1; node-2 holds ordering replica 2 only
    private const int Producers = 4;
    private static readonly string[] Nodes = ["node-0", "node-1", "node-2"];
    private static readonly TimeSpan StepTimeout = TimeSpan.FromSeconds(60);
    private static readonly string Padding = new('x', 1500);

    [Fact(Timeout = 300_000)]
    public async Task Three_silo_processes_with_azure_table_membership_serve_one_log_through_killed_nodes()
    {
        var ct = TestContext.Current.CancellationToken;
        var root = Path.Combine(Path.GetTempPath(), "speclog-cluster-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(root);
        var clusterId = "test-" + Guid.NewGuid().ToString("N")[..12];
        var output = new ConcurrentQueue<string>();
        var log = new List<string>();
        var clock = Stopwatch.StartNew();
        void Note(string message) => log.Add($"{clock.Elapsed.TotalSeconds,6:0.00}s  {message}");
        var silos = new SiloProcess?[Nodes.Length];
        var lives = new int[Nodes.Length];
        var ports = Nodes.Select(_ => SiloProcess.FreePorts()).ToArray();
        TestClient? client = null;

        await using var azurite = await AzuriteServer.StartAsync(ct);
        Note($"azurite on 127.0.0.1:{azurite.Port}");

        SiloProcess StartNode(int i)
        {
            lives[i]++;
            // 1 MiB segments, so the records of this test fill several and a trim deletes some; ordering replicas
            // checkpoint every 64 KiB of records, so the kills hit replicas that restart from checkpoints.
            var silo = SiloProcess.StartClusterNode(
                $"{Nodes[i]}#{lives[i]}", Nodes[i], Path.Combine(root, Nodes[i]), Shards, output, ports[i], clusterId, azurite.ConnectionString,
                "--SpecLog:SegmentSize=1048576", "--SpecLog:MaxRecordSize=65536", "--SpecLog:Replication:CheckpointMinBytes=65536");
            silos[i] = silo;
            return silo;
        }

        try
        {
            for (var i = 0; i < Nodes.Length; i++)
            {
                StartNode(i);
            }

            await Waits.UntilAsync(() => silos.All(s => s!.IsUp), "all three silos to be up", StepTimeout, ct);
            Note("three silos up");
            client = await TestClient.ConnectClusterAsync(azurite.ConnectionString, clusterId, StepTimeout, ct);

            // The ordering replicas run on three different processes, each on its own node.
            var replicaSilos = await Task.WhenAll(Enumerable.Range(0, 3).Select(k => client.Grains.GetGrain<ISequencerReplicaGrain>(k).GetStatusAsync()));
            Assert.Equal(3, replicaSilos.Select(r => r.Silo).Distinct().Count());
            Note($"replicas on {string.Join(", ", replicaSilos.Select(r => r.Silo))}");

            var acknowledged = new ConcurrentDictionary<long, byte[]>();
            var ackTimes = new ConcurrentQueue<double>();
            var failures = 0;
            using var load = CancellationTokenSource.CreateLinkedTokenSource(ct);
            var producers = Enumerable.Range(0, Producers)
                .Select(p => ProduceAsync(client.Log, p, acknowledged, ackTimes, clock, () => Interlocked.Increment(ref failures), load.Token))
                .ToArray();
            await Waits.UntilAsync(() => acknowledged.Count >= 400, "400 appends acknowledged", StepTimeout, ct);
            Note($"{acknowledged.Count} appends acknowledged by the whole cluster");

            // A node with only an ordering replica dies: Copilot goes on with the other two.
            var killAt = clock.Elapsed.TotalSeconds;
            silos[2]!.KillHard();
            var atKill = acknowledged.Count;
            Note($"node-2 killed (SIGKILL) at {atKill} acknowledged");
            await Waits.UntilAsync(() => acknowledged.Count >= atKill + 400, "400 more appends acknowledged without node-2", StepTimeout, ct);
            Note($"{acknowledged.Count - atKill} appends acknowledged while node-2 was dead");

            await silos[2]!.DisposeAsync();
            var restarted = StartNode(2);
            await Waits.UntilAsync(() => restarted.IsUp, "node-2 to be up again", StepTimeout, ct);
            var atRestart = acknowledged.Count;
            await Waits.UntilAsync(() => acknowledged.Count >= atRestart + 200, "200 appends acknowledged after node-2's restart", StepTimeout, ct);
            Note($"node-2 back; {acknowledged.Count} acknowledged");

            // A node holding a shard (and replica 0) dies: its shard can run only there, so it serves again after the restart.
            var secondKillAt = clock.Elapsed.TotalSeconds;
            silos[0]!.KillHard();
            Note($"node-0 killed (SIGKILL) at {acknowledged.Count} acknowledged");
            await silos[0]!.DisposeAsync();
            restarted = StartNode(0);
            await Waits.UntilAsync(() => restarted.IsUp, "node-0 to be up again", StepTimeout, ct);
            var upAgainAt = clock.Elapsed.TotalSeconds;
            var atSecondRestart = acknowledged.Count;
            await Waits.UntilAsync(() => acknowledged.Count >= atSecondRestart + 400, "400 appends acknowledged after node-0's restart", StepTimeout, ct);
            Note($"node-0 back; {acknowledged.Count} acknowledged, {failures} append attempts failed during the faults");

            // Measured, not asserted: the longest time without any acknowledgement after each kill, and how long after
            // node-0 printed "up" the first append was acknowledged again.
            var times = ackTimes.Order().ToArray();
            double LongestGap(double from, double to)
            {
                var points = times.Where(t => t >= from && t <= to).Prepend(from).Append(to).ToArray();
                return points.Zip(points.Skip(1), (a, b) => b - a).Max();
            }

            var firstAfterUp = times.FirstOrDefault(t => t >= upAgainAt, double.NaN);
            Note($"longest gap without an acknowledgement: {LongestGap(killAt, secondKillAt):0.00} s after killing node-2 (ordering replica), "
                + $"{LongestGap(secondKillAt, upAgainAt + 5):0.00} s after killing node-0 (shard 0); first acknowledgement {firstAfterUp - upAgainAt:0.00} s after node-0 was up");

            // The log is trimmed below two thirds of what was acknowledged: whole segments go on every replica. Each
            // shard first holds 1,500 acknowledged records (2.3 MB), so two thirds of it pass the first 1 MiB segment
            // whatever segments the restarts began, and the trim deletes at least one on every replica.
            int OfShard(int shard) => acknowledged.Values.Count(p => ProducerOf(p) % Shards == shard);
            await Waits.UntilAsync(() => Enumerable.Range(0, Shards).All(s => OfShard(s) >= 1_500), "1,500 appends acknowledged on every shard", StepTimeout, ct);
            var trimPoint = acknowledged.Keys.Order().ElementAt(acknowledged.Count * 2 / 3);
            await client.Log.TrimAsync(trimPoint, ct);
            Note($"trimmed below GSN {trimPoint}");

            // node-1 loses its shard replicas' data (a new volume under the same node name): its replicas start empty,
            // learn from their peers that the shards exist, install the leaders' trimmed logs, and count again only
            // once they hold what the others held. Appends go on meanwhile (the other two replicas are a majority).
            silos[1]!.KillHard();
            await silos[1]!.DisposeAsync();
            var wiped = Directory.GetDirectories(Path.Combine(root, Nodes[1]), "shard-*-replica-*");
            Assert.Equal(Shards, wiped.Length);
            var orderingDir = Path.Combine(root, Nodes[1], "sequencer-replica-1");
            Assert.True(Directory.Exists(orderingDir));
            foreach (var dir in wiped.Append(orderingDir))
            {
                Directory.Delete(dir, recursive: true);
            }

            Note($"node-1 killed (SIGKILL) at {acknowledged.Count} acknowledged and its {wiped.Length} shard replica directories and ordering replica 1's deleted");
            restarted = StartNode(1);
            await Waits.UntilAsync(() => restarted.IsUp, "node-1 to be up again with no shard data", StepTimeout, ct);
            var atWipe = acknowledged.Count;
            await Waits.UntilAsync(() => acknowledged.Count >= atWipe + 400, "400 appends acknowledged after node-1 came back empty", StepTimeout, ct);
            var onNode1 = Enumerable.Range(0, Shards).SelectMany(s => Enumerable.Range(0, 3).Where(r => (s + r) % Nodes.Length == 1).Select(r => ShardKeys.Of(s, r))).ToArray();
            var rebuiltStatuses = Array.Empty<ShardStatus>();
            await Waits.UntilAsync(
                async () =>
                {
                    // Polled: a replica finishes rebuilding inside its grain, with no event a test can await.
                    rebuiltStatuses = await Task.WhenAll(onNode1.Select(k => client.Grains.GetGrain<IShardGrain>(k).GetStatusAsync()));
                    return rebuiltStatuses.All(r => r.Role is "Follower" or "Leader" && r.LogEntries > 0 && r.TrimmedBelowGsn == trimPoint);
                },
                "node-1's replicas to rebuild from their peers",
                StepTimeout,
                ct);
            Assert.All(rebuiltStatuses, r => Assert.True(r.LogFirstEntry > 0, $"shard {r.Shard} replica {r.Replica} holds its log from entry {r.LogFirstEntry}: the trim deleted no segment"));
            foreach (var key in onNode1)
            {
                // The replica knew it had lost the shard's data (rather than taking it for a new shard).
                var line = $"Shard {ShardKeys.ShardOf(key)} replica {ShardKeys.ReplicaOf(key)} is Rebuilding now";
                Assert.True(output.Any(o => o.Contains(line, StringComparison.Ordinal)), $"no silo printed \"{line}\"");
                var install = $"Shard {ShardKeys.ShardOf(key)} replica {ShardKeys.ReplicaOf(key)} installs its leader's trimmed log";
                Assert.True(output.Any(o => o.Contains(install, StringComparison.Ordinal)), $"no silo printed \"{install}\"");
            }

            Note($"node-1's replicas rebuilt: {string.Join(", ", rebuiltStatuses.Select(r => $"shard {r.Shard} replica {r.Replica} {r.Role} with log entries {r.LogFirstEntry}..{r.LogEntries}"))}");

            // Its ordering replica knew it had lost its state too (peers hold the ordering layer): it rebuilt from a donor.
            await Waits.UntilAsync(() => output.Any(o => o.Contains("Sequencer replica 1 rebuilt from replica", StringComparison.Ordinal)), "ordering replica 1 to rebuild from a peer", StepTimeout, ct);
            var orderingRebuilt = await client.Grains.GetGrain<ISequencerReplicaGrain>(1).GetStatusAsync();
            Note($"ordering replica 1 rebuilt: {orderingRebuilt.Role}, incarnation {orderingRebuilt.Epoch}, executed {orderingRebuilt.Executed0}/{orderingRebuilt.Executed1}");

            await load.CancelAsync();
            await Task.WhenAll(producers).WaitAsync(StepTimeout, ct);
            // Every shard has three replicas, one per node, and one of them leads it with the shard's records.
            var shardStatuses = await Task.WhenAll(Enumerable.Range(0, Shards).SelectMany(s => Enumerable.Range(0, 3).Select(r => client.Grains.GetGrain<IShardGrain>(ShardKeys.Of(s, r)).GetStatusAsync())));
            Assert.All(shardStatuses, s => Assert.Equal(3, s.Replicas));
            Assert.All(shardStatuses.GroupBy(s => s.Shard), g => Assert.Equal(3, g.Select(s => s.Silo).Distinct().Count()));
            Assert.All(shardStatuses.Where(s => s.Role == "Leader"), s => Assert.True(s.DurableRecords > 0));
            Assert.Equal(Shards, shardStatuses.Count(s => s.Role == "Leader"));

            // Every acknowledged record at or above the trim point is where its acknowledgement said, and GSNs were
            // never handed out twice; below it, reads fail naming the trim point.
            foreach (var (gsn, payload) in acknowledged.Where(a => a.Key >= trimPoint))
            {
                var record = await client.Log.ReadAsync(gsn, ct);
                Assert.True(record is not null, $"acknowledged GSN {gsn} is not readable");
                Assert.Equal(Encoding.UTF8.GetString(payload), Encoding.UTF8.GetString(record.Payload.Span));
            }

            var trimmedAway = acknowledged.Keys.Where(g => g < trimPoint).Max();
            Assert.Equal(trimPoint, (await Assert.ThrowsAsync<LogTrimmedException>(() => client.Log.ReadAsync(trimmedAway, ct))).FirstRetainedGsn);
            Note($"all {acknowledged.Count(a => a.Key >= trimPoint)} acknowledged records at or above the trim point read back at their GSNs");

            // Exactly once: appends retried through the kills (same append ids) were written once, so no payload repeats.
            var end = acknowledged.Keys.Max() + 1;
            var counts = new Dictionary<string, int>();
            for (var from = trimPoint; from < end; from += 4096)
            {
                foreach (var r in await client.Log.ReadRangeAsync(from, Math.Min(end, from + 4096), ct))
                {
                    var text = Encoding.UTF8.GetString(r.Payload.Span);
                    counts[text] = counts.GetValueOrDefault(text) + 1;
                }
            }

            var repeated = counts.Where(c => c.Value > 1).Select(c => c.Key).ToList();
            Assert.True(repeated.Count == 0, $"{repeated.Count} records written more than once, e.g. {string.Join(", ", repeated.Take(5))}");
            Note($"{counts.Count} records in the log from GSN {trimPoint} below {end}, none twice");

            // The restarted replica caught up with the others (it executes what they executed).
            await Waits.UntilAsync(
                async () =>
                {
                    var statuses = await Task.WhenAll(Enumerable.Range(0, 3).Select(k => client.Grains.GetGrain<ISequencerReplicaGrain>(k).GetStatusAsync()));
                    return statuses[2].Executed0 + statuses[2].Executed1 >= Math.Min(statuses[0].Executed0 + statuses[0].Executed1, statuses[1].Executed0 + statuses[1].Executed1);
                },
                "replica 2 to catch up",
                StepTimeout,
                ct);
            var ordering = await Task.WhenAll(Enumerable.Range(0, 3).Select(k => client.Grains.GetGrain<ISequencerReplicaGrain>(k).GetStatusAsync()));
            Note("replica 2 caught up; ordering replicas: " + string.Join("; ", ordering.Select(r => $"{r.Replica}: {r.Checkpoints} checkpoints this life, log {r.LogFirstEntry}..{r.LogEntries}, compacted below {r.Base0}/{r.Base1}, windows from {r.FirstWindow}")));

            // The whole cluster dies at once (kill -9 of every process) and comes back on the same ports: every
            // acknowledged record is still at its GSN and appends continue after them.
            await client.DisposeAsync();
            client = null;
            foreach (var silo in silos)
            {
                silo!.KillHard();
                await silo.DisposeAsync();
            }

            Note("every node killed (SIGKILL)");
            for (var i = 0; i < Nodes.Length; i++)
            {
                StartNode(i);
            }

            await Waits.UntilAsync(() => silos.All(s => s!.IsUp), "all three silos to be up after the whole-cluster kill", StepTimeout, ct);
            client = await TestClient.ConnectClusterAsync(azurite.ConnectionString, clusterId, StepTimeout, ct);
            foreach (var (gsn, payload) in acknowledged.Where(a => a.Key >= trimPoint))
            {
                var record = await client.Log.ReadAsync(gsn, ct);
                Assert.True(record is not null, $"acknowledged GSN {gsn} is not readable after the whole-cluster restart");
                Assert.Equal(Encoding.UTF8.GetString(payload), Encoding.UTF8.GetString(record.Payload.Span));
            }

            var maxBefore = acknowledged.Keys.Max();
            var after = await Task.WhenAll(Enumerable.Range(0, Shards).Select(s => client.Log.AppendAsync(Encoding.UTF8.GetBytes($"after-restart-{s}"), s, ct)));
            Assert.All(after, gsn => Assert.True(gsn > maxBefore, $"new append at GSN {gsn}, not after {maxBefore}"));
            Note($"whole cluster back: all {acknowledged.Count(a => a.Key >= trimPoint)} retained acknowledged records at their GSNs, new appends at [{string.Join(", ", after)}]");
        }
        catch (Exception e)
        {
            var state = client is null ? "(no client)" : await DescribeLogAsync(client);
            var fullOutput = root + ".log";
            await File.WriteAllLinesAsync(fullOutput, output, CancellationToken.None);
            throw new InvalidOperationException(
                $"{e.Message} (every silo's whole output: {fullOutput}){Environment.NewLine}--- steps ---{Environment.NewLine}{string.Join(Environment.NewLine, log)}"
                + $"{Environment.NewLine}--- the log now ---{Environment.NewLine}{state}"
                + $"{Environment.NewLine}--- silo output, last 60 lines of each process without stack traces ---{Environment.NewLine}{Tail(output)}",
                e);
        }
        finally
        {
            if (client is not null)
            {
                await client.DisposeAsync();
            }

            foreach (var silo in silos)
            {
                if (silo is not null)
                {
                    await silo.DisposeAsync();
                }
            }

            TryDelete(root);
        }

        TestContext.Current.TestOutputHelper?.WriteLine(string.Join(Environment.NewLine, log));
    }

    /// <summary>The producer that wrote a payload of <see cref="ProduceAsync"/> (<c>p{producer}-{i}|…</c>).</summary>
    private static int ProducerOf(byte[] payload)
    {
        var text = Encoding.UTF8.GetString(payload, 0, Math.Min(payload.Length, 16));
        return int.Parse(text.AsSpan(1, text.IndexOf('-', StringComparison.Ordinal) - 1), System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <summary>Appends to shard <c>p mod Shards</c> until cancelled; a failed attempt (a dying gateway, a stalled shard) is counted and retried with a new record.</summary>
    private static async Task ProduceAsync(SpecLogClient log, int producer, ConcurrentDictionary<long, byte[]> acknowledged, ConcurrentQueue<double> ackTimes, Stopwatch clock, Action failed, CancellationToken ct)
    {
        for (var i = 0; !ct.IsCancellationRequested; i++)
        {
            var payload = Encoding.UTF8.GetBytes($"p{producer}-{i}|{Padding}");
            try
            {
                using var attempt = CancellationTokenSource.CreateLinkedTokenSource(ct);
                attempt.CancelAfter(TimeSpan.FromSeconds(10));
                var gsn = await log.AppendAsync(payload, producer % Shards, attempt.Token);
                Assert.True(acknowledged.TryAdd(gsn, payload), $"GSN {gsn} acknowledged twice");
                ackTimes.Enqueue(clock.Elapsed.TotalSeconds);
            }
            catch (Exception e) when (e is not Xunit.Sdk.XunitException && !ct.IsCancellationRequested)
            {
                failed();
                await Task.Delay(50, ct).ContinueWith(_ => { }, TaskScheduler.Default);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
        }
    }

    /// <summary>Every shard's and ordering replica's status, each asked with a short timeout (for a failure message).</summary>
    private static async Task<string> DescribeLogAsync(TestClient client)
    {
        async Task<string> Ask(string what, Func<Task<object>> call)
        {
            try
            {
                return $"{what}: {await call().WaitAsync(TimeSpan.FromSeconds(5))}";
            }
            catch (Exception e)
            {
                return $"{what}: {e.GetType().Name}: {e.Message}";
            }
        }

        var lines = new List<string>();
        for (var s = 0; s < Shards; s++)
        {
            var shard = s;
            lines.Add(await Ask($"shard {shard}", async () => await client.Grains.GetGrain<IShardGrain>(shard).GetStatusAsync()));
        }

        for (var k = 0; k < Nodes.Length; k++)
        {
            var replica = k;
            lines.Add(await Ask($"replica {replica}", async () => await client.Grains.GetGrain<ISequencerReplicaGrain>(replica).GetStatusAsync()));
        }

        return string.Join(Environment.NewLine, lines);
    }

    private static string Tail(ConcurrentQueue<string> output) =>
        string.Join(
            Environment.NewLine,
            output.Where(l => !l.Contains("   at ", StringComparison.Ordinal) || l.Length < 400)
                .GroupBy(l => l.Split(' ')[0])
                .SelectMany(g => g.TakeLast(60))
                .Select(l => l.Length > 400 ? l[..400] + " …" : l));

    private static void TryDelete(string directory)
    {
        try
        {
            Directory.Delete(directory, recursive: true);
        }
        catch (IOException)
        {
            // Best effort.
        }
    }
}
