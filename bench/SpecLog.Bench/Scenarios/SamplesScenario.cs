using System.Globalization;
using SpecLog.Bench.Reporting;
using SpecLog.FixAnte;
using SpecLog.Samples;
using SpecLog.Samples.FraudDetection;
using SpecLog.Samples.IntrusionDetection;

namespace SpecLog.Bench.Scenarios;

/// <summary>
/// The sample applications end to end (issue 11): fraud detection (GSN-ordered consumer, one state) and intrusion
/// detection (per-shard consumer, sensors pinned to shards), each on an embedded silo in SpecLog and in Scalog mode,
/// alternating within every round; E2E = from a record's append to its output's release by the speculative consumer.
/// </summary>
public sealed class SamplesScenario : IScenario
{
    private static readonly string[] s_latestKeys =
        ["e2e_fraud_ratio", "e2e_intrusion_ratio", "e2e_fraud_p50_ms_speclog", "e2e_fraud_p50_ms_scalog", "e2e_intrusion_p50_ms_speclog", "e2e_intrusion_p50_ms_scalog"];

    public string Name => "samples";

    public string Description => "the fraud- and intrusion-detection samples, SpecLog vs Scalog mode end to end [--rate 500 --seconds 6 --rounds 2 --scoring-ms 1 --shards 4 --out bench/results]";

    public async Task<int> RunAsync(BenchArgs args)
    {
        var rate = args.GetDouble("rate", 500);
        var seconds = args.GetDouble("seconds", 6);
        var rounds = args.GetInt("rounds", 2);
        var shards = args.GetInt("shards", 4);
        var scoring = args.GetDouble("scoring-ms", 1);
        var outDir = args.Get("out") ?? Path.Combine("bench", "results");
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(20));
        var report = new BenchReport("Sample applications: SpecLog vs Scalog mode end to end");
        Console.WriteLine($"samples: {rate:0} records/s for {seconds} s, {rounds} round(s), {scoring} ms of work per record; machine: {report.Machine.Describe()}");
        FraudModel.ScoringTime = TimeSpan.FromMilliseconds(scoring);
        var fraud = FraudModel.App();
        var intrusion = SensorModel.App(shards);

        var section = report.AddSection("End to end, append → output released");
        section.AddText(
            $"One fresh embedded silo per run ({shards} shards, fsync on, the `AddSpecLog` defaults), {rate:0} records/s open loop for {seconds} s, the first second untimed; "
            + $"the apply function spends {scoring} ms of CPU per record (fraud) or none beyond its moving averages (intrusion). Fraud detection consumes the whole log in GSN order "
            + "(one state); intrusion detection per shard (each sensor's readings on one shard). SpecLog and Scalog mode alternate within each round; figures are medians over rounds.");
        var table = section.AddTable("application", "mode", "outputs", "alerts", "E2E p50 (ms)", "p90", "p99", "rollbacks");
        var p50 = new Dictionary<string, List<double>>();
        for (var round = 0; round < rounds; round++)
        {
            var modes = round % 2 == 0 ? new[] { OrderingMode.FixAnte, OrderingMode.Scalog } : [OrderingMode.Scalog, OrderingMode.FixAnte];
            foreach (var mode in modes)
            {
                var name = mode == OrderingMode.FixAnte ? "speclog" : "scalog";
                var f = await RunAsync(fraud, mode, shards, rate, seconds, cts.Token);
                Add(table, p50, "fraud", name, f);
                var n = await RunAsync(intrusion, mode, shards, rate, seconds, cts.Token);
                Add(table, p50, "intrusion", name, n);
            }
        }

        double Median(string key) => p50.TryGetValue(key, out var v) ? v.Order().ElementAt(v.Count / 2) : double.NaN;
        foreach (var app in new[] { "fraud", "intrusion" })
        {
            var spec = Median($"{app}/speclog");
            var scalog = Median($"{app}/scalog");
            report.SetFigure($"e2e_{app}_p50_ms_speclog", Math.Round(spec, 3));
            report.SetFigure($"e2e_{app}_p50_ms_scalog", Math.Round(scalog, 3));
            report.SetFigure($"e2e_{app}_ratio", Math.Round(scalog / spec, 3));
        }

        report.Finish();
        var (md, json) = await report.WriteAsync(outDir, "samples", cts.Token);
        await report.MergeFiguresAsync(Path.Combine(Path.GetFullPath(outDir), "latest.json"), s_latestKeys.Where(report.Figures.ContainsKey), cts.Token);
        Console.WriteLine($"wrote {md} and {json}");
        return 0;
    }

    private static async Task<SampleResult> RunAsync<TState, TOutput>(SampleApp<TState, TOutput> app, OrderingMode mode, int shards, double rate, double seconds, CancellationToken ct)
        where TOutput : ITimedOutput
    {
        await using var log = await SampleLog.StartEmbeddedAsync(mode, shards, ct);
        var r = await new AppRun<TState, TOutput>(log, app, app.Name, null).RunBothAsync(rate, (long)(rate * seconds), ct);
        Console.WriteLine($"  {app.Name}, {mode}: {r}");
        return r;
    }

    private static void Add(ReportTable table, Dictionary<string, List<double>> p50, string app, string mode, SampleResult r)
    {
        table.AddRow(app, mode == "speclog" ? "SpecLog" : "Scalog mode", r.Outputs.ToString(CultureInfo.InvariantCulture), r.Alerts.ToString(CultureInfo.InvariantCulture),
            r.P50.ToString("0.000", CultureInfo.InvariantCulture), r.P90.ToString("0.000", CultureInfo.InvariantCulture), r.P99.ToString("0.000", CultureInfo.InvariantCulture),
            r.Rollbacks.ToString(CultureInfo.InvariantCulture));
        (p50.TryGetValue($"{app}/{mode}", out var list) ? list : p50[$"{app}/{mode}"] = []).Add(r.P50);
    }
}
