using System.Globalization;
using SpecLog.Bench.Reporting;
using SpecLog.Bench.Workloads;
using SpecLog.FixAnte;

namespace SpecLog.Bench.Scenarios;

/// <summary>
/// Scenario 5, window size. A window fixes W cuts' quotas in advance and the next one is decided once the committed
/// cut passes the middle of the newest (the speculation lease), so a shard can run at most about W/2 cuts ahead of
/// commitment before it holds durable records it cannot position: speculative delivery then waits for the next window.
/// Small W means waiting; large W means quotas react to rate changes only every W cuts. Each W runs the same steady
/// load on a fresh cluster; reported: E2E (scenario 1's definition), delivery and confirmation latency, and the time
/// shards spent waiting for the next window.
/// </summary>
public sealed class WindowScenario : IScenario
{
    private static readonly int[] s_defaultWindows = [5, 10, 20, 50, 100, 300];

    public string Name => "window";

    public string Description =>
        "window size W from 5 to 300: E2E, delivery, and time shards wait for the next window "
        + "[--windows 5,10,20,50,100,300 --shards 4 --rate 250 --compute-ms 0.5 --seconds 4 --warmup 1 --rounds 1 --record-size 100 --out bench/results]";

    public async Task<int> RunAsync(BenchArgs args)
    {
        var windows = args.Get("windows") is { } list
            ? list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(v => int.Parse(v, CultureInfo.InvariantCulture)).ToArray()
            : s_defaultWindows;
        var shards = args.GetInt("shards", 4);
        var rate = args.GetDouble("rate", 250);
        var computeMs = args.GetDouble("compute-ms", 0.5);
        var seconds = args.GetDouble("seconds", 4);
        var warmup = args.GetDouble("warmup", 1);
        var rounds = args.GetInt("rounds", 1);
        var recordSize = args.GetInt("record-size", 100);
        var outDir = args.Get("out") ?? Path.Combine("bench", "results");
        if (windows.Length == 0 || windows.Any(w => w < 2) || shards < 1 || rate <= 0 || computeMs < 0 || seconds <= 0 || warmup < 0 || rounds < 1 || recordSize < ShardLoad.HeaderBytes)
        {
            throw new ArgumentException($"--windows values at least 2, --shards, --rate, --seconds and --rounds positive, --compute-ms and --warmup not negative, --record-size at least {ShardLoad.HeaderBytes}.");
        }

        if (shards * rate * computeMs / 1000 > 0.9)
        {
            throw new ArgumentException("--shards × --rate × --compute-ms would keep the consumer over 90 % busy; E2E would measure its queue.");
        }

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"window: W = {string.Join(", ", windows)}; {shards} shards at {rate} appends/s each, compute {computeMs} ms, {rounds} round(s) of {warmup} + {seconds} s"));
        var results = await ShardLoad.RunRoundsAsync("window", windows, rounds, w => $"W = {w}",
            w => new ShardLoadSpec
            {
                Shards = shards,
                Rate = (_, _) => rate,
                ComputeMs = computeMs,
                RecordSize = recordSize,
                Warmup = warmup,
                Seconds = seconds,
                SampleSeconds = 0.25,
                Ordering = o => o.CutsPerWindow = w,
            },
            (_, r) => string.Create(CultureInfo.InvariantCulture,
                $"E2E p50 {Ms(ShardLoad.Quantile(r.Records.Select(x => x.E2eUs), 0.5))} ms, delivery p50 {Ms(ShardLoad.Quantile(r.Records.Select(x => x.DeliveryUs), 0.5))} ms, window wait {r.WindowWaitMsPerSecond:F1} ms/s, {r.Failed} failed"));
        var defaults = new FixAnteOptions();
        var report = new BenchReport("Window size: E2E and waiting for the next window (scenario 5)");
        report.AddSection("Setup").AddText(string.Create(CultureInfo.InvariantCulture,
            $"A fresh single-silo in-process cluster per W ({shards} shards, fsync on, unreplicated sequencer, T_ord {defaults.OrderingInterval.TotalMilliseconds} ms, lag-fix and rate-based quotas on; the lag-fix threshold scales with W: ceil({defaults.LagFixFraction} × W)). "
            + $"One open-loop appender per shard at {rate} appends/s ({recordSize} B records); one whole-log subscriber feeds a consumer that spins {computeMs} ms per record. "
            + $"E2E = max(confirmation seen, compute done) − scheduled append start; *delivery* is to the speculative delivery, *confirmed* to the covering `ConfirmedRange`. "
            + $"*Window wait* is the time a shard held durable records beyond the windows it knew (so could not position or deliver them), per second of run, averaged over shards (`ShardStatus.WindowWaitMicros`). "
            + $"{rounds} round(s) of {warmup} s warm-up + {seconds} s measured; order reversed every round; records of all rounds pooled."));

        var main = report.AddSection("Results by window size");
        var table = main.AddTable("W (cuts)", "E2E p50 (ms)", "p99", "delivery p50 (ms)", "p99", "confirmed p50 (ms)", "p99", "window wait (ms per s)", "no-ops", "measured/issued", "failed");
        foreach (var w in windows)
        {
            var runs = results[w];
            var records = runs.SelectMany(r => r.Records).ToArray();
            table.AddRow(w.ToString(CultureInfo.InvariantCulture),
                Ms(ShardLoad.Quantile(records.Select(r => r.E2eUs), 0.5)), Ms(ShardLoad.Quantile(records.Select(r => r.E2eUs), 0.99)),
                Ms(ShardLoad.Quantile(records.Select(r => r.DeliveryUs), 0.5)), Ms(ShardLoad.Quantile(records.Select(r => r.DeliveryUs), 0.99)),
                Ms(ShardLoad.Quantile(records.Select(r => r.ConfirmUs), 0.5)), Ms(ShardLoad.Quantile(records.Select(r => r.ConfirmUs), 0.99)),
                runs.Average(r => r.WindowWaitMsPerSecond).ToString("F1", CultureInfo.InvariantCulture),
                (runs.Average(r => r.NoOpFraction) * 100).ToString("F1", CultureInfo.InvariantCulture) + " %",
                $"{records.Length}/{runs.Sum(r => r.Issued)}", runs.Sum(r => r.Failed).ToString(CultureInfo.InvariantCulture));
            report.SetFigure($"window_w{w}_e2e_p50_us", Math.Round(ShardLoad.Quantile(records.Select(r => r.E2eUs), 0.5), 1));
            report.SetFigure($"window_w{w}_wait_ms_per_s", Math.Round(runs.Average(r => r.WindowWaitMsPerSecond), 2));
        }

        var latency = main.AddChart("latency", "Latency against window size", "W (cuts per window)", "ms");
        latency.LogX = true;
        double Pick(int w, Func<RecordTiming, double> f, double q) => ShardLoad.Quantile(results[w].SelectMany(r => r.Records).Select(f), q) / 1000;
        latency.AddSeries("E2E p50", windows.Select(w => (double)w), windows.Select(w => Pick(w, r => r.E2eUs, 0.5)));
        latency.AddSeries("E2E p99", windows.Select(w => (double)w), windows.Select(w => Pick(w, r => r.E2eUs, 0.99)));
        latency.AddSeries("delivery p50", windows.Select(w => (double)w), windows.Select(w => Pick(w, r => r.DeliveryUs, 0.5)));
        latency.AddSeries("confirmed p50", windows.Select(w => (double)w), windows.Select(w => Pick(w, r => r.ConfirmUs, 0.5)));
        var wait = main.AddChart("wait", "Time shards wait for the next window", "W (cuts per window)", "ms per second");
        wait.LogX = true;
        wait.AddSeries("window wait", windows.Select(w => (double)w), windows.Select(w => results[w].Average(r => r.WindowWaitMsPerSecond)));

        Console.WriteLine();
        Console.Write(report.ToMarkdown());
        var (md, json) = await report.WriteAsync(outDir, "window");
        Console.WriteLine($"wrote {md} and {json}");
        return results.Values.Any(l => l.Any(r => r.Records.Count == 0)) ? 2 : 0;
    }

    private static string Ms(double us) => LatencySummary.Ms(us);
}
