using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text;
using SpecLog.Client;

namespace SpecLog.Silo.Tests;

/// <summary>
/// A whole-log subscriber stops reading while producers append 32 MB to a real silo process. The silo's resident memory
/// must grow no more (within a quarter of what was appended) than over the same appends without a subscriber, and the
/// client's managed heap must grow by no more than its subscription buffer (2 MB here) and one push: the shard drops the
/// stalled subscriber and keeps nothing for it. When the consumer reads again it resumes from its position and reaches
/// the last record.
/// </summary>
[Collection(SiloProcessCollection.Name)]
public sealed class StalledSubscriberMemoryTests
{
    private const int Shards = 2;
    private const int Phases = 4;
    private const int RecordsPerPhase = 8_000;
    private const int RecordBytes = 1_024;
    private const int Producers = 8;
    private const long BufferBytes = 2L << 20;
    private const long PushBytes = 1L << 20;
    private static readonly TimeSpan StepTimeout = TimeSpan.FromSeconds(60);

    [Fact(Timeout = 300_000)]
    public async Task A_stalled_subscriber_costs_bounded_memory_on_the_silo_and_the_client_and_resumes()
    {
        var ct = TestContext.Current.CancellationToken;
        var root = Path.Combine(Path.GetTempPath(), "speclog-silo-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(root);
        var output = new ConcurrentQueue<string>();
        try
        {
            // A 1 MB recent-record cache (default 64 MB), so that what the silo keeps on purpose is small next to 32 MB.
            await using var silo = SiloProcess.Start("silo", Path.Combine(root, "data"), Shards, output, "--SpecLog:RecentCacheBytes=1048576");
            await using var client = await TestClient.ConnectAsync(silo, StepTimeout, ct);
            // The subscriber's own client: its buffer holds at most 2 MB of records (pushes of up to 1 MB each).
            var log = new SpecLogClient(client.Grains, Microsoft.Extensions.Options.Options.Create(new SpecLogClientOptions
            {
                SubscriptionBufferBytes = BufferBytes,
                SubscriptionRefresh = TimeSpan.FromMilliseconds(500),
            }));
            var first = await log.AppendAsync(Encoding.UTF8.GetBytes("first"), 0, ct);
            var payload = new byte[RecordBytes];
            var samples = new List<string>();
            var lastGsn = first;
            async Task<(long Silo, long Client)> AppendPhasesAsync(string label, int phases)
            {
                for (var phase = 1; phase <= phases; phase++)
                {
                    var next = 0;
                    var gsns = await Task.WhenAll(Enumerable.Range(0, Producers).Select(async p =>
                    {
                        var max = 0L;
                        while (Interlocked.Increment(ref next) <= RecordsPerPhase)
                        {
                            max = Math.Max(max, await log.AppendAsync(payload, p % Shards, ct));
                        }

                        return max;
                    }));
                    lastGsn = Math.Max(lastGsn, gsns.Max());
                }

                var sample = (ResidentBytes(silo.Id), GC.GetTotalMemory(forceFullCollection: true));
                samples.Add($"{label}: silo RSS {sample.Item1 >> 20} MB, client heap {sample.Item2 >> 20} MB");
                return sample;
            }

            // The silo's memory grows with the log by itself (indexes, the dedup window, the heap settling), so the
            // stalled subscriber's cost is measured against the same appends without it.
            var warm = await AppendPhasesAsync("warm-up", 1);
            var without = await AppendPhasesAsync("without a subscriber", Phases);
            await using var events = log.SubscribeAsync(first, ct).GetAsyncEnumerator(ct);
            Assert.True(await events.MoveNextAsync()); // subscribed; nobody reads from here on
            var stalledFrom = await AppendPhasesAsync("subscribed, first event read", 0);
            var end = await AppendPhasesAsync("stalled", Phases);

            var appended = (long)Phases * RecordsPerPhase * RecordBytes;
            var withoutGrowth = without.Silo - warm.Silo;
            var stalledGrowth = end.Silo - stalledFrom.Silo;
            TestContext.Current.TestOutputHelper?.WriteLine($"{string.Join("; ", samples)}; silo growth over {appended >> 20} MB: {withoutGrowth >> 20} MB without a subscriber, {stalledGrowth >> 20} MB with a stalled one");
            Assert.True(end.Client - stalledFrom.Client < BufferBytes + PushBytes + (2L << 20), $"the client's heap grew {(end.Client - stalledFrom.Client) >> 20} MB while {appended >> 20} MB were appended past a stalled subscriber ({string.Join("; ", samples)})");
            Assert.True(stalledGrowth < withoutGrowth + appended / 4, $"the silo's resident memory grew {stalledGrowth >> 20} MB with a stalled subscriber and {withoutGrowth >> 20} MB without, while {appended >> 20} MB were appended each time ({string.Join("; ", samples)})");

            // Reading again: the subscription resumes from the consumer's position and reaches the last record.
            var seen = 0L;
            var highest = first;
            while (highest < lastGsn && await events.MoveNextAsync())
            {
                if (events.Current is SpeculativeRecord r)
                {
                    Assert.True(r.Gsn > highest || seen == 0, $"GSN {r.Gsn} after {highest}");
                    highest = Math.Max(highest, r.Gsn);
                    seen++;
                }
            }

            Assert.Equal(lastGsn, highest);
        }
        catch
        {
            TestContext.Current.SendDiagnosticMessage(string.Join(Environment.NewLine, output.TakeLast(100)));
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
            }
        }
    }

    /// <summary>The process's resident set (VmRSS), read from /proc where it exists, else the working set.</summary>
    private static long ResidentBytes(int pid)
    {
        var status = $"/proc/{pid}/status";
        if (File.Exists(status))
        {
            var line = File.ReadLines(status).First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
            return long.Parse(line["VmRSS:".Length..].Trim().Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture) * 1024;
        }

        using var process = Process.GetProcessById(pid);
        return process.WorkingSet64;
    }
}
