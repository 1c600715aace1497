using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using SpecLog.Bench.Reporting;

namespace SpecLog.Bench.Scenarios;

/// <summary>
/// The headline run (after the program's unmeasured JIT warm-up of the log): short versions of scenarios 8 (floors), 2 (shards), 1 (E2E), 6 (slow pilot), 7 (peers) and 3
/// (burst), one after the other, then
/// <c>latest.md</c> (the targets, met or missed, and every scenario's tables) next to <c>latest.json</c>.
/// </summary>
public sealed class HeadlineScenario : IScenario
{
    /// <summary>Issue 4's targets: key in latest.json, description, whether lower is better, the bound.</summary>
    private static readonly (string Key, string What, bool LowerIsBetter, double Bound, string Unit)[] s_targets =
    [
        ("spec_delivery_p50_us", "speculative delivery p50 (records fsync'd first)", true, 600, "µs"),
        ("append_p50_us", "append p50 at 20,000 appends/s over 4 shards", true, 1500, "µs"),
        ("append_p99_us", "append p99 at 20,000 appends/s over 4 shards", true, 5000, "µs"),
        ("e2e_ratio_compute_1_5ms", "E2E at 1.5 ms compute, Scalog mode ÷ SpecLog (p50)", false, 1.6, "×"),
        ("noop_fraction", "no-op share of positions at steady load", true, 0.05, ""),
        ("max_durable_appends_per_s", "durable appends/s at saturation", false, 100_000, "/s"),
        ("slow_pilot_p99_ratio_copilot", "append p99 with a 20 ms-slow pilot ÷ without (Copilot)", true, 1.2, "×"),
    ];

    public string Name => "headline";

    public string Description => "short versions of the main scenarios (≤ 15 min on 2 cores); writes bench/results/latest.md and latest.json [--out bench/results --skip peers,...]";

    public async Task<int> RunAsync(BenchArgs args)
    {
        var outDir = args.Get("out") ?? Path.Combine("bench", "results");
        var skip = (args.Get("skip") ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToHashSet(StringComparer.OrdinalIgnoreCase);
        Directory.CreateDirectory(outDir);
        var latestJson = Path.Combine(outDir, "latest.json");
        File.Delete(latestJson); // every figure in it comes from this run
        var machine = MachineInfo.Capture();
        var started = Stopwatch.StartNew();
        var steps = new List<(string Name, IScenario Scenario, string[] Args)>
        {
            ("floors", new FloorsScenario(), ["--samples", "2000", "--out", outDir]),
            ("shards", new ShardsScenario(), ["--shards", "1,2,4", "--seconds", "4", "--warmup", "1", "--sat-seconds", "3", "--rounds", "1", "--out", outDir]),
            ("e2e", new E2eScenario(), ["--compute-ms", "0.5,1.5,5", "--seconds", "3", "--rounds", "3", "--out", outDir]),
            ("e2e-belfast", new E2eBelfastScenario(), ["--compute-ms", "1.5", "--configs", "Copilot:3,Single:1", "--rounds", "2", "--seconds", "3", "--warmup", "1", "--out", outDir]),
            ("ordering", new OrderingScenario(), ["--modes", "Copilot,MultiPaxos", "--delay-ms", "1,20", "--rounds", "2", "--seconds", "5", "--warmup", "2", "--rate", "500", "--out", outDir]),
            ("peers", new PeersScenario(), ["--seconds", "4", "--warmup", "1", "--saturate", "--out", outDir]),
            ("burst", new BurstScenario(), ["--rounds", "1", "--seconds", "3", "--out", outDir]),
            ("anatomy", new AnatomyScenario(), ["--configs", "Single:1,Copilot:1,Copilot:3,MultiPaxos:3,Copilot:3:3", "--rates", "2000,20000", "--seconds", "4", "--warmup", "1.5", "--out", outDir]),
            ("failover", new FailoverScenario(), ["--kills", "20", "--rounds", "1", "--seconds", "8", "--out", outDir]),
            ("elastic", new ElasticScenario(), ["--configs", "Copilot:1,Copilot:3", "--adds", "4", "--out", outDir]),
            ("recovery", new RecoveryScenario(), ["--seconds", "30", "--out", outDir]),
            ("samples", new SamplesScenario(), ["--rate", "500", "--seconds", "6", "--rounds", "2", "--out", outDir]),
            ("filter", new FilterScenario(), ["--rate", "2000", "--seconds", "5", "--out", outDir]),
        };

        var outcomes = new List<(string Name, int Exit, TimeSpan Took)>();
        foreach (var (name, scenario, stepArgs) in steps)
        {
            if (skip.Contains(name))
            {
                outcomes.Add((name, -1, TimeSpan.Zero));
                continue;
            }

            Console.WriteLine($"== headline: {name} ({started.Elapsed:mm\\:ss} elapsed) ==");
            var t = Stopwatch.StartNew();
            int exit;
            try
            {
                exit = await scenario.RunAsync(BenchArgs.Parse(stepArgs));
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                Console.Error.WriteLine($"{name} failed: {e.Message}");
                exit = 2;
            }

            outcomes.Add((name, exit, t.Elapsed));
        }

        machine.MarkEnd();
        var figures = ReadFigures(latestJson);
        var md = new StringBuilder();
        md.AppendLine("# SpecLogOrleans — headline benchmark results").AppendLine();
        md.AppendLine(CultureInfo.InvariantCulture, $"Run {DateTimeOffset.UtcNow:yyyy-MM-dd HH:mm} UTC in {started.Elapsed.TotalMinutes:F1} min with `dotnet run -c Release --project bench/SpecLog.Bench -- headline`.");
        md.AppendLine(CultureInfo.InvariantCulture, $"Machine: {machine.Describe()}").AppendLine();
        md.AppendLine("Shared and noisy machine: compare the ratios measured side by side within one scenario, not absolute numbers across runs.").AppendLine();
        md.AppendLine("## Targets (issue 4; reported, not gates)").AppendLine();
        md.AppendLine("| target | bound | measured | verdict |").AppendLine("|---|---|---|---|");
        foreach (var (key, what, lower, bound, unit) in s_targets)
        {
            if (figures.TryGetValue(key, out var value))
            {
                var met = lower ? value <= bound : value >= bound;
                var miss = lower ? value / bound : bound / value;
                md.AppendLine(CultureInfo.InvariantCulture,
                    $"| {what} | {(lower ? "≤" : "≥")} {BenchReport.FormatNumber(bound)} {unit} | {BenchReport.FormatNumber(value)} {unit} | {(met ? "met" : $"missed ({miss:F1}× off)")} |");
            }
            else
            {
                md.AppendLine(CultureInfo.InvariantCulture, $"| {what} | {(lower ? "≤" : "≥")} {BenchReport.FormatNumber(bound)} {unit} | not measured | scenario not in this run |");
            }
        }

        md.AppendLine().AppendLine("## Targets of issue 9 (latency at the machine's floor; reported, not gates)").AppendLine();
        md.AppendLine("Figures from the `anatomy` scenario (4 shards, fsync on, fresh cluster per configuration) unless the row says otherwise; "
            + "E2E from `e2e-belfast` (Belfast's batched microbenchmark, 100 B records at 20,000 appends/s, compute slept rather than spun on this 2-core machine).").AppendLine();
        md.AppendLine("| target | bound | measured | verdict |").AppendLine("|---|---|---|---|");
        double? Fig(string key) => figures.TryGetValue(key, out var v) ? v : null;
        double? Quot(string a, string b) => Fig(a) is { } x && Fig(b) is { } y && y != 0 ? x / y : null;
        void Target(string what, bool lower, double bound, double? value, string unit)
        {
            var cell = value is { } v && double.IsFinite(v) ? $"{BenchReport.FormatNumber(v)} {unit}" : "not measured";
            var verdict = value is { } m && double.IsFinite(m) ? ((lower ? m <= bound : m >= bound) ? "met" : $"missed ({(lower ? m / bound : bound / m):F1}× off)") : "—";
            md.AppendLine(CultureInfo.InvariantCulture, $"| {what} | {(lower ? "≤" : "≥")} {BenchReport.FormatNumber(bound)} {unit} | {cell} | {verdict} |");
        }

        var fsyncP50 = Fig("fdatasync_p50_us") ?? 250;
        Target("E2E p50 at 1.5 ms compute, Scalog mode ÷ SpecLog, Copilot on 3 silos (`e2e-belfast`)", false, 1.6, Fig("e2e_belfast_ratio_1_5ms_copilot"), "×");
        Target("E2E p50 at 1.5 ms compute, Scalog mode ÷ SpecLog, Single (`e2e-belfast`)", false, 1.6, Fig("e2e_belfast_ratio_1_5ms_single"), "×");
        Target("E2E p50 at compute = Scalog mode's confirmation p50, Scalog ÷ SpecLog, Copilot on 3 silos", false, 1.6, Fig("e2e_belfast_ratio_at_confirm_copilot"), "×");
        Target("SpecLog E2E p50 ÷ its ideal max(confirmation, delivery + compute), Copilot, 1.5 ms", true, 1.1, Fig("e2e_belfast_overlap_copilot"), "×");
        Target("E2E at 1.5 ms compute, per-record variant, Scalog ÷ SpecLog (`e2e`, Single)", false, 1.3, Fig("e2e_ratio_compute_1_5ms"), "×");
        Target("GSN-ordered speculative delivery p50, 20,000/s over 4 shards (`shards`)", true, fsyncP50 + 350, Fig("spec_delivery_p50_us"), "µs");
        Target("unordered speculative delivery p50, Single, 20,000/s", true, fsyncP50 + 150, Fig("spec_delivery_unordered_p50_us"), "µs");
        Target("append p50, Single, 20,000/s (`shards`)", true, 1500, Fig("append_p50_us"), "µs");
        Target("append p99, Single, 20,000/s (`shards`)", true, 5000, Fig("append_p99_us"), "µs");
        Target("append p50, Copilot on 3 silos ÷ Single, 2,000/s", true, 2, Quot("copilot_append_p50_us_2k", "single_append_p50_us_2k"), "×");
        Target("append p50, Copilot on 3 silos ÷ Multi-Paxos on 3 silos, 2,000/s", true, 1.25, Quot("copilot_append_p50_us_2k", "multipaxos_append_p50_us_2k"), "×");
        Target("append p50, Copilot on 3 silos ÷ Single, 20,000/s", true, 2, Quot("copilot_append_p50_us_20k", "anatomy_single_1silo_20k_append_p50_us"), "×");
        Target("append p50, Copilot on 3 silos ÷ Multi-Paxos on 3 silos, 20,000/s", true, 1.25, Quot("copilot_append_p50_us_20k", "anatomy_multipaxos_3silo_20k_append_p50_us"), "×");
        Target("ordering-layer commands per append, Copilot on 3 silos, 2,000/s", true, 1.2, Fig("ordering_commands_per_append_2k"), "");
        Target("no-op share, 20,000/s (`shards`)", true, 0.05, Fig("noop_fraction"), "");
        Target("no-op share, Single, 2,000/s", true, 0.20, Fig("noop_fraction_2k"), "");
        Target("durable appends/s at saturation (`shards`)", false, 100_000, Fig("max_durable_appends_per_s"), "/s");
        Target("append p99 with a 20 ms-slow pilot ÷ healthy, Copilot (`ordering`)", true, 1.2, Fig("slow_pilot_p99_ratio_copilot"), "×");

        md.AppendLine().AppendLine("## Targets of issue 10 (a real cluster; reported, not gates)").AppendLine();
        md.AppendLine("From the `failover` scenario: three silo processes with Azure Table membership on Azurite, 3 replicas per shard, SIGKILL of the silo holding shard 0's leader, 500 appends/s to shard 0 open loop.").AppendLine();
        md.AppendLine("| target | bound | measured | verdict |").AppendLine("|---|---|---|---|");
        Target("failover p50: kill -9 of the leader's silo → next acknowledged append on the shard", true, 1000, Fig("failover_p50_ms"), "ms");
        Target("failover max over the kills", true, 3000, Fig("failover_max_ms"), "ms");
        Target("kills measured", false, 20, Fig("failover_kills"), "");
        Target("added shard's first record delivered, p50 (`elastic`, Copilot on 1 silo)", true, 100, Fig("elastic_add_first_delivery_p50_ms_copilot_1silo"), "ms");
        Target("added shard's first record delivered, p50 (`elastic`, Copilot on 3 silos, R = 3)", true, 100, Fig("elastic_add_first_delivery_p50_ms_copilot_3silo"), "ms");
        Target("appends failed while shards were added and removed (`elastic`, both configurations)", true, 0, Fig("elastic_failed_appends_copilot_1silo") is { } f1 && Fig("elastic_failed_appends_copilot_3silo") is { } f3 ? f1 + f3 : null, "");
        string MsCell(string key) => Fig(key) is { } v ? $"{v:0} ms" : "not measured";
        md.AppendLine(CultureInfo.InvariantCulture, $"| whole-shard failure, Copilot on 3 silos, R = 3 (`elastic`; 500 ms timeout): silence → declared failed / → subscriber's mis-speculation notice | — | {MsCell("shard_failure_declared_ms_copilot_3silo")} / {MsCell("shard_failure_notice_ms_copilot_3silo")} | reported |");
        string Count(string key) => Fig(key) is { } v ? v.ToString("N0", CultureInfo.InvariantCulture) : "not measured";
        string Secs(string key) => Fig(key) is { } v ? $"{v:0.00} s" : "not measured";
        md.AppendLine(CultureInfo.InvariantCulture, $"| restart of a one-silo Copilot log after 30 s of load (`recovery`): ordering records replayed / first append acknowledged, checkpoints on vs off | bounded by the retained state | {Count("recovery_replayed_records_on")} / {Secs("recovery_first_append_s_on")} vs {Count("recovery_replayed_records_off")} / {Secs("recovery_first_append_s_off")} | reported |");
        md.AppendLine(CultureInfo.InvariantCulture, $"| append p50 with R = 3 ÷ R = 1 (three processes, side by side; reported) | — | {(Quot("replicated_append_p50_ms_r3", "replicated_append_p50_ms_r1") is { } rr ? rr.ToString("F2", CultureInfo.InvariantCulture) + "×" : "not measured")} | what replication costs |");
        foreach (var k in new[] { 2, 20 })
        {
            // In one process, the same run as issue 9's rows: Copilot on three silos with three replicas per shard against one.
            string Cell(string key, string reference) =>
                Fig($"anatomy_copilot_3silo_r3_{k}k_{key}") is { } r3 && Fig($"anatomy_copilot_3silo_{k}k_{key}") is { } r1 && r1 > 0
                    ? $"{r3 / 1000:0.00} ms vs {r1 / 1000:0.00} ms ({r3 / r1:0.00}×){reference}"
                    : "not measured";
            var single = Fig($"anatomy_single_1silo_{k}k_append_p50_us") is { } sp && Fig($"anatomy_copilot_3silo_r3_{k}k_append_p50_us") is { } r3p && sp > 0 ? $"; {r3p / sp:0.00}× Single (issue 9: ≤ 2×)" : "";
            md.AppendLine(CultureInfo.InvariantCulture, $"| append p50, Copilot on 3 silos, R = 3 vs R = 1, {k},000/s (`anatomy`, in process) | — | {Cell("append_p50_us", single)} | what replication costs |");
            md.AppendLine(CultureInfo.InvariantCulture, $"| append p99, R = 3 vs R = 1, {k},000/s | — | {Cell("append_p99_us", "")} | reported |");
            md.AppendLine(CultureInfo.InvariantCulture, $"| GSN-ordered delivery p50, R = 3 vs R = 1, {k},000/s | — | {Cell("ordered_delivery_p50_us", "")} | reported |");
        }

        md.AppendLine().AppendLine("## Issue 11: the sample applications end to end (reported)").AppendLine();
        md.AppendLine("From the `samples` scenario: each application on an embedded silo in SpecLog and in Scalog mode, alternating; E2E from a record's append to its output's release by `SpeculativeConsumer`.").AppendLine();
        md.AppendLine("| application | SpecLog E2E p50 | Scalog mode E2E p50 | Scalog ÷ SpecLog (`latest.json`) |").AppendLine("|---|---:|---:|---:|");
        foreach (var (app, label) in new[] { ("fraud", "fraud detection (GSN order, 1 ms of scoring per payment)"), ("intrusion", "intrusion detection (per shard)") })
        {
            string Ms(string key) => Fig(key) is { } v ? $"{v:0.000} ms" : "not measured";
            md.AppendLine(CultureInfo.InvariantCulture, $"| {label} | {Ms($"e2e_{app}_p50_ms_speclog")} | {Ms($"e2e_{app}_p50_ms_scalog")} | {(Fig($"e2e_{app}_ratio") is { } r ? $"{r:0.00}× (`e2e_{app}_ratio`)" : "not measured")} |");
        }

        md.AppendLine().AppendLine("From the `filter` scenario: at 2,000 appends/s with 10 tags in turn, a GSN-ordered subscription filtered at the shards to one tag beside one to the whole log, both timing the same records.").AppendLine();
        md.AppendLine("| filtered subscription | whole log | filtered | filtered ÷ whole |").AppendLine("|---|---:|---:|---:|");
        md.AppendLine(CultureInfo.InvariantCulture, $"| GSN-ordered delivery p50 | {(Fig("filter_delivery_p50_ms_whole") is { } fw ? $"{fw:0.000} ms" : "not measured")} | {(Fig("filter_delivery_p50_ms_filtered") is { } ff ? $"{ff:0.000} ms" : "not measured")} | {(Fig("filter_delivery_ratio") is { } fr ? $"{fr:0.00}× (`filter_delivery_ratio`; 1 = as fast)" : "not measured")} |");
        md.AppendLine(CultureInfo.InvariantCulture, $"| records the subscriber received | 100 % | {(Fig("filter_records_share") is { } fs ? $"{fs:P1}" : "not measured")} | only its tag's records travel |");

        md.AppendLine().AppendLine("## Ratios measured side by side").AppendLine();
        md.AppendLine("Each ratio compares two systems run alternately in the same scenario, so machine noise mostly cancels.").AppendLine();
        md.AppendLine("| comparison | ratio | reading |").AppendLine("|---|---|---|");
        void Ratio(string what, double? value, string reading)
        {
            md.AppendLine(CultureInfo.InvariantCulture, $"| {what} | {(value is { } v && double.IsFinite(v) ? v.ToString("F2", CultureInfo.InvariantCulture) + "×" : "not measured")} | {reading} |");
        }

        double? Get(string key) => figures.TryGetValue(key, out var v) ? v : null;
        double? Div(string a, string b) => Get(a) is { } x && Get(b) is { } y && y != 0 ? x / y : null;
        Ratio("E2E at 1.5 ms compute, Scalog mode ÷ SpecLog (p50)", Get("e2e_ratio_compute_1_5ms"), "above 1: speculation lowers E2E (paper: 1.6×)");
        Ratio("append p50, SpecLog ÷ Scalog mode (4 shards)", Div("append_p50_us", "scalog_append_p50_us"), "SpecLog's append overhead (paper: ≤ 1.058×)");
        Ratio("append p99 with a 20 ms-slow pilot ÷ healthy, Copilot", Get("slow_pilot_p99_ratio_copilot"), "target ≤ 1.2×");
        Ratio("append p99 with a 20 ms-slow leader ÷ healthy, Multi-Paxos", Get("slow_pilot_p99_ratio_multipaxos"), "what Copilot avoids");
        Ratio("delivery p50, SpecLog speculative ÷ Redis appendfsync always", Div("peers_speclog_spec_delivery_p50_us", "redis_aof_always_delivery_p50_us"), "both fsync before delivering; below 1: SpecLog faster");
        Ratio("delivery p50, SpecLog speculative ÷ Redis AOF off", Div("peers_speclog_spec_delivery_p50_us", "redis_aof_off_delivery_p50_us"), "Redis without durability");
        Ratio("delivery p50, SpecLog speculative ÷ NATS JetStream (push consumer)", Div("peers_speclog_spec_delivery_p50_us", "nats_jetstream_delivery_p50_us"), "JetStream 2.9.10 fsyncs every 2 minutes, not per message (peers.md)");
        Ratio("saturation, SpecLog ÷ Redis appendfsync always", Div("peers_speclog_max_appends_per_s", "redis_aof_always_max_appends_per_s"), "durable appends/s with the same 64 closed-loop appenders each (peers scenario); SpecLog's commit latency caps it there — `shards` saturates it with up to 4,096");
        Ratio("burst records' E2E p99, lag-fix off ÷ on", Get("burst_e2e_p99_ratio_lagfix_off_on"), "above 1: lag-fix helps");

        md.AppendLine().AppendLine("## Steps").AppendLine();
        md.AppendLine("| scenario | outcome | took |").AppendLine("|---|---|---|");
        foreach (var (name, exit, took) in outcomes)
        {
            md.AppendLine(CultureInfo.InvariantCulture, $"| {name} | {(exit == -1 ? "skipped" : exit == 0 ? "ok" : $"exit {exit}")} | {took.TotalSeconds:F0} s |");
        }

        foreach (var (name, exit, _) in outcomes.Where(o => o.Exit == 0))
        {
            var path = Path.Combine(outDir, name + ".md");
            if (File.Exists(path))
            {
                md.AppendLine().AppendLine("---").AppendLine();
                foreach (var line in await File.ReadAllLinesAsync(path))
                {
                    md.AppendLine(line.StartsWith('#') ? "#" + line : line); // one level down under this file's title
                }
            }
        }

        var latestMd = Path.Combine(outDir, "latest.md");
        await File.WriteAllTextAsync(latestMd, md.ToString());
        Console.WriteLine($"wrote {latestMd} and {latestJson} in {started.Elapsed.TotalMinutes:F1} min");
        return outcomes.Any(o => o.Exit > 0) ? 1 : 0;
    }

    private static Dictionary<string, double> ReadFigures(string path)
    {
        var result = new Dictionary<string, double>(StringComparer.Ordinal);
        if (!File.Exists(path) || JsonNode.Parse(File.ReadAllText(path)) is not JsonObject root || root["figures"] is not JsonObject figures)
        {
            return result;
        }

        foreach (var (key, node) in figures)
        {
            if (node is JsonValue v && v.TryGetValue<double>(out var d))
            {
                result[key] = d;
            }
        }

        return result;
    }
}
