using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using SpecLog.Bench.Reporting;
using SpecLog.Silo.Tests;

namespace SpecLog.Bench.Scenarios;

/// <summary>
/// What a restart costs after a long run: one silo process with the Copilot ordering layer (three replicas in the
/// process), loaded with appends for <c>--seconds</c>, killed with SIGKILL and started again on the same data. Side by
/// side with the ordering replicas' checkpoints on (the default) and off (<c>CheckpointMinBytes</c> = 1 TiB, the
/// behaviour before them): the ordering replicas' bytes on disk, the records they replayed at the restart, and the time
/// from the new process's start to "silo up" and to the first acknowledged append. Writes
/// <c>&lt;out&gt;/recovery.md</c> and <c>recovery.json</c> and merges the headline figures into <c>latest.json</c>.
/// </summary>
public sealed partial class RecoveryScenario : IScenario
{
    private static readonly TimeSpan StepTimeout = TimeSpan.FromSeconds(120);

    private static readonly string[] s_latestKeys =
        ["recovery_replayed_records_on", "recovery_replayed_records_off", "recovery_first_append_s_on", "recovery_first_append_s_off", "recovery_ordering_mb_on", "recovery_ordering_mb_off"];

    public string Name => "recovery";

    public string Description =>
        "kill -9 of a loaded one-silo Copilot log and its restart, ordering checkpoints on vs off: bytes on disk, records replayed, time to serve "
        + "[--seconds 60 --producers 32 --shards 2 --out bench/results]";

    public bool UsesLog => false;

    public async Task<int> RunAsync(BenchArgs args)
    {
        var seconds = args.GetDouble("seconds", 60);
        var producers = args.GetInt("producers", 32);
        var shards = args.GetInt("shards", 2);
        var outDir = args.Get("out") ?? Path.Combine("bench", "results");
        if (seconds <= 0 || producers < 1 || shards < 1)
        {
            throw new ArgumentException("--seconds, --producers and --shards must be positive.");
        }

        var report = new BenchReport("Recovery: a restart after a long run, ordering checkpoints on and off");
        Console.WriteLine($"recovery: {seconds} s of appends ({producers} producers, {shards} shards), kill -9, restart; checkpoints on, then off; machine: {report.Machine.Describe()}");
        using var cts = new CancellationTokenSource();
        var results = new List<Result>();
        foreach (var on in new[] { true, false })
        {
            results.Add(await RunOnceAsync(on, seconds, producers, shards, cts.Token));
            var r = results[^1];
            Console.WriteLine($"  checkpoints {(on ? "on" : "off")}: {r.Acknowledged:N0} appends, ordering logs {r.OrderingBytes / 1e6:0.0} MB, replayed {r.Replayed:N0} records, up after {r.UpSeconds:0.00} s, first append after {r.FirstAppendSeconds:0.00} s");
        }

        var section = report.AddSection("A restart after a long run");
        section.AddText(
            $"One silo process, {shards} shards, the Copilot ordering layer (n = 3, all in the process), fsync on; {producers} producers append 1 KB records closed loop for {seconds} s, "
            + "then the process is killed (SIGKILL) and started on the same data. *Replayed* sums the records the three ordering replicas read back "
            + "(their log lines); *up* and *first append* are from the new process's start. Checkpoints off is `SpecLog:Replication:CheckpointMinBytes` = 1 TiB, "
            + "what every restart did before checkpoints existed.");
        var table = section.AddTable("ordering checkpoints", "appends", "ordering logs on disk (MB)", "records replayed", "silo up (s)", "first append acknowledged (s)");
        foreach (var r in results)
        {
            table.AddRow(r.On ? "on (4 MiB)" : "off", r.Acknowledged.ToString("N0", CultureInfo.InvariantCulture), (r.OrderingBytes / 1e6).ToString("0.0", CultureInfo.InvariantCulture),
                r.Replayed.ToString("N0", CultureInfo.InvariantCulture), r.UpSeconds.ToString("0.00", CultureInfo.InvariantCulture), r.FirstAppendSeconds.ToString("0.00", CultureInfo.InvariantCulture));
            var key = r.On ? "on" : "off";
            report.SetFigure($"recovery_replayed_records_{key}", r.Replayed);
            report.SetFigure($"recovery_first_append_s_{key}", Math.Round(r.FirstAppendSeconds, 2));
            report.SetFigure($"recovery_ordering_mb_{key}", Math.Round(r.OrderingBytes / 1e6, 1));
        }

        report.Finish();
        var (md, json) = await report.WriteAsync(outDir, "recovery", cts.Token);
        await report.MergeFiguresAsync(Path.Combine(Path.GetFullPath(outDir), "latest.json"), s_latestKeys.Where(report.Figures.ContainsKey), cts.Token);
        Console.WriteLine($"wrote {md} and {json}");
        return 0;
    }

    private static async Task<Result> RunOnceAsync(bool on, double seconds, int producers, int shards, CancellationToken ct)
    {
        var root = Directory.CreateTempSubdirectory("speclog-recovery-").FullName;
        var data = Path.Combine(root, "data");
        var output = new ConcurrentQueue<string>();
        string[] settings = ["--SpecLog:Replication:Mode=Copilot", $"--SpecLog:Replication:CheckpointMinBytes={(on ? 4L << 20 : 1L << 40)}"];
        var ports = SiloProcess.FreePorts();
        try
        {
            long acknowledged;
            await using (var silo = SiloProcess.Start("first", data, shards, output, ports, settings))
            {
                await WaitUntilAsync(() => silo.IsUp, "the silo to be up", ct);
                await using var client = await TestClient.ConnectAsync(silo, StepTimeout, ct);
                acknowledged = await LoadAsync(client, producers, shards, seconds, ct);
                silo.KillHard();
            }

            var orderingBytes = Directory.GetDirectories(data, "sequencer-replica-*")
                .SelectMany(d => Directory.GetFiles(d, "*", SearchOption.AllDirectories))
                .Sum(f => new FileInfo(f).Length);
            var started = Stopwatch.GetTimestamp();
            await using var again = SiloProcess.Start("second", data, shards, output, ports, settings);
            await WaitUntilAsync(() => again.IsUp, "the restarted silo to be up", ct);
            var up = Stopwatch.GetElapsedTime(started).TotalSeconds;
            await using var client2 = await TestClient.ConnectAsync(again, StepTimeout, ct);
            await client2.Log.AppendAsync(Encoding.UTF8.GetBytes("after the restart"), 0, ct);
            var first = Stopwatch.GetElapsedTime(started).TotalSeconds;
            var replayed = output.Where(l => l.StartsWith("[second out]", StringComparison.Ordinal))
                .Select(l => RecoveredLine().Match(l))
                .Where(m => m.Success)
                .Sum(m => long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture));
            return new Result(on, acknowledged, orderingBytes, replayed, up, first);
        }
        catch
        {
            var dump = Path.Combine(Path.GetTempPath(), $"speclog-recovery-{DateTime.UtcNow:yyyyMMdd-HHmmss}.log");
            await File.WriteAllLinesAsync(dump, output, CancellationToken.None);
            Console.WriteLine($"the silo's output: {dump}");
            throw;
        }
        finally
        {
            try
            {
                Directory.Delete(root, recursive: true);
            }
            catch (IOException)
            {
                // Left for the OS to clean.
            }
        }
    }

    /// <summary>Closed-loop producers, each appending 1 KB records to its shard until the time is up; returns the acknowledged count.</summary>
    private static async Task<long> LoadAsync(TestClient client, int producers, int shards, double seconds, CancellationToken ct)
    {
        var acknowledged = 0L;
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        stop.CancelAfter(TimeSpan.FromSeconds(seconds));
        var payload = new byte[1000];
        var tasks = Enumerable.Range(0, producers).Select(p => Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    await client.Log.AppendAsync(payload, p % shards, stop.Token);
                    Interlocked.Increment(ref acknowledged);
                }
                catch (OperationCanceledException) when (stop.IsCancellationRequested)
                {
                    return;
                }
            }
        }, ct)).ToArray();
        await Task.WhenAll(tasks);
        return Interlocked.Read(ref acknowledged);
    }

    private static async Task WaitUntilAsync(Func<bool> condition, string what, CancellationToken ct)
    {
        // Polled: the silo prints "up" on its output, with no event to await across the process boundary.
        var deadline = Stopwatch.GetTimestamp() + (long)(StepTimeout.TotalSeconds * Stopwatch.Frequency);
        while (!condition())
        {
            if (Stopwatch.GetTimestamp() > deadline)
            {
                throw new TimeoutException($"Timed out waiting for {what}.");
            }

            await Task.Delay(10, ct);
        }
    }

    [GeneratedRegex(@"Sequencer replica \d+ activated: epoch \d+, (\d+) records recovered")]
    private static partial Regex RecoveredLine();

    private sealed record Result(bool On, long Acknowledged, long OrderingBytes, long Replayed, double UpSeconds, double FirstAppendSeconds);
}
