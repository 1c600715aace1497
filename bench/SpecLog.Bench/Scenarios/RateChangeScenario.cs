using System.Globalization;
using SpecLog.Bench.Reporting;
using SpecLog.Bench.Workloads;
using SpecLog.FixAnte;

namespace SpecLog.Bench.Scenarios;

/// <summary>
/// Scenario 4, a rate change: every shard appends at the same open-loop rate until, half-way through the measured
/// period, shard 0's rate doubles. With rate-based quotas the sequencer raises shard 0's quota at the next window
/// boundary; with fixed quotas shard 0 runs ahead of its quota and the others must fill no-ops to keep up. Both start
/// from the quota that fits the initial rate. Reported: no-op ratio and reports per second before and after the change,
/// E2E, and the quota and no-op ratio over time.
/// </summary>
public sealed class RateChangeScenario : IScenario
{
    public string Name => "ratechange";

    public string Description =>
        "one shard's rate doubles half-way; rate-based vs fixed quotas: no-op ratio, reports/s, E2E "
        + "[--shards 4 --rate 2000 --factor 2 --compute-ms 0 --seconds 6 --warmup 1 --rounds 2 --record-size 100 --out bench/results]";

    public async Task<int> RunAsync(BenchArgs args)
    {
        var shards = args.GetInt("shards", 4);
        var rate = args.GetDouble("rate", 2000);
        var factor = args.GetDouble("factor", 2);
        var computeMs = args.GetDouble("compute-ms", 0);
        var seconds = args.GetDouble("seconds", 6);
        var warmup = args.GetDouble("warmup", 1);
        var rounds = args.GetInt("rounds", 2);
        var recordSize = args.GetInt("record-size", 100);
        var outDir = args.Get("out") ?? Path.Combine("bench", "results");
        if (shards < 2 || rate <= 0 || factor <= 0 || computeMs < 0 || seconds < 1 || warmup < 0 || rounds < 1 || recordSize < ShardLoad.HeaderBytes)
        {
            throw new ArgumentException($"--shards at least 2, --rate, --factor and --rounds positive, --seconds at least 1, --compute-ms and --warmup not negative, --record-size at least {ShardLoad.HeaderBytes}.");
        }

        var defaults = new FixAnteOptions();
        var initialQuota = (int)Math.Clamp(Math.Round(rate * defaults.OrderingInterval.TotalSeconds), defaults.MinQuota, defaults.MaxQuota);
        var change = seconds / 2;
        var configs = new[] { true, false };
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"ratechange: {shards} shards at {rate} appends/s each; shard 0 goes to {rate * factor}/s at {change} s; quotas start at {initialQuota}; rate-based vs fixed, {rounds} round(s) of {warmup} + {seconds} s"));
        var results = await ShardLoad.RunRoundsAsync("ratechange", configs, rounds, Label,
            adaptive => new ShardLoadSpec
            {
                Shards = shards,
                Rate = (s, t) => s == 0 && t >= change ? rate * factor : rate,
                ComputeMs = computeMs,
                RecordSize = recordSize,
                Warmup = warmup,
                Seconds = seconds,
                SampleSeconds = 0.05,
                Ordering = o =>
                {
                    o.RateBasedQuotas = adaptive;
                    o.InitialQuota = initialQuota;
                },
            },
            (_, r) => string.Create(CultureInfo.InvariantCulture,
                $"no-ops before {Phase(r, false).NoOps * 100:F1} % after {Phase(r, true).NoOps * 100:F1} %, E2E p50 after {Ms(ShardLoad.Quantile(r.Records.Where(x => x.StartSeconds >= change).Select(x => x.E2eUs), 0.5))} ms, {r.Failed} failed"));
        var report = new BenchReport("Rate change on one shard: rate-based vs fixed quotas (scenario 4)");
        report.AddSection("Setup").AddText(string.Create(CultureInfo.InvariantCulture,
            $"A fresh single-silo in-process cluster per run ({shards} shards, fsync on, unreplicated sequencer, T_ord {defaults.OrderingInterval.TotalMilliseconds} ms, {defaults.CutsPerWindow} cuts per window, lag-fix on). "
            + $"One open-loop appender per shard at {rate} appends/s ({recordSize} B records); at t = {change} s of the {seconds} s measured period **shard 0's rate becomes {rate * factor}/s**. "
            + $"Both configurations start every shard at quota {initialQuota} (= rate × T_ord); *rate-based* lets the sequencer set quotas from the measured rates at each window boundary, *fixed* keeps them. "
            + $"E2E as in scenario 1 (consumer compute {computeMs} ms). Phases: *before* = [0, {change}) s, *after* = [{change + 0.5}, {seconds}) s (the first 0.5 s after the change is the transition). "
            + $"{rounds} round(s), alternating; figures are means over rounds."));

        var main = report.AddSection("No-ops, reports and latency");
        var table = main.AddTable("quotas", "no-ops before", "no-ops after", "reports/s before", "reports/s after", "shard 0 quota at the end", "E2E p50 before (ms)", "p99", "E2E p50 after (ms)", "p99", "lag-fixes/s after", "failed");
        var after = new Dictionary<bool, (double NoOps, double P99)>();
        foreach (var adaptive in configs)
        {
            var runs = results[adaptive];
            var before = runs.Select(r => Phase(r, false)).ToArray();
            var afterPhase = runs.Select(r => Phase(r, true)).ToArray();
            var recordsBefore = runs.SelectMany(r => r.Records).Where(x => x.StartSeconds < change).Select(x => x.E2eUs).ToArray();
            var recordsAfter = runs.SelectMany(r => r.Records).Where(x => x.StartSeconds >= change + 0.5).Select(x => x.E2eUs).ToArray();
            after[adaptive] = (afterPhase.Average(p => p.NoOps), ShardLoad.Quantile(recordsAfter, 0.99));
            table.AddRow(Label(adaptive),
                Pct(before.Average(p => p.NoOps)), Pct(afterPhase.Average(p => p.NoOps)),
                before.Average(p => p.ReportsPerSecond).ToString("F0", CultureInfo.InvariantCulture), afterPhase.Average(p => p.ReportsPerSecond).ToString("F0", CultureInfo.InvariantCulture),
                runs.Average(r => r.After[0].CurrentQuota).ToString("0.#", CultureInfo.InvariantCulture),
                Ms(ShardLoad.Quantile(recordsBefore, 0.5)), Ms(ShardLoad.Quantile(recordsBefore, 0.99)),
                Ms(ShardLoad.Quantile(recordsAfter, 0.5)), Ms(ShardLoad.Quantile(recordsAfter, 0.99)),
                afterPhase.Average(p => p.LagFixesPerSecond).ToString("F0", CultureInfo.InvariantCulture),
                runs.Sum(r => r.Failed).ToString(CultureInfo.InvariantCulture));
        }

        main.AddText(string.Create(CultureInfo.InvariantCulture,
            $"After the change, fixed ÷ rate-based: no-op ratio **{after[false].NoOps / after[true].NoOps:F2}×**, E2E p99 **{after[false].P99 / after[true].P99:F2}×**. "
            + $"With fixed quotas shard 0 completes cuts {factor}× as fast as the others, so lag-fixes make them fill the difference with no-ops; rate-based quotas give shard 0 {factor}× the slots per cut instead."));
        report.SetFigure("ratechange_noop_after_adaptive", Math.Round(after[true].NoOps, 4));
        report.SetFigure("ratechange_noop_after_fixed", Math.Round(after[false].NoOps, 4));

        var noOps = main.AddChart("noops", "No-op share of new slots over time (first round)", "time (s)", "no-ops (% of slots, per 50 ms)");
        var quota = main.AddChart("quota", "Shard 0's quota over time (first round)", "time (s)", "quota (slots per cut)");
        foreach (var adaptive in configs)
        {
            var samples = results[adaptive][0].Samples;
            var pairs = samples.Zip(samples.Skip(1)).ToArray();
            noOps.AddSeries(Label(adaptive), pairs.Select(p => p.Second.AtSeconds), pairs.Select(p =>
            {
                long n = 0, rec = 0;
                for (var i = 0; i < p.First.Shards.Length; i++)
                {
                    n += p.Second.Shards[i].NoOpSlots - p.First.Shards[i].NoOpSlots;
                    rec += p.Second.Shards[i].DurableRecords - p.First.Shards[i].DurableRecords;
                }

                return n + rec == 0 ? double.NaN : 100.0 * n / (n + rec);
            }));
            quota.AddSeries(Label(adaptive), samples.Select(s => s.AtSeconds), samples.Select(s => (double)s.Shards[0].CurrentQuota));
        }

        Console.WriteLine();
        Console.Write(report.ToMarkdown());
        var (md, json) = await report.WriteAsync(outDir, "ratechange");
        Console.WriteLine($"wrote {md} and {json}");
        return results.Values.Any(l => l.Any(r => r.Records.Count == 0)) ? 2 : 0;

        (double NoOps, double ReportsPerSecond, double LagFixesPerSecond) Phase(ShardLoadResult r, bool afterChange)
        {
            var from = afterChange ? change + 0.5 : 0;
            var to = afterChange ? seconds : change;
            var a = r.Samples.MinBy(s => Math.Abs(s.AtSeconds - from));
            var b = r.Samples.MinBy(s => Math.Abs(s.AtSeconds - to));
            long n = 0, rec = 0, reports = 0, fixes = 0;
            for (var i = 0; i < a.Shards.Length; i++)
            {
                n += b.Shards[i].NoOpSlots - a.Shards[i].NoOpSlots;
                rec += b.Shards[i].DurableRecords - a.Shards[i].DurableRecords;
                reports += b.Shards[i].ReportsSent - a.Shards[i].ReportsSent;
                fixes += b.Shards[i].LagFixes - a.Shards[i].LagFixes;
            }

            var dt = Math.Max(1e-3, b.AtSeconds - a.AtSeconds);
            return (n + rec == 0 ? double.NaN : n / (double)(n + rec), reports / dt, fixes / dt);
        }
    }

    private static string Label(bool adaptive) => adaptive ? "rate-based" : "fixed";

    private static string Ms(double us) => LatencySummary.Ms(us);

    private static string Pct(double fraction) => double.IsFinite(fraction) ? (fraction * 100).ToString("F1", CultureInfo.InvariantCulture) + " %" : "n/a";
}
