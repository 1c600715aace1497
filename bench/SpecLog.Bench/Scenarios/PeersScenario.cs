using SpecLog.Bench.Reporting;
using System.Globalization;
using SpecLog.Bench.Peers;

namespace SpecLog.Bench.Scenarios;

/// <summary>
/// Scenario 7, peers: the same open-loop workload against SpecLog (speculative and confirmed delivery), Redis Streams
/// with AOF off and with <c>appendfsync always</c>, and PostgreSQL (INSERT + NOTIFY, LISTEN consumer,
/// <c>synchronous_commit=on</c>); append-ack and append→delivery latency, optionally closed-loop saturation throughput.
/// The peer servers are installed from Debian packages when missing, started on loopback on free ports in temporary
/// directories, and stopped and removed afterwards.
/// </summary>
public sealed class PeersScenario : IScenario
{
    private const string SPECLOG = "speclog";
    private const string REDIS_OFF = "redis-aof-off";
    private const string REDIS_ALWAYS = "redis-aof-always";
    private const string POSTGRES = "postgres";
    private const string NATS = "nats";

    public string Name => "peers";

    public string Description =>
        "append ack and append->delivery latency, SpecLog vs Redis Streams (AOF off / appendfsync always) vs PostgreSQL LISTEN/NOTIFY vs NATS JetStream; installs and starts the servers "
        + "[--systems speclog,redis-aof-off,redis-aof-always,postgres,nats --appenders 4 --rate 1000 --seconds 10 --warmup 2 --record-size 100 --rounds 1 --shards 4 --saturate --saturate-seconds 3 --concurrency 64 --no-install]";

    /// <summary>Results of the last run, for a caller that writes reports: per system label.</summary>
    internal IReadOnlyList<PeerSummary> LastResults { get; private set; } = [];

    public async Task<int> RunAsync(BenchArgs args)
    {
        var systems = (args.Get("systems") ?? $"{SPECLOG},{REDIS_OFF},{REDIS_ALWAYS},{POSTGRES},{NATS}")
            .Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(s => s.ToLowerInvariant()).Distinct().ToList();
        foreach (var s in systems)
        {
            if (s is not (SPECLOG or REDIS_OFF or REDIS_ALWAYS or POSTGRES or NATS))
            {
                throw new ArgumentException($"Unknown system '{s}' (known: {SPECLOG}, {REDIS_OFF}, {REDIS_ALWAYS}, {POSTGRES}, {NATS}).");
            }
        }

        var appenders = args.GetInt("appenders", 4);
        var rate = args.GetInt("rate", 1000);
        var seconds = args.GetDouble("seconds", 10);
        var warmup = args.GetDouble("warmup", 2);
        var recordSize = args.GetInt("record-size", 100);
        var rounds = args.GetInt("rounds", 1);
        var shards = args.GetInt("shards", 4);
        var saturate = args.Get("saturate") is not null;
        var saturateSeconds = args.GetDouble("saturate-seconds", 3);
        var concurrency = args.GetInt("concurrency", 64);
        var install = args.Get("no-install") is null;
        if (appenders < 1 || rate < 1 || seconds <= 0 || warmup < 0 || recordSize < PeerRecord.HEADER_BYTES || rounds < 1 || shards < 1 || concurrency < 1 || saturateSeconds <= 0)
        {
            throw new ArgumentException($"--appenders, --rate, --seconds, --rounds, --shards, --concurrency must be positive and --record-size at least {PeerRecord.HEADER_BYTES}.");
        }

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"peers: {appenders} appenders x {rate} appends/s open loop, {recordSize} B records, {seconds} s measured after {warmup} s warm-up, {rounds} round(s); saturation {(saturate ? $"{concurrency} closed-loop appenders for {saturateSeconds} s" : "off (--saturate)")}"));
        Console.WriteLine($"machine: {Environment.ProcessorCount} cores, {Environment.OSVersion}; SpecLog: 1 silo in process, {shards} shards, sequencer Single, fsync on");

        var results = systems.ToDictionary(s => s, _ => new List<(OpenLoopResult Run, double? Max)>());
        var skipped = new Dictionary<string, string>();
        RedisServer? redisOff = null, redisAlways = null;
        PostgresServer? postgres = null;
        NatsServer? nats = null;
        try
        {
            // Servers: installed if missing (unless --no-install), started once for the whole run.
            if (systems.Contains(REDIS_OFF) || systems.Contains(REDIS_ALWAYS))
            {
                var redis = FindOrInstall("redis-server", install, RedisServer.EnsureInstalled, out var why);
                Console.WriteLine($"  peers: redis-server: {why}");
                foreach (var (system, always) in new[] { (REDIS_OFF, false), (REDIS_ALWAYS, true) })
                {
                    if (!systems.Contains(system))
                    {
                        continue;
                    }

                    if (redis is null)
                    {
                        skipped[system] = why;
                        continue;
                    }

                    try
                    {
                        var server = await RedisServer.StartAsync(redis, always);
                        if (always)
                        {
                            redisAlways = server;
                        }
                        else
                        {
                            redisOff = server;
                        }
                    }
                    catch (Exception ex) when (ex is InvalidOperationException or IOException or System.ComponentModel.Win32Exception)
                    {
                        skipped[system] = ex.Message;
                    }
                }
            }

            if (systems.Contains(POSTGRES))
            {
                var bin = FindOrInstall("postgresql", install, PostgresServer.EnsureInstalled, out var why);
                Console.WriteLine($"  peers: postgresql: {why}");
                if (bin is null)
                {
                    skipped[POSTGRES] = why;
                }
                else
                {
                    try
                    {
                        postgres = await PostgresServer.StartAsync(bin);
                    }
                    catch (Exception ex) when (ex is InvalidOperationException or IOException or System.ComponentModel.Win32Exception)
                    {
                        skipped[POSTGRES] = ex.Message;
                    }
                }
            }

            if (systems.Contains(NATS))
            {
                var exe = FindOrInstall("nats-server", install, NatsServer.EnsureInstalled, out var why);
                Console.WriteLine($"  peers: nats-server: {why}");
                if (exe is null)
                {
                    skipped[NATS] = why;
                }
                else
                {
                    try
                    {
                        nats = await NatsServer.StartAsync(exe);
                    }
                    catch (Exception ex) when (ex is InvalidOperationException or IOException or System.ComponentModel.Win32Exception)
                    {
                        skipped[NATS] = ex.Message;
                    }
                }
            }

            foreach (var (system, reason) in skipped)
            {
                Console.WriteLine($"  peers: SKIPPING {system}: {reason}");
            }

            var runnable = systems.Where(s => !skipped.ContainsKey(s)).ToArray();
            var progress = new ProgressLine("peers", (long)rounds * runnable.Length);
            long done = 0;
            for (var round = 0; round < rounds; round++)
            {
                foreach (var system in runnable)
                {
                    progress.Step($"round {round + 1}/{rounds}, {system}");
                    IPeerLog log;
                    try
                    {
                        log = system switch
                        {
                            SPECLOG => await SpecLogPeerLog.StartAsync(shards, fsync: true),
                            REDIS_OFF => await RedisStreamLog.ConnectAsync(redisOff!.Name, redisOff.Port),
                            REDIS_ALWAYS => await RedisStreamLog.ConnectAsync(redisAlways!.Name, redisAlways.Port),
                            NATS => await NatsJetStreamLog.ConnectAsync(nats!.Name, nats.Port),
                            _ => await PostgresNotifyLog.ConnectAsync(postgres!.Name, postgres.ConnectionString(Math.Max(concurrency, 64) + 8)),
                        };
                    }
                    catch (Exception ex)
                    {
                        Console.WriteLine($"  round {round + 1} {system}: could not connect: {ex.Message}");
                        progress.Report(++done);
                        continue;
                    }

                    await using (log)
                    {
                        var run = await PeerWorkload.RunOpenLoopAsync(log, appenders, rate, recordSize, warmup, seconds, CancellationToken.None);
                        double? max = null;
                        if (saturate)
                        {
                            try
                            {
                                max = await PeerWorkload.RunSaturationAsync(log, concurrency, recordSize, saturateSeconds, CancellationToken.None);
                            }
                            catch (Exception ex)
                            {
                                Console.WriteLine($"  round {round + 1} {log.Name}: saturation failed: {ex.Message}");
                            }
                        }

                        results[system].Add((run, max));
                        var deliveries = string.Join("  ", log.DeliveryKinds.Select((k, i) => F($"{k} p50 {run.Delivery[i].P50:F3} p99 {run.Delivery[i].P99:F3} ({run.Delivery[i].Count})")));
                        Console.WriteLine(F($"  round {round + 1} {log.Name,-34} ack p50 {run.Ack.P50:F3} ms p99 {run.Ack.P99:F3}  {deliveries}  acked {run.Acked}/{run.Issued} failed {run.Failed}{(max is { } m ? $"  saturation {m:F0}/s" : "")}"));
                        progress.Report(++done);
                    }
                }
            }

            progress.Done();
        }
        finally
        {
            PeerServer.StopAll();
        }

        PrintTable(systems, results, skipped, redisOff?.Name ?? "redis (AOF off)", redisAlways?.Name ?? "redis (AOF, appendfsync always)", postgres?.Name ?? "PostgreSQL", nats?.Name ?? "NATS JetStream");
        await WriteReportAsync(args.Get("out") ?? Path.Combine("bench", "results"), skipped, nats?.Durability);
        Console.WriteLine("(latencies in ms, from the moment each record is handed to the client library, which is stamped into the record; medians over rounds; open loop: appends are sent on schedule whether or not earlier ones are acknowledged)");
        return 0;
    }

    private static string? FindOrInstall(string what, bool install, EnsureInstalled ensure, out string message)
    {
        if (!install)
        {
            var found = what is "redis-server" or "nats-server" ? Shell.Find(what) : Shell.Find("pg_ctl", "/usr/lib/postgresql/17/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/15/bin");
            message = found is null ? $"{what} is not installed and --no-install was given" : $"found {found}";
            return what is "redis-server" or "nats-server" || found is null ? found : Path.GetDirectoryName(found);
        }

        try
        {
            return ensure(out message);
        }
        catch (Exception ex) when (ex is InvalidOperationException or IOException or UnauthorizedAccessException)
        {
            message = ex.Message;
            return null;
        }
    }

    private delegate string? EnsureInstalled(out string message);

    private void PrintTable(List<string> systems, Dictionary<string, List<(OpenLoopResult Run, double? Max)>> results, Dictionary<string, string> skipped, string redisOffName, string redisAlwaysName, string postgresName, string natsName)
    {
        var rows = new List<PeerSummary>();
        foreach (var system in systems)
        {
            var list = results[system];
            if (list.Count == 0)
            {
                continue;
            }

            var kinds = list[0].Run.Delivery.Count;
            for (var k = 0; k < kinds; k++)
            {
                var label = system switch
                {
                    SPECLOG => k == 0 ? "SpecLog, speculative delivery" : "SpecLog, confirmed delivery",
                    REDIS_OFF => $"Redis Streams, {redisOffName.Replace("redis (", "", StringComparison.Ordinal).TrimEnd(')')}",
                    REDIS_ALWAYS => $"Redis Streams, {redisAlwaysName.Replace("redis (", "", StringComparison.Ordinal).TrimEnd(')')}",
                    NATS => $"{natsName}, push consumer",
                    _ => $"{postgresName} INSERT+NOTIFY",
                };
                var maxes = list.Where(r => r.Max is not null).Select(r => r.Max!.Value).ToList();
                rows.Add(new PeerSummary(
                    system,
                    label,
                    Median(list.Select(r => r.Run.Ack.P50)),
                    Median(list.Select(r => r.Run.Ack.P99)),
                    Median(list.Select(r => r.Run.Delivery[k].P50)),
                    Median(list.Select(r => r.Run.Delivery[k].P99)),
                    list.Sum(r => r.Run.Delivery[k].Count),
                    list.Sum(r => r.Run.Acked),
                    list.Sum(r => r.Run.Issued),
                    maxes.Count == 0 ? null : Median(maxes)));
            }
        }

        LastResults = rows;
        var reference = rows.FirstOrDefault(r => r.Label.StartsWith("SpecLog, speculative", StringComparison.Ordinal));
        Console.WriteLine();
        Console.WriteLine("| system | append ack p50 (ms) | append ack p99 (ms) | delivery p50 (ms) | delivery p99 (ms) | delivered/acked/sent | max appends/s | delivery p50 ÷ SpecLog spec. | delivery p99 ÷ SpecLog spec. |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|---|");
        foreach (var r in rows)
        {
            var ratio50 = reference is null ? "—" : F($"{r.DeliveryP50 / reference.DeliveryP50:F2}×");
            var ratio99 = reference is null ? "—" : F($"{r.DeliveryP99 / reference.DeliveryP99:F2}×");
            Console.WriteLine(F($"| {r.Label} | {r.AckP50:F3} | {r.AckP99:F3} | {r.DeliveryP50:F3} | {r.DeliveryP99:F3} | {r.Delivered}/{r.Acked}/{r.Sent} | {(r.MaxAppendsPerSecond is { } m ? m.ToString("N0", CultureInfo.InvariantCulture) : "—")} | {ratio50} | {ratio99} |"));
        }

        foreach (var (system, reason) in skipped)
        {
            Console.WriteLine($"| {system} | skipped: {reason.ReplaceLineEndings(" ")} | | | | | | | |");
        }
    }

    private static string F(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);

    /// <summary>Writes peers.md/.json and merges the headline peer figures into latest.json.</summary>
    private async Task WriteReportAsync(string outDir, Dictionary<string, string> skipped, string? natsDurability)
    {
        var report = new BenchReport("Peers: the same open-loop workload against Redis Streams, PostgreSQL and SpecLog");
        var section = report.AddSection("Append acknowledgement and delivery latency (ms), saturation throughput");
        section.AddText("Open-loop appenders, records stamped when handed to the client library; delivery measured by one consumer. " +
            "Redis: XADD, delivery by XREAD BLOCK on a raw RESP connection. PostgreSQL: INSERT + pg_notify in one transaction, delivery by LISTEN. " +
            "NATS: JetStream publish (ack = PubAck after the message is stored) to a file-storage stream, delivery by a push consumer (deliver subject, no acks). " +
            "SpecLog: one in-process silo, single sequencer, fsync on; speculative and confirmed delivery from one subscription." +
            (natsDurability is null ? "" : $" NATS durability in this run: {natsDurability}."));
        var reference = LastResults.FirstOrDefault(r => r.Label.StartsWith("SpecLog, speculative", StringComparison.Ordinal));
        var table = section.AddTable("system", "ack p50", "ack p99", "delivery p50", "delivery p99", "delivered/acked/sent", "max appends/s", "delivery p50 ÷ SpecLog spec.");
        foreach (var r in LastResults)
        {
            table.AddRow(r.Label, F($"{r.AckP50:F3}"), F($"{r.AckP99:F3}"), F($"{r.DeliveryP50:F3}"), F($"{r.DeliveryP99:F3}"),
                F($"{r.Delivered}/{r.Acked}/{r.Sent}"), r.MaxAppendsPerSecond is { } m ? F($"{m:F0}") : "—",
                reference is null ? "—" : F($"{r.DeliveryP50 / reference.DeliveryP50:F2}"));
        }

        foreach (var (system, reason) in skipped)
        {
            table.AddRow(system, "skipped: " + reason.ReplaceLineEndings(" "), "", "", "", "", "", "");
        }

        void Figure(string key, string system, Func<PeerSummary, double?> value)
        {
            if (LastResults.FirstOrDefault(r => r.System == system) is { } row && value(row) is { } v && !double.IsNaN(v))
            {
                report.SetFigure(key, v);
            }
        }

        Figure("redis_aof_off_delivery_p50_us", REDIS_OFF, r => r.DeliveryP50 * 1000);
        Figure("redis_aof_always_delivery_p50_us", REDIS_ALWAYS, r => r.DeliveryP50 * 1000);
        Figure("postgres_delivery_p50_us", POSTGRES, r => r.DeliveryP50 * 1000);
        Figure("redis_aof_always_max_appends_per_s", REDIS_ALWAYS, r => r.MaxAppendsPerSecond);
        Figure("redis_aof_off_max_appends_per_s", REDIS_OFF, r => r.MaxAppendsPerSecond);
        Figure("nats_jetstream_ack_p50_us", NATS, r => r.AckP50 * 1000);
        Figure("nats_jetstream_delivery_p50_us", NATS, r => r.DeliveryP50 * 1000);
        Figure("nats_jetstream_max_appends_per_s", NATS, r => r.MaxAppendsPerSecond);
        if (reference is not null)
        {
            // SpecLog's own figures under the same workload, so ratios against the peers can be read from latest.json.
            report.SetFigure("peers_speclog_spec_delivery_p50_us", reference.DeliveryP50 * 1000);
            report.SetFigure("peers_speclog_ack_p50_us", reference.AckP50 * 1000);
            if (reference.MaxAppendsPerSecond is { } max)
            {
                report.SetFigure("peers_speclog_max_appends_per_s", max);
            }
        }

        if (LastResults.FirstOrDefault(r => r.Label.StartsWith("SpecLog, confirmed", StringComparison.Ordinal)) is { } confirmed)
        {
            report.SetFigure("peers_speclog_confirmed_delivery_p50_us", confirmed.DeliveryP50 * 1000);
        }
        report.Finish();
        var (markdown, _) = await report.WriteAsync(outDir, "peers");
        await report.MergeFiguresAsync(Path.Combine(outDir, "latest.json"), report.Figures.Keys.ToList());
        Console.WriteLine($"wrote {markdown}");
    }

    private static double Median(IEnumerable<double> values)
    {
        var sorted = values.Where(v => !double.IsNaN(v)).OrderBy(v => v).ToArray();
        return sorted.Length == 0 ? double.NaN : sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }
}

/// <summary>One row of the peers table (latencies in ms).</summary>
internal sealed record PeerSummary(
    string System, string Label, double AckP50, double AckP99, double DeliveryP50, double DeliveryP99, long Delivered, long Acked, long Sent, double? MaxAppendsPerSecond);
