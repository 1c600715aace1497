using System.Globalization;
using System.Runtime.InteropServices;
using SpecLog.Consumer;
using SpecLog.FixAnte;

namespace SpecLog.Samples;

/// <summary>
/// The command line every sample shares. Embedded (no <c>--gateway</c> or <c>--azure</c>) it runs the workload on
/// SpecLog and then on Scalog mode and prints both end-to-end latencies side by side; against a running log it
/// produces, consumes or both (<c>--role</c>).
/// </summary>
public static class SampleProgram
{
    /// <summary>The options every sample takes, for its usage text.</summary>
    public const string CommonUsage = """
          --rate <records/s>      append rate (default 500)
          --duration <s>          how long to append (default 10)
          --shards <n>            shards of the embedded log (default 4)
          --gateway <port>        use a running silo on this machine instead of an embedded one
          --azure <conn>          use a running cluster with Azure Table membership (with --cluster-id, default speclog)
          --role <r>              both (default), produce (append --count records and exit) or consume (until Ctrl+C)
          --count <n>             records to append (default rate × duration)
          --name <name>           the consumer's name: its checkpoint
          --outputs-file <path>   also write every output there, exactly once across restarts
          --group                 join the consumer group named by --name (per-shard samples): members split the shards
          --outputs-dir <dir>     write each shard's outputs to <dir>/shard-<k>.out, exactly once across restarts and
                                  across the members of a group sharing the directory
        """;

    /// <summary>Runs the sample: <paramref name="create"/> reads the sample's own options and makes the application.</summary>
    public static async Task<int> MainAsync<TState, TOutput>(string[] args, string usage, Func<SampleArgs, SampleApp<TState, TOutput>> create)
        where TOutput : ITimedOutput
    {
        SampleArgs options;
        try
        {
            options = new SampleArgs(args);
            if (options.Flag("--help"))
            {
                Console.WriteLine(usage);
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
            var app = create(options);
            var rate = options.Number("--rate", 500, 1, 1_000_000);
            var duration = TimeSpan.FromSeconds(options.Number("--duration", 10, 0.1, 86_400));
            var role = options.Text("--role", "both")!;
            var count = (long)options.Number("--count", Math.Round(rate * duration.TotalSeconds), 1, long.MaxValue);
            var name = options.Text("--name", app.Name)!;
            var file = options.Text("--outputs-file");
            var directory = options.Text("--outputs-dir");
            var group = options.Flag("--group");
            if (file is not null && directory is not null)
            {
                throw new ArgumentException("Give --outputs-file or --outputs-dir, not both.");
            }

            if (group && app.Ordering != ConsumerOrdering.PerShard)
            {
                throw new ArgumentException($"--group needs a per-shard application; {app.Name} consumes the whole log in GSN order.");
            }
            if (role is not ("both" or "produce" or "consume"))
            {
                throw new ArgumentException($"--role must be both, produce or consume, not '{role}'.");
            }

            if (!options.Flag("--gateway") && !options.Flag("--azure"))
            {
                var shards = (int)options.Number("--shards", 4, 1, 256);
                options.RejectUnknown();
                var results = new List<(string Mode, SampleResult R)>();
                foreach (var mode in new[] { OrderingMode.FixAnte, OrderingMode.Scalog })
                {
                    await using var log = await SampleLog.StartEmbeddedAsync(mode, shards, stop.Token);
                    Console.WriteLine($"{log.Description}: {rate:0} records/s for {duration.TotalSeconds:0.#} s");
                    var r = await new AppRun<TState, TOutput>(log, app, name, null).RunBothAsync(rate, count, stop.Token);
                    results.Add((mode == OrderingMode.FixAnte ? "SpecLog" : "Scalog mode", r));
                    Console.WriteLine($"  {r}");
                }

                Console.WriteLine();
                Console.WriteLine("| mode | outputs | alerts | E2E p50 (ms) | p90 | p99 | rollbacks |");
                Console.WriteLine("|---|---:|---:|---:|---:|---:|---:|");
                foreach (var (mode, r) in results)
                {
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| {mode} | {r.Outputs} | {r.Alerts} | {r.P50:0.000} | {r.P90:0.000} | {r.P99:0.000} | {r.Rollbacks} |"));
                }

                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"E2E p50, Scalog mode ÷ SpecLog: {results[1].R.P50 / results[0].R.P50:0.00}×"));
                return 0;
            }

            await using var connected = await SampleLog.OpenAsync(options, OrderingMode.FixAnte, stop.Token);
            options.RejectUnknown();
            Console.WriteLine($"Connected to {connected.Description}.");
            using var output = file is not null ? new OutputFile<TOutput>(file) : directory is not null ? new OutputDirectory<TOutput>(directory) : (IDisposable?)null;
            var run = new AppRun<TState, TOutput>(connected, app, name, output as IResumableOutputSink<TOutput>, group);
            switch (role)
            {
                case "produce":
                    Console.WriteLine($"appended {count} records; last GSN {await run.ProduceAsync(rate, count, stop.Token)}");
                    break;
                case "consume":
                    Console.WriteLine(await run.ConsumeAsync(stop.Token));
                    break;
                default:
                    Console.WriteLine(await run.RunBothAsync(rate, count, stop.Token));
                    break;
            }

            return 0;
        }
        catch (ArgumentException e)
        {
            Console.Error.WriteLine(e.Message);
            Console.Error.WriteLine(usage);
            return 2;
        }
    }
}
