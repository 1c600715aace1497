using System.Globalization;
using SpecLog.Bench.Reporting;
using SpecLog.Bench.Workloads;

namespace SpecLog.Bench.Scenarios;

/// <summary>
/// Scenario 3, a burst on one shard with lag-fix on and off. Every shard appends at a steady open-loop rate; at regular
/// intervals shard 0 receives a burst of records at once, which pushes it several cuts ahead of the others. With
/// lag-fix the sequencer tells the laggards to fill no-ops up to it in one step; without, they only fill one cut per
/// no-op deadline, so the burst's records (and everything behind them in GSN order) wait for the others to crawl up.
/// E2E per record is measured as in scenario 1 and shown against the time since the burst.
/// </summary>
public sealed class BurstScenario : IScenario
{
    public string Name => "burst";

    public string Description =>
        "a burst of records on one shard, lag-fix on vs off; E2E over time since the burst "
        + "[--burst 30 --every 0.5 --shards 4 --rate 1000 --compute-ms 0 --seconds 5 --warmup 1 --rounds 2 --record-size 100 --out bench/results]";

    public async Task<int> RunAsync(BenchArgs args)
    {
        var burst = args.GetInt("burst", 30);
        var every = args.GetDouble("every", 0.5);
        var shards = args.GetInt("shards", 4);
        var rate = args.GetDouble("rate", 1000);
        var computeMs = args.GetDouble("compute-ms", 0);
        var seconds = args.GetDouble("seconds", 5);
        var warmup = args.GetDouble("warmup", 1);
        var rounds = args.GetInt("rounds", 2);
        var recordSize = args.GetInt("record-size", 100);
        var outDir = args.Get("out") ?? Path.Combine("bench", "results");
        if (burst < 1 || every < 0.05 || shards < 2 || rate <= 0 || computeMs < 0 || seconds < every || warmup < 0 || rounds < 1 || recordSize < ShardLoad.HeaderBytes)
        {
            throw new ArgumentException($"--burst, --rate and --rounds must be positive, --shards at least 2, --every at least 0.05 s and at most --seconds, --compute-ms and --warmup not negative, --record-size at least {ShardLoad.HeaderBytes}.");
        }

        var bursts = Enumerable.Range(0, (int)Math.Floor(seconds / every)).Select(i => new Burst((i + 0.5) * every, 0, burst)).ToArray();
        var configs = new[] { true, false };
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"burst: {shards} shards at {rate} appends/s each, a burst of {burst} on shard 0 every {every} s ({bursts.Length} per run), compute {computeMs} ms, lag-fix on vs off, {rounds} round(s) of {warmup} + {seconds} s"));
        var results = await ShardLoad.RunRoundsAsync("burst", configs, rounds, lagFix => $"lag-fix {(lagFix ? "on" : "off")}",
            lagFix => new ShardLoadSpec
            {
                Shards = shards,
                Rate = (_, _) => rate,
                Bursts = bursts,
                ComputeMs = computeMs,
                RecordSize = recordSize,
                Warmup = warmup,
                Seconds = seconds,
                Ordering = o => o.LagFixEnabled = lagFix,
            },
            (_, r) =>
            {
                var b = r.Records.Where(x => x.Burst >= 0).Select(x => x.E2eUs).ToArray();
                return string.Create(CultureInfo.InvariantCulture,
                    $"burst E2E p50 {Ms(ShardLoad.Quantile(b, 0.5))} ms max {Ms(ShardLoad.Quantile(b, 1))}, {r.Records.Count}/{r.Issued} measured, {r.Failed} failed, no-ops {r.NoOpFraction * 100:F1} %");
            });
        var report = new BenchReport("Burst on one shard: lag-fix on vs off (scenario 3)");
        report.AddSection("Setup").AddText(string.Create(CultureInfo.InvariantCulture,
            $"A fresh single-silo in-process cluster per run ({shards} shards, fsync on, unreplicated sequencer, default Fix-Ante settings: T_ord 1 ms, {Defaults.CutsPerWindow} cuts per window, lag-fix threshold {Defaults.LagFixFraction} × W). "
            + $"One open-loop appender per shard at {rate} appends/s ({recordSize} B records); every {every} s shard 0 also gets **{burst} appends at once** ({bursts.Length} bursts per run, in the middle of each {every} s slot). "
            + $"One whole-log subscriber feeds a consumer that spins {computeMs} ms per record; E2E = max(confirmation seen, compute done) − scheduled append start. "
            + $"Lag-fix on and off alternate, {rounds} round(s) of {warmup} s warm-up + {seconds} s measured; records of all rounds are pooled."));

        var main = report.AddSection("E2E around the bursts");
        var table = main.AddTable("lag-fix", "burst records E2E p50 (ms)", "p99", "max", "other shards within 50 ms after a burst, p50 (ms)", "p99", "steady (no burst within 50 ms) p50 (ms)", "p99", "no-ops", "lag-fixes/run", "measured/issued", "failed");
        var summary = new Dictionary<bool, (double BurstP99, double AfterP99)>();
        foreach (var lagFix in configs)
        {
            var runs = results[lagFix];
            var records = runs.SelectMany(r => r.Records).ToArray();
            var burstE2e = records.Where(r => r.Burst >= 0).Select(r => r.E2eUs).ToArray();
            var after = records.Where(r => r.Burst < 0 && r.Shard != 0 && SinceBurst(r.StartSeconds, bursts) is >= 0 and < 0.05).Select(r => r.E2eUs).ToArray();
            var steady = records.Where(r => r.Burst < 0 && SinceBurst(r.StartSeconds, bursts) is < 0 or >= 0.05).Select(r => r.E2eUs).ToArray();
            summary[lagFix] = (ShardLoad.Quantile(burstE2e, 0.99), ShardLoad.Quantile(after, 0.99));
            table.AddRow(lagFix ? "on" : "off",
                Ms(ShardLoad.Quantile(burstE2e, 0.5)), Ms(ShardLoad.Quantile(burstE2e, 0.99)), Ms(ShardLoad.Quantile(burstE2e, 1)),
                Ms(ShardLoad.Quantile(after, 0.5)), Ms(ShardLoad.Quantile(after, 0.99)),
                Ms(ShardLoad.Quantile(steady, 0.5)), Ms(ShardLoad.Quantile(steady, 0.99)),
                (runs.Select(r => r.NoOpFraction).Average() * 100).ToString("F1", CultureInfo.InvariantCulture) + " %",
                runs.Average(r => r.LagFixes).ToString("F0", CultureInfo.InvariantCulture),
                $"{records.Length}/{runs.Sum(r => r.Issued)}", runs.Sum(r => r.Failed).ToString(CultureInfo.InvariantCulture));
        }

        var burstRatio = summary[false].BurstP99 / summary[true].BurstP99;
        var afterRatio = summary[false].AfterP99 / summary[true].AfterP99;
        main.AddText(string.Create(CultureInfo.InvariantCulture,
            $"Lag-fix off ÷ on, p99: burst records **{burstRatio:F2}×**, other shards' records right after a burst **{afterRatio:F2}×**. "
            + $"A burst makes shard 0 complete several cuts at once; the others' records in those cuts get positions only once each laggard has filled up to it."));
        report.SetFigure("burst_e2e_p99_ratio_lagfix_off_on", Math.Round(burstRatio, 3));
        report.SetFigure("burst_after_e2e_p99_ratio_lagfix_off_on", Math.Round(afterRatio, 3));

        // E2E over time since the burst: 1 ms bins from 5 ms before to 60 ms after, p50 and max of every record due then.
        var chart = main.AddChart("e2e-over-time", $"E2E around a {burst}-record burst on shard 0", "time since the burst (ms)", "E2E (ms)");
        var binTable = report.AddSection("E2E over time since the burst (all shards, 5 ms bins)")
            .AddTable("since burst (ms)", "lag-fix on p50 (ms)", "on max", "off p50 (ms)", "off max");
        var bins = Enumerable.Range(-5, 66).ToArray();
        var series = new Dictionary<bool, (double[] P50, double[] Max)>();
        foreach (var lagFix in configs)
        {
            var byBin = results[lagFix].SelectMany(r => r.Records)
                .Select(r => (Since: SinceBurstSigned(r.StartSeconds, bursts) * 1000, r.E2eUs))
                .Where(x => x.Since >= -5 && x.Since < 61)
                .GroupBy(x => (int)Math.Floor(x.Since))
                .ToDictionary(g => g.Key, g => g.Select(x => x.E2eUs).ToArray());
            var p50 = bins.Select(b => byBin.TryGetValue(b, out var v) ? ShardLoad.Quantile(v, 0.5) / 1000 : double.NaN).ToArray();
            var max = bins.Select(b => byBin.TryGetValue(b, out var v) ? ShardLoad.Quantile(v, 1) / 1000 : double.NaN).ToArray();
            series[lagFix] = (p50, max);
            chart.AddSeries($"lag-fix {(lagFix ? "on" : "off")}, p50", bins.Select(b => (double)b), p50);
            chart.AddSeries($"lag-fix {(lagFix ? "on" : "off")}, max", bins.Select(b => (double)b), max);
        }

        // E2E over the whole run (first round of each), 20 ms bins: without lag-fix every burst's lead is never made up.
        var timeline = main.AddChart("e2e-timeline", $"E2E over a run, a {burst}-record burst every {every} s (first round)", "time (s)", "E2E p50 (ms)");
        foreach (var lagFix in configs)
        {
            var bins20 = results[lagFix][0].Records.GroupBy(r => Math.Floor(r.StartSeconds / 0.02)).OrderBy(g => g.Key).ToArray();
            timeline.AddSeries($"lag-fix {(lagFix ? "on" : "off")}", bins20.Select(g => g.Key * 0.02), bins20.Select(g => ShardLoad.Quantile(g.Select(r => r.E2eUs), 0.5) / 1000));
        }

        main.AddText("Without lag-fix a laggard fills at most one cut per no-op deadline and otherwise fills only what its own appends leave short, "
            + "so a shard that a burst put ahead stays ahead: the others' records wait for cuts the leader completed long ago, and each burst adds to the lag.");

        for (var lo = -5; lo < 61; lo += 5)
        {
            double Agg(bool lagFix, bool max) => Enumerable.Range(0, bins.Length).Where(i => bins[i] >= lo && bins[i] < lo + 5)
                .Select(i => max ? series[lagFix].Max[i] : series[lagFix].P50[i]).Where(double.IsFinite).DefaultIfEmpty(double.NaN).Max();
            binTable.AddRow($"{lo}…{lo + 5}", F(Agg(true, false)), F(Agg(true, true)), F(Agg(false, false)), F(Agg(false, true)));
        }

        Console.WriteLine();
        Console.Write(report.ToMarkdown());
        var (md, json) = await report.WriteAsync(outDir, "burst");
        await report.MergeFiguresAsync(Path.Combine(outDir, "latest.json"), report.Figures.Keys.ToList());
        Console.WriteLine($"wrote {md} and {json}; merged its figures into latest.json");
        return results.Values.Any(l => l.Any(r => r.Records.Count == 0)) ? 2 : 0;
    }

    private static readonly SpecLog.FixAnte.FixAnteOptions Defaults = new();

    /// <summary>Seconds since the latest burst at or before <paramref name="t"/>, or −1 before the first.</summary>
    private static double SinceBurst(double t, Burst[] bursts)
    {
        var since = -1.0;
        foreach (var b in bursts)
        {
            if (b.AtSeconds <= t)
            {
                since = t - b.AtSeconds;
            }
        }

        return since;
    }

    /// <summary>Seconds from the nearest burst (negative before it).</summary>
    private static double SinceBurstSigned(double t, Burst[] bursts) =>
        bursts.Select(b => t - b.AtSeconds).MinBy(Math.Abs);

    private static string Ms(double us) => LatencySummary.Ms(us);

    private static string F(double ms) => double.IsFinite(ms) ? ms.ToString("F2", CultureInfo.InvariantCulture) : "n/a";
}
