using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.CompilerServices;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Hosting;
using SpecLog.Client;
using SpecLog.Server;

namespace SpecLog.Cluster.Tests;

/// <summary>
/// Cuts one grain off from everything, as when every replica of a shard is unreachable: calls to it fail, and its own
/// calls (reports, pushes) fail too. Its own switch (other fixtures install other filters).
/// </summary>
internal sealed class CutOffFilter : IIncomingGrainCallFilter, IOutgoingGrainCallFilter
{
    private static volatile StrongBox<GrainId>? _cutOff;
    private static volatile bool _reportsOnly;

    /// <summary>The grain cut off, or null.</summary>
    public static GrainId? CutOff => _cutOff?.Value;

    /// <summary>Cuts <paramref name="grain"/> off; with <paramref name="reportsOnly"/> only its calls to the ordering layer fail (its reports are lost).</summary>
    public static void Set(GrainId? grain, bool reportsOnly = false)
    {
        _reportsOnly = reportsOnly;
        _cutOff = grain is { } g ? new StrongBox<GrainId>(g) : null;
    }

    public Task Invoke(IIncomingGrainCallContext context) =>
        CutOff is { } g && context.TargetId == g && !_reportsOnly ? throw new SiloUnavailableException("Test: shard cut off") : context.Invoke();

    public Task Invoke(IOutgoingGrainCallContext context) =>
        CutOff is { } g && context.SourceId == g && (!_reportsOnly || context.InterfaceName.Contains("Sequencer", StringComparison.Ordinal))
            ? throw new SiloUnavailableException("Test: shard cut off")
            : context.Invoke();
}

/// <summary>Tests that cut a shard off share the static <see cref="CutOffFilter"/> (shard 2's grain id is the same in every cluster): they run one at a time.</summary>
[CollectionDefinition(Name)]
public sealed class CutOffCollection
{
    public const string Name = "shard cut-off";
}

/// <summary>The embedded default (Copilot on one silo), three unreplicated shards, failures detected after 500 ms.</summary>
public sealed class FailableShardFixture : ClusterFixture
{
    protected override void Configure(SpecLogOptions options)
    {
        options.ShardCount = 3;
        options.ShardFailureTimeout = TimeSpan.FromMilliseconds(500);
    }

    protected override void ConfigureSilo(ISiloBuilder silo)
    {
        silo.AddIncomingGrainCallFilter<CutOffFilter>();
        silo.AddOutgoingGrainCallFilter<CutOffFilter>();
    }
}

/// <summary>
/// A whole-shard failure under load: shard 2 stops and its storage is gone. The ordering layer declares it failed,
/// voids its slots beyond what it reported durable, and goes on with the others; subscribers are told exactly which of
/// the records they got will not be confirmed, appends waiting on it fail clearly, new appends go to the others, and
/// when its storage returns its committed records are read back. A trim made while it is out skips it; once it rejoined
/// it trims itself below the log's trim point.
/// </summary>
[Collection(CutOffCollection.Name)]
public sealed class WholeShardFailureTests(FailableShardFixture fixture, ITestOutputHelper output) : IClassFixture<FailableShardFixture>
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task A_failed_shard_is_voided_subscribers_roll_back_exactly_its_lost_records_and_the_log_goes_on()
    {
        var ct = TestContext.Current.CancellationToken;
        var client = fixture.Client;
        var events = new ConcurrentQueue<(SpecLogEvent Event, long At)>();
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        using var stopReading = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var subscriber = Task.Run(async () =>
        {
            try
            {
                await foreach (var e in client.SubscribeAsync(0, stopReading.Token))
                {
                    events.Enqueue((e, Stopwatch.GetTimestamp()));
                }
            }
            catch (OperationCanceledException) when (stopReading.IsCancellationRequested)
            {
            }
        }, ct);

        var acks = new ConcurrentDictionary<string, long>();
        var failedOnShard = new ConcurrentDictionary<string, byte>();
        var producers = Enumerable.Range(0, 6).Select(p => Task.Run(async () =>
        {
            for (var i = 0; !stop.IsCancellationRequested; i++)
            {
                var payload = Payload.Make(nameof(WholeShardFailureTests), p, i);
                try
                {
                    acks[Payload.Text(payload)] = await client.AppendAsync(payload, cancellationToken: stop.Token);
                }
                catch (ShardFailedException e)
                {
                    // Waiting on shard 2 when it failed: maybe in the log (if reported durable), maybe not.
                    Assert.Equal(2, e.Shard);
                    failedOnShard[Payload.Text(payload)] = 0;
                }
                catch (OperationCanceledException) when (stop.IsCancellationRequested)
                {
                }
            }
        }, ct)).ToArray();

        using (var warm = new CancellationTokenSource(Patience))
        {
            while (acks.Count < 600)
            {
                await Task.Delay(10, warm.Token); // polled: the producers' progress has no event to await
            }
        }

        // Shard 2 fails: first its reports are lost for a while (it goes on taking appends and delivering them to
        // subscribers, positioned but never reported), then nothing reaches it and nothing it sends arrives.
        var shard2 = fixture.Grains.GetGrain<IShardGrain>(2).GetGrainId();
        CutOffFilter.Set(shard2, reportsOnly: true);
        var killed = Stopwatch.GetTimestamp();
        await Task.Delay(300, ct);
        CutOffFilter.Set(shard2);
        var sequencer = fixture.Grains.GetGrain<ISequencerGrain>(0);
        SequencerStatus status;
        using (var wait = new CancellationTokenSource(Patience))
        {
            do
            {
                await Task.Delay(20, wait.Token); // polled: the failure is decided inside the ordering layer
                status = await sequencer.GetStatusAsync();
            }
            while (!(status.FailedShards ?? []).Contains(2) || !(status.DepartedShards ?? []).Contains(2));
        }

        var declared = Stopwatch.GetElapsedTime(killed);
        Assert.Equal([0, 1], await client.GetActiveShardsAsync(ct));
        var afterFailure = acks.Count;
        using (var more = new CancellationTokenSource(Patience))
        {
            while (acks.Count < afterFailure + 600)
            {
                await Task.Delay(10, more.Token);
            }
        }

        await stop.CancelAsync();
        await Task.WhenAll(producers);

        // The log is trimmed while shard 2 is out (the trim skips a failed shard): shard 2 must catch up once it rejoins.
        var point = acks.Values.Order().ElementAt(100);
        Assert.Equal([0, 1], await client.TrimAsync(point, ct));

        // Its replica returns: shard 2 comes back as a departed shard and serves its committed records (to readers, and
        // to the subscriber, which may still miss some it had not been pushed before the failure), then rejoins.
        CutOffFilter.Set(null);
        var last = acks.Values.Max();
        using (var caughtUp = new CancellationTokenSource(Patience))
        {
            while (!events.Any(x => x.Event is ConfirmedRange c && c.ToGsn > last))
            {
                await Task.Delay(20, caughtUp.Token); // polled: the subscriber's progress is in its event list
            }
        }

        // Its storage is back, so shard 2 asks to rejoin: it is a member again from a later window (whose void covers
        // what it held beyond its last slot), takes appends, and none of its records from before moves.
        using (var rejoining = new CancellationTokenSource(Patience))
        {
            while (!(await client.GetActiveShardsAsync(rejoining.Token)).Contains(2))
            {
                await Task.Delay(20, rejoining.Token); // polled: the rejoin is decided inside the ordering layer
            }
        }

        var windows = (await sequencer.GetWindowsAsync(0)).Windows;
        var failureWindow = windows.Single(w => w.Voids.Any(v => v.Shard == 2 && !v.IsRejoin));
        var rejoinWindow = windows.Single(w => w.Voids.Any(v => v.Shard == 2 && v.IsRejoin));
        Assert.True(rejoinWindow.Window > failureWindow.Window && rejoinWindow.QuotaOf(2) > 0 && !rejoinWindow.HasDeparted(2));
        Assert.DoesNotContain(2, (await sequencer.GetStatusAsync()).FailedShards ?? []);
        using (var caughtUp = new CancellationTokenSource(Patience))
        {
            while ((await fixture.Grains.GetGrain<IShardGrain>(2).GetStatusAsync()).TrimmedBelowGsn != point)
            {
                await Task.Delay(20, caughtUp.Token); // polled: the rejoined shard learns the trim point from a commit notice's turn
            }
        }
        var back = Payload.Make(nameof(WholeShardFailureTests), 99, 0);
        var backGsn = await client.AppendAsync(back, shard: 2, cancellationToken: ct);
        Assert.True(backGsn > last, $"shard 2's first append after it rejoined got GSN {backGsn}, not after {last}");
        var read = await client.ReadAsync(backGsn, ct);
        Assert.Equal((2, Payload.Text(back)), (read!.Shard, Payload.Text(read.Payload)));

        // The whole-log subscriber, running all along, follows the rejoined shard: it gets the new record and its confirmation.
        using (var followed = new CancellationTokenSource(Patience))
        {
            while (!events.Any(x => x.Event is ConfirmedRange c && c.ToGsn > backGsn) || !events.Any(x => x.Event is SpeculativeRecord r && r.Gsn == backGsn))
            {
                await Task.Delay(20, followed.Token); // polled: the subscriber's progress is in its event list
            }
        }

        Assert.Equal(Payload.Text(back), Payload.Text(events.Select(x => x.Event).OfType<SpeculativeRecord>().Single(r => r.Gsn == backGsn).Payload));

        await stopReading.CancelAsync();
        await subscriber;
        var window = (await sequencer.GetWindowsAsync(0)).Windows.Single(w => w.Voids.Any(v => v.Shard == 2 && !v.IsRejoin));
        var voidFrom = window.Voids.Single(v => v.Shard == 2).FromSlot;
        var log = await client.ReadRangeAsync(point, last + 1, ct);
        var atGsn = log.ToDictionary(r => r.Gsn, r => Payload.Text(r.Payload));
        foreach (var (text, gsn) in acks.Where(a => a.Value >= point))
        {
            Assert.True(atGsn.TryGetValue(gsn, out var t) && t == text, $"acknowledged {text} is not at GSN {gsn}");
        }

        Assert.DoesNotContain(log, r => failedOnShard.ContainsKey(Payload.Text(r.Payload)) && r.Shard != 2);

        // What the subscriber saw, with each mis-speculation applied as a consumer would (roll back from its start):
        // exactly the committed log.
        var view = new SortedDictionary<long, (int Shard, string Text)>();
        var notices = new List<(MisSpeculatedRange Range, long At)>();
        var lostRecords = 0;
        foreach (var (e, at) in events)
        {
            switch (e)
            {
                case SpeculativeRecord r:
                    view[r.Gsn] = (r.Shard, Payload.Text(r.Payload));
                    break;
                case MisSpeculatedRange m:
                    notices.Add((m, at));
                    Assert.Equal(2, m.Shard);
                    var rolledBack = view.Keys.Where(g => g >= m.FromGsn).ToList();
                    lostRecords += rolledBack.Count(g => view[g].Shard == 2);
                    Assert.Contains(rolledBack, g => view[g].Shard == 2); // it names shard 2's lost records, not more
                    Assert.Equal(m.FromGsn, rolledBack.Where(g => view[g].Shard == 2).Min());
                    foreach (var g in rolledBack)
                    {
                        view.Remove(g);
                    }

                    break;
            }
        }

        var confirmed = events.Select(x => x.Event).OfType<ConfirmedRange>().Max(c => c.ToGsn);
        Assert.True(confirmed > last, $"confirmed only up to {confirmed}, acknowledged up to {last}");
        Assert.Equal(log.Select(r => (r.Gsn, Payload.Text(r.Payload))), view.Where(kv => kv.Key >= point && kv.Key <= last).Select(kv => (kv.Key, kv.Value.Text)));
        Assert.DoesNotContain(log, r => r.Shard == 2 && r.Gsn >= window.StartGsn);
        Assert.True(notices.Count == 1 && lostRecords > 0, $"{notices.Count} mis-speculation notices ({lostRecords} records taken back) for one failure of a shard that delivered unreported records");
        output.WriteLine($"shard 2 declared failed {declared.TotalMilliseconds:0} ms after it stopped (void from slot {voidFrom}, settled by window {window.Window}); rejoined with window {rejoinWindow.Window} ({rejoinWindow.Voids.Single(v => v.Shard == 2)}), first append after it at GSN {backGsn}; "
            + $"{notices.Count} mis-speculation notice(s){(notices.Count == 1 ? $" {Stopwatch.GetElapsedTime(killed, notices[0].At).TotalMilliseconds:0} ms after it stopped, [{notices[0].Range.FromGsn}, {notices[0].Range.ToGsn}) with {lostRecords} lost record(s)" : "")}; "
            + $"{failedOnShard.Count} appends failed with ShardFailedException; {acks.Count} acknowledged");
    }
}
