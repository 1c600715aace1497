using System.Globalization;
using System.Runtime.InteropServices;
using SpecLog.Consumer;
using SpecLog.FixAnte;
using SpecLog.Samples;
using SpecLog.Samples.FraudDetection;

const string Usage = """
    Fraud detection on SpecLog: producers append payments; a speculative consumer keeps per-user statistics, scores
    every payment the moment it is delivered and releases its verdict once the payment's position is confirmed
    (alerts for outliers). Run embedded (default), it runs the same workload on SpecLog and on Scalog mode and prints
    their end-to-end latency side by side (the first second of each run is not timed: it warms the process up).

    Usage: dotnet run -c Release --project samples/SpecLog.Samples.FraudDetection -- [options]

      --rate <payments/s>     append rate (default 500)
      --duration <s>          how long to append (default 10)
      --scoring-ms <ms>       CPU time the model spends per payment (default 1)
      --shards <n>            shards of the embedded log (default 4)
      --gateway <port>        use a running silo on this machine instead of an embedded one
      --azure <conn>          use a running cluster with Azure Table membership (with --cluster-id, default speclog)
      --role <r>              both (default), produce (append --count payments and exit) or consume (until Ctrl+C)
      --count <n>             payments to append (default rate × duration)
      --name <name>           the consumer's name: its checkpoint (default fraud)
      --verdicts-file <path>  also write every verdict there, exactly once across restarts
    """;

SampleArgs options;
try
{
    options = new SampleArgs(args);
    if (options.Flag("--help"))
    {
        Console.WriteLine(Usage);
        return 0;
    }
}
catch (ArgumentException e)
{
    Console.Error.WriteLine(e.Message);
    return 2;
}

using var stop = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) =>
{
    e.Cancel = true;
    stop.Cancel();
};
using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c =>
{
    c.Cancel = true;
    stop.Cancel();
});

try
{
    var rate = options.Number("--rate", 500, 1, 1_000_000);
    var duration = TimeSpan.FromSeconds(options.Number("--duration", 10, 0.1, 86_400));
    FraudModel.ScoringTime = TimeSpan.FromMilliseconds(options.Number("--scoring-ms", 1, 0, 1000));
    var role = options.Text("--role", "both")!;
    var count = (long)options.Number("--count", Math.Round(rate * duration.TotalSeconds), 1, long.MaxValue);
    var name = options.Text("--name", "fraud")!;
    var file = options.Text("--verdicts-file");
    var embedded = !options.Flag("--gateway") && !options.Flag("--azure");
    if (role is not ("both" or "produce" or "consume"))
    {
        throw new ArgumentException($"--role must be both, produce or consume, not '{role}'.");
    }

    if (embedded)
    {
        var shards = (int)options.Number("--shards", 4, 1, 256);
        options.RejectUnknown();
        var results = new List<(string Mode, FraudRun.Result R)>();
        foreach (var mode in new[] { OrderingMode.FixAnte, OrderingMode.Scalog })
        {
            await using var log = await SampleLog.StartEmbeddedAsync(mode, shards, stop.Token);
            Console.WriteLine($"{log.Description}: {rate:0} payments/s for {duration.TotalSeconds:0.#} s, scoring {FraudModel.ScoringTime.TotalMilliseconds:0.###} ms each");
            var r = await new FraudRun(log, name, null).RunBothAsync(rate, count, stop.Token);
            results.Add((mode == OrderingMode.FixAnte ? "SpecLog" : "Scalog mode", r));
            Console.WriteLine($"  {r}");
        }

        Console.WriteLine();
        Console.WriteLine("| mode | verdicts | alerts | E2E p50 (ms) | p90 | p99 | rollbacks |");
        Console.WriteLine("|---|---:|---:|---:|---:|---:|---:|");
        foreach (var (mode, r) in results)
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| {mode} | {r.Verdicts} | {r.Alerts} | {r.P50:0.000} | {r.P90:0.000} | {r.P99:0.000} | {r.Rollbacks} |"));
        }

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"E2E p50, Scalog mode ÷ SpecLog: {results[1].R.P50 / results[0].R.P50:0.00}×"));
        return 0;
    }

    await using (var log = await SampleLog.OpenAsync(options, OrderingMode.FixAnte, stop.Token))
    {
        options.RejectUnknown();
        Console.WriteLine($"Connected to {log.Description}.");
        using var output = file is null ? null : new OutputFile<Verdict>(file);
        var run = new FraudRun(log, name, output);
        switch (role)
        {
            case "produce":
                var last = await run.ProduceAsync(rate, count, stop.Token);
                Console.WriteLine($"appended {count} payments; last GSN {last}");
                break;
            case "consume":
                Console.WriteLine(await run.ConsumeAsync(stop.Token));
                break;
            default:
                Console.WriteLine(await run.RunBothAsync(rate, count, stop.Token));
                break;
        }
    }

    return 0;
}
catch (ArgumentException e)
{
    Console.Error.WriteLine(e.Message);
    Console.Error.WriteLine(Usage);
    return 2;
}
