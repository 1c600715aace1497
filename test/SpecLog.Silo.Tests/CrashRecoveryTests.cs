using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text;
using SpecLog.Client;

namespace SpecLog.Silo.Tests;

/// <summary>
/// The silo process is killed with SIGKILL while appends are in flight and restarted on the same data directory:
/// nothing acknowledged may be lost or moved, the confirmed prefix must replay identically, and new appends go after
/// everything acknowledged before the crash.
/// </summary>
[Collection(SiloProcessCollection.Name)]
public sealed class CrashRecoveryTests
{
    private const int Shards = 4;
    private const int Producers = 4;
    private const int SinglesPerProducer = 450;
    private const int BatchPerProducer = 50;
    private const int FirstPhaseRecords = Producers * (SinglesPerProducer + BatchPerProducer);
    private const int AckedUnderLoadBeforeKill = 300;
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(40);
    private static readonly TimeSpan StepTimeout = TimeSpan.FromSeconds(30);

    [Theory(Timeout = 180_000)]
    [InlineData(false)]
    [InlineData(true)] // every log durable through the silo's shared journal: the restart copies it back into the logs
    public async Task KillDash9_ThenRestart_KeepsAcknowledgedRecords_ReplaysConfirmedPrefix_AndOrdersNewAppendsAfter(bool sharedGroupCommit)
    {
        var setting = $"--SpecLog:SharedGroupCommit={(sharedGroupCommit ? "true" : "false")}";
        var ct = TestContext.Current.CancellationToken;
        var root = Path.Combine(Path.GetTempPath(), "speclog-silo-tests", Guid.NewGuid().ToString("N"));
        var dataDirectory = Path.Combine(root, "data");
        Directory.CreateDirectory(root);
        var output = new ConcurrentQueue<string>();
        var log = new List<string>();
        var clock = Stopwatch.StartNew();
        void Note(string message) => log.Add($"{clock.Elapsed.TotalSeconds,6:0.00}s  {message}");

        try
        {
            // ---- First life: 2,000 acknowledged appends, a subscriber from 0, then more load and kill -9 mid-flight.
            var acknowledged = new ConcurrentDictionary<long, byte[]>();
            var before = new SubscriptionRecorder();
            await using (var silo = SiloProcess.Start("life-1", dataDirectory, Shards, output, setting))
            {
                var client = await TestClient.ConnectAsync(silo, StartTimeout, ct);
                Note($"life 1: client connected to pid {silo.Id}");
                try
                {
                    using var subscription = CancellationTokenSource.CreateLinkedTokenSource(ct);
                    var subscriber = before.RunAsync(client.Log, 0, null, subscription.Token);

                    await Task.WhenAll(Enumerable.Range(0, Producers).Select(p => ProduceFirstPhaseAsync(client.Log, p, acknowledged, ct)));
                    Assert.Equal(FirstPhaseRecords, acknowledged.Count);
                    var maxFirstPhase = acknowledged.Keys.Max();
                    Note($"life 1: {acknowledged.Count} appends acknowledged, GSNs up to {maxFirstPhase}");
                    await Waits.UntilAsync(() => before.ConfirmedEnd > maxFirstPhase, "the subscriber to see the first phase confirmed", StepTimeout, ct);
                    Note($"life 1: subscriber confirmed up to {before.ConfirmedEnd}");

                    // More producers keep appending; kill the silo while their appends are in flight.
                    using var load = CancellationTokenSource.CreateLinkedTokenSource(ct);
                    var loaders = Enumerable.Range(0, 2 * Producers).Select(p => ProduceUntilStoppedAsync(client.Log, p, acknowledged, load.Token)).ToArray();
                    await Waits.UntilAsync(() => acknowledged.Count >= FirstPhaseRecords + AckedUnderLoadBeforeKill, "appends under load", StepTimeout, ct);
                    silo.KillHard();
                    Note($"life 1: killed with SIGKILL; {acknowledged.Count} appends acknowledged before the kill");
                    await load.CancelAsync();
                    await subscription.CancelAsync();
                    await Task.WhenAll(loaders).WaitAsync(StepTimeout, ct);
                    await subscriber.WaitAsync(StepTimeout, ct);
                }
                finally
                {
                    await client.DisposeAsync();
                }
            }

            var (beforeRecords, confirmedEnd, beforeMisSpeculated) = before.Snapshot();
            Assert.Empty(beforeMisSpeculated);
            var maxAcknowledged = acknowledged.Keys.Max();
            var maxDelivered = beforeRecords.Count == 0 ? -1 : beforeRecords[^1].Gsn;
            var confirmedPrefix = beforeRecords.Where(r => r.Gsn < confirmedEnd).Select(Describe).ToList();
            Note($"before the crash: {beforeRecords.Count} records delivered (up to GSN {maxDelivered}), confirmed prefix [0, {confirmedEnd}) with {confirmedPrefix.Count} records");

            // What the subscriber saw must agree with the acknowledgements (the sample's check, here as a precondition).
            var deliveredAt = beforeRecords.ToDictionary(r => r.Gsn, r => r.Payload);
            foreach (var (gsn, payload) in acknowledged.Where(a => a.Key < confirmedEnd))
            {
                Assert.True(deliveredAt.TryGetValue(gsn, out var seen), $"acknowledged GSN {gsn} is in the confirmed prefix but was never delivered");
                Assert.Equal(Text(payload), Text(seen));
            }

            // ---- Second life on the same data directory.
            await using (var silo = SiloProcess.Start("life-2", dataDirectory, Shards, output, setting))
            {
                await using var client = await TestClient.ConnectAsync(silo, StartTimeout, ct);
                Note($"life 2: client connected to pid {silo.Id}");
                var sequencer = client.Grains.GetGrain<ISequencerGrain>(0);
                var mustBeCommitted = Math.Max(maxAcknowledged, maxDelivered) + 1;
                await Waits.UntilAsync(async () => (await sequencer.GetStatusAsync()).CommittedGsn >= mustBeCommitted, $"GSNs below {mustBeCommitted} to be committed again", StepTimeout, ct);
                Note($"life 2: committed GSN {(await sequencer.GetStatusAsync()).CommittedGsn}");

                // 1. Every acknowledged record is readable at its acknowledged GSN with the same payload.
                var readBack = (await client.Log.ReadRangeAsync(0, mustBeCommitted, ct)).ToDictionary(r => r.Gsn);
                foreach (var (gsn, payload) in acknowledged.OrderBy(a => a.Key))
                {
                    Assert.True(readBack.TryGetValue(gsn, out var record), $"acknowledged GSN {gsn} ({Text(payload)}) is missing after the restart");
                    Assert.Equal(Text(payload), Text(record.Payload.ToArray()));
                }

                var sample = acknowledged.Keys.Order().Where((_, i) => i % 97 == 0).Append(maxAcknowledged).ToList();
                foreach (var gsn in sample)
                {
                    var record = await client.Log.ReadAsync(gsn, ct);
                    Assert.NotNull(record);
                    Assert.Equal(Text(acknowledged[gsn]), Text(record.Payload.ToArray()));
                }

                Note($"life 2: all {acknowledged.Count} acknowledged records read back at their GSNs ({sample.Count} also one by one)");

                // Records delivered speculatively before the crash keep their positions too (no mis-speculation was announced).
                foreach (var (gsn, payload) in beforeRecords)
                {
                    Assert.True(readBack.TryGetValue(gsn, out var record), $"GSN {gsn} was delivered before the crash but holds no record after it");
                    Assert.Equal(Text(payload), Text(record.Payload.ToArray()));
                }

                // 2. A subscriber from 0 sees the same sequence as before for the previously confirmed prefix.
                var after = new SubscriptionRecorder();
                using (var window = CancellationTokenSource.CreateLinkedTokenSource(ct))
                {
                    window.CancelAfter(StepTimeout);
                    await after.RunAsync(client.Log, 0, r => r.ConfirmedEnd >= confirmedEnd || r.LastGsn >= confirmedEnd, window.Token);
                    Assert.False(window.IsCancellationRequested, $"the new subscriber did not get past GSN {confirmedEnd} in {StepTimeout.TotalSeconds} s (at {after.LastGsn}, confirmed {after.ConfirmedEnd})");
                }

                var (afterRecords, _, afterMisSpeculated) = after.Snapshot();
                Assert.Empty(afterMisSpeculated);
                Assert.Equal(confirmedPrefix, afterRecords.Where(r => r.Gsn < confirmedEnd).Select(Describe).ToList());
                Note($"life 2: subscriber from 0 replayed the confirmed prefix identically ({confirmedPrefix.Count} records)");

                // 3. New appends get GSNs above every GSN acknowledged (or delivered) before the crash.
                var fresh = await Task.WhenAll(Enumerable.Range(0, 40).Select(i => client.Log.AppendAsync(Payload("life-2", i % Shards, i), i % Shards, ct)));
                Assert.All(fresh, g => Assert.True(g > maxAcknowledged && g > maxDelivered, $"new append got GSN {g}, not above {Math.Max(maxAcknowledged, maxDelivered)}"));
                Assert.Equal(fresh.Length, fresh.Distinct().Count());
                Note($"life 2: 40 new appends at GSNs [{fresh.Min()}, {fresh.Max()}], all above {Math.Max(maxAcknowledged, maxDelivered)}");
            }

            TestContext.Current.TestOutputHelper?.WriteLine(string.Join(Environment.NewLine, log));
        }
        catch
        {
            var helper = TestContext.Current.TestOutputHelper;
            helper?.WriteLine(string.Join(Environment.NewLine, log));
            helper?.WriteLine("---- silo output ----");
            helper?.WriteLine(string.Join(Environment.NewLine, output));
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

    private static async Task ProduceFirstPhaseAsync(SpecLogClient log, int producer, ConcurrentDictionary<long, byte[]> acknowledged, CancellationToken ct)
    {
        await Parallel.ForEachAsync(Enumerable.Range(0, SinglesPerProducer), new ParallelOptions { MaxDegreeOfParallelism = 8, CancellationToken = ct }, async (i, token) =>
        {
            var payload = Payload("single", producer, i);
            var gsn = await log.AppendAsync(payload, cancellationToken: token);
            Assert.True(acknowledged.TryAdd(gsn, payload), $"GSN {gsn} acknowledged twice");
        });

        var batch = Enumerable.Range(0, BatchPerProducer).Select(i => Payload("batch", producer, i)).ToList();
        var gsns = await log.AppendBatchAsync([.. batch.Select(b => (ReadOnlyMemory<byte>)b)], producer % Shards, ct);
        Assert.Equal(batch.Count, gsns.Length);
        Assert.Equal(gsns.Order(), gsns);
        for (var i = 0; i < gsns.Length; i++)
        {
            Assert.True(acknowledged.TryAdd(gsns[i], batch[i]), $"GSN {gsns[i]} acknowledged twice");
        }
    }

    /// <summary>Appends one record after another until stopped or the silo dies; records every acknowledgement it gets.</summary>
    private static async Task ProduceUntilStoppedAsync(SpecLogClient log, int producer, ConcurrentDictionary<long, byte[]> acknowledged, CancellationToken ct)
    {
        for (var i = 0; !ct.IsCancellationRequested; i++)
        {
            var payload = Payload("load", producer, i);
            long gsn;
            try
            {
                gsn = await log.AppendAsync(payload, cancellationToken: ct);
            }
            catch (Exception)
            {
                return; // cancelled, or the silo is gone: the outcome of this append is unknown, so it is not recorded
            }

            if (!acknowledged.TryAdd(gsn, payload))
            {
                throw new InvalidOperationException($"GSN {gsn} acknowledged twice");
            }
        }
    }

    private static byte[] Payload(string phase, int producer, int index) => Encoding.UTF8.GetBytes($"{phase}/p{producer}/{index:D5}/{Guid.NewGuid():N}");

    private static string Text(byte[] payload) => Encoding.UTF8.GetString(payload);

    private static string Describe((long Gsn, byte[] Payload) record) => $"{record.Gsn}:{Text(record.Payload)}";
}
