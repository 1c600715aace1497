using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using SpecLog.Client;

namespace SpecLog.Quickstart;

/// <summary>
/// One measured run: open-loop producers at a fixed total rate, one whole-log subscriber, a line per second, then the
/// latency table and the check that every acknowledged append was delivered at its acknowledged GSN.
/// </summary>
internal sealed class LoadRun(QuickstartOptions options, SpecLogClient client, IGrainFactory grains)
{
    private const int WarmUpAppends = 200;
    private static readonly TimeSpan CatchUpTimeout = TimeSpan.FromSeconds(20);
    private static readonly TimeSpan DrainTimeout = TimeSpan.FromSeconds(30);

    private readonly long _runId = Random.Shared.NextInt64(1, long.MaxValue);
    private readonly LatencyRecorder _append = new("append -> acknowledged GSN");
    private readonly LatencyRecorder _speculative = new("append -> speculative delivery");
    private readonly LatencyRecorder _confirmed = new("append -> confirmation");
    private readonly ConcurrentDictionary<(int Producer, long Sequence), long> _acknowledged = new();
    private readonly ConcurrentDictionary<(int Producer, long Sequence), long> _delivered = new();
    private readonly ConcurrentQueue<string> _anomalies = new();
    private long _sent;
    private long _failed;
    private long _inFlight;
    private long _maxAcknowledgedGsn = -1;
    private long _minAcknowledgedGsn = long.MaxValue;
    private long _lastSpeculativeGsn = -1;
    private long _confirmedEndGsn = -1;
    private long _foreignRecords;
    private long _misSpeculatedSlots;
    private string? _firstError;

    /// <summary>Runs and reports; returns the process exit code (0 when every check passed).</summary>
    public async Task<int> RunAsync(CancellationToken stopping)
    {
        await WarmUpAsync(stopping);
        var status = await grains.GetGrain<ISequencerGrain>(0).GetStatusAsync();
        var fromGsn = status.CommittedGsn;
        var shardsBefore = await ShardStatusesAsync(status.ShardCount);
        Console.WriteLine($"Subscribing to the whole log from GSN {fromGsn} (the committed end); {options.Producers} producers, {options.Rate:0} appends/s in total, {options.Duration.TotalSeconds:0.#} s, {options.PayloadSize}-byte records.");

        using var subscription = CancellationTokenSource.CreateLinkedTokenSource(stopping);
        var subscriber = Task.Run(() => SubscribeAsync(fromGsn, subscription.Token), CancellationToken.None);
        using var live = CancellationTokenSource.CreateLinkedTokenSource(stopping);
        var liveLines = options.Quiet ? Task.CompletedTask : Task.Run(() => PrintLiveAsync(live.Token), CancellationToken.None);

        var start = Stopwatch.GetTimestamp();
        var perProducer = options.Rate / options.Producers;
        var producers = Enumerable.Range(0, options.Producers)
            .Select(p => Task.Run(() => ProduceAsync(p, perProducer, start, stopping), CancellationToken.None))
            .ToArray();
        await Task.WhenAll(producers);
        var producing = Stopwatch.GetElapsedTime(start);

        // Every append is answered (acknowledged or failed); now let the subscriber catch up with the acknowledged ones.
        var caughtUp = await WaitForSubscriberAsync(stopping);
        var shardsAfter = await ShardStatusesAsync(status.ShardCount);
        await live.CancelAsync();
        await IgnoreCancellation(liveLines);
        LogConnection.TearingDown = true;
        await subscription.CancelAsync();
        await IgnoreCancellation(subscriber);

        var code = Report(producing, caughtUp, stopping.IsCancellationRequested);
        long noOps = 0, records = 0;
        for (var i = 0; i < shardsAfter.Length; i++)
        {
            noOps += shardsAfter[i].NoOpSlots - shardsBefore[i].NoOpSlots;
            records += shardsAfter[i].DurableRecords - shardsBefore[i].DurableRecords;
        }

        if (noOps + records > 0)
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"No-op share of the positions the run used: {noOps * 100.0 / (noOps + records):0.0} % ({noOps} no-op slots, {records} records over {shardsAfter.Length} shards; cut interval now {shardsAfter.Max(x => x.CutIntervalMicros) / 1000.0:0.#} ms)."));
        }

        return code;
    }

    private Task<ShardStatus[]> ShardStatusesAsync(int shards) =>
        Task.WhenAll(Enumerable.Range(0, shards).Select(i => grains.GetGrain<IShardGrain>(i).GetStatusAsync()));

    /// <summary>A few appends that are not measured, so the first measured ones do not pay for JIT and connection set-up.</summary>
    private async Task WarmUpAsync(CancellationToken cancellationToken)
    {
        var shards = await client.GetShardCountAsync(cancellationToken);
        Console.WriteLine($"Log has {shards} shards; warming up with {WarmUpAppends} unmeasured appends...");
        var warmUpRun = _runId ^ 0x5A5A5A5A;
        var tasks = Enumerable.Range(0, WarmUpAppends)
            .Select(i => client.AppendAsync(RecordPayload.Create(warmUpRun, -1, i, Stopwatch.GetTimestamp(), options.PayloadSize), cancellationToken: cancellationToken));
        await Task.WhenAll(tasks);
    }

    private async Task ProduceAsync(int producer, double rate, long start, CancellationToken cancellationToken)
    {
        var appends = new List<Task>();
        long sequence = 0;
        try
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                var elapsed = Stopwatch.GetElapsedTime(start);
                if (elapsed >= options.Duration)
                {
                    break;
                }

                // Open loop: start every append that is due by now, whether or not earlier ones have been answered.
                var due = (long)(elapsed.TotalSeconds * rate) + 1;
                while (sequence < due)
                {
                    appends.Add(AppendOneAsync(producer, sequence++, cancellationToken));
                }

                await Task.Delay(1, cancellationToken);
            }
        }
        catch (OperationCanceledException)
        {
        }

        await Task.WhenAll(appends).WaitAsync(DrainTimeout, CancellationToken.None).ContinueWith(_ => { }, TaskScheduler.Default);
    }

    private async Task AppendOneAsync(int producer, long sequence, CancellationToken cancellationToken)
    {
        var startTimestamp = Stopwatch.GetTimestamp();
        var payload = RecordPayload.Create(_runId, producer, sequence, startTimestamp, options.PayloadSize);
        Interlocked.Increment(ref _sent);
        Interlocked.Increment(ref _inFlight);
        try
        {
            var gsn = await client.AppendAsync(payload, cancellationToken: cancellationToken);
            _append.AddSince(startTimestamp);
            _acknowledged[(producer, sequence)] = gsn;
            InterlockedMax(ref _maxAcknowledgedGsn, gsn);
            InterlockedMin(ref _minAcknowledgedGsn, gsn);
        }
        catch (Exception e)
        {
            Interlocked.Increment(ref _failed);
            Interlocked.CompareExchange(ref _firstError, $"{e.GetType().Name}: {e.Message}", null);
        }
        finally
        {
            Interlocked.Decrement(ref _inFlight);
        }
    }

    private async Task SubscribeAsync(long fromGsn, CancellationToken cancellationToken)
    {
        // Records of this run waiting for their confirmation, in GSN order.
        var unconfirmed = new Queue<(long Gsn, long SentAt)>();
        try
        {
            await foreach (var e in client.SubscribeAsync(fromGsn, cancellationToken))
            {
                switch (e)
                {
                    case SpeculativeRecord record:
                        Volatile.Write(ref _lastSpeculativeGsn, record.Gsn);
                        if (!RecordPayload.TryRead(record.Payload.Span, _runId, out var producer, out var sequence, out var sentAt))
                        {
                            Interlocked.Increment(ref _foreignRecords);
                            break;
                        }

                        _speculative.AddSince(sentAt);
                        if (!_delivered.TryAdd((producer, sequence), record.Gsn))
                        {
                            _anomalies.Enqueue($"producer {producer} record {sequence} delivered twice: GSN {_delivered[(producer, sequence)]} and {record.Gsn}");
                        }

                        if (record.Gsn < Volatile.Read(ref _confirmedEndGsn))
                        {
                            _confirmed.AddSince(sentAt); // already covered by a confirmation
                        }
                        else
                        {
                            unconfirmed.Enqueue((record.Gsn, sentAt));
                        }

                        break;
                    case ConfirmedRange range:
                        Volatile.Write(ref _confirmedEndGsn, range.ToGsn);
                        while (unconfirmed.TryPeek(out var head) && head.Gsn < range.ToGsn)
                        {
                            unconfirmed.Dequeue();
                            _confirmed.AddSince(head.SentAt);
                        }

                        break;
                    case MisSpeculatedRange wrong:
                        Interlocked.Add(ref _misSpeculatedSlots, wrong.ToGsn - wrong.FromGsn);
                        _anomalies.Enqueue($"mis-speculation notice for GSNs [{wrong.FromGsn}, {wrong.ToGsn})");
                        foreach (var (key, gsn) in _delivered)
                        {
                            if (gsn >= wrong.FromGsn && gsn < wrong.ToGsn)
                            {
                                _delivered.TryRemove(key, out _);
                            }
                        }

                        unconfirmed = new Queue<(long Gsn, long SentAt)>(unconfirmed.Where(u => u.Gsn < wrong.FromGsn || u.Gsn >= wrong.ToGsn));
                        break;
                }
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
        catch (Exception e)
        {
            _anomalies.Enqueue($"subscription failed: {e.GetType().Name}: {e.Message}");
        }
    }

    private async Task<bool> WaitForSubscriberAsync(CancellationToken cancellationToken)
    {
        var deadline = Stopwatch.GetTimestamp() + (long)(CatchUpTimeout.TotalSeconds * Stopwatch.Frequency);
        while (Stopwatch.GetTimestamp() < deadline && !cancellationToken.IsCancellationRequested)
        {
            if (Volatile.Read(ref _confirmedEndGsn) > Volatile.Read(ref _maxAcknowledgedGsn)
                && _delivered.Count >= _acknowledged.Count
                && _acknowledged.Keys.All(_delivered.ContainsKey))
            {
                return true;
            }

            try
            {
                await Task.Delay(20, cancellationToken);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }

        return false;
    }

    private async Task PrintLiveAsync(CancellationToken cancellationToken)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1));
        var second = 0;
        while (await timer.WaitForNextTickAsync(cancellationToken))
        {
            second++;
            var a = _append.TakeInterval();
            var s = _speculative.TakeInterval();
            var c = _confirmed.TakeInterval();
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"[{second,3}s] sent {Interlocked.Read(ref _sent),7} acked {_append.Count,7} in-flight {Interlocked.Read(ref _inFlight),5} | speculative GSN {Volatile.Read(ref _lastSpeculativeGsn),8} confirmed < {Volatile.Read(ref _confirmedEndGsn),8} | p50/p99 ms: append {Ms(a, 0.5)}/{Ms(a, 0.99)} spec {Ms(s, 0.5)}/{Ms(s, 0.99)} conf {Ms(c, 0.5)}/{Ms(c, 0.99)}"));
        }

        static string Ms(double[] sorted, double q) => sorted.Length == 0 ? "-" : LatencyRecorder.Percentile(sorted, q).ToString("0.00", CultureInfo.InvariantCulture);
    }

    private int Report(TimeSpan producing, bool caughtUp, bool interrupted)
    {
        var sent = Interlocked.Read(ref _sent);
        var acknowledged = _acknowledged.Count;
        Console.WriteLine();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"Appends: {sent} sent in {producing.TotalSeconds:0.0} s ({sent / producing.TotalSeconds:0} /s offered), {acknowledged} acknowledged, {Interlocked.Read(ref _failed)} failed{(interrupted ? " (interrupted)" : "")}."));
        if (_firstError is not null)
        {
            Console.WriteLine($"  first failure: {_firstError}");
        }

        if (acknowledged > 0)
        {
            Console.WriteLine($"  acknowledged GSNs in [{_minAcknowledgedGsn}, {_maxAcknowledgedGsn}]; subscriber saw {_delivered.Count} records of this run, {Interlocked.Read(ref _foreignRecords)} other records, confirmed up to GSN {Volatile.Read(ref _confirmedEndGsn)}.");
        }

        Console.WriteLine();
        Console.WriteLine($"{"latency (ms)",-32} {"count",8} {"p50",9} {"p90",9} {"p99",9} {"max",9}");
        var rows = new[] { _append, _speculative, _confirmed };
        var p50 = new double[rows.Length];
        for (var i = 0; i < rows.Length; i++)
        {
            var sorted = rows[i].Snapshot();
            p50[i] = LatencyRecorder.Percentile(sorted, 0.5);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{rows[i].Name,-32} {sorted.Length,8} {LatencyRecorder.Percentile(sorted, 0.5),9:0.00} {LatencyRecorder.Percentile(sorted, 0.9),9:0.00} {LatencyRecorder.Percentile(sorted, 0.99),9:0.00} {(sorted.Length == 0 ? double.NaN : sorted[^1]),9:0.00}"));
        }

        if (!double.IsNaN(p50[1]) && !double.IsNaN(p50[2]))
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"Speculative delivery came {p50[2] - p50[1]:0.00} ms (p50) before confirmation: the time a consumer can compute before ordering is done."));
        }

        Console.WriteLine();
        return Verify(caughtUp);
    }

    /// <summary>Every acknowledged append must have been delivered to the subscriber exactly at its acknowledged GSN.</summary>
    private int Verify(bool caughtUp)
    {
        var problems = new List<string>(_anomalies);
        foreach (var ((producer, sequence), gsn) in _acknowledged.OrderBy(kv => kv.Value))
        {
            if (!_delivered.TryGetValue((producer, sequence), out var seenAt))
            {
                problems.Add($"producer {producer} record {sequence}: acknowledged at GSN {gsn} but never delivered to the subscriber");
            }
            else if (seenAt != gsn)
            {
                problems.Add($"producer {producer} record {sequence}: acknowledged at GSN {gsn} but delivered at GSN {seenAt}");
            }
        }

        if (!caughtUp && problems.Count == 0)
        {
            problems.Add($"the subscriber did not confirm past the last acknowledged GSN {_maxAcknowledgedGsn} within {CatchUpTimeout.TotalSeconds:0} s (confirmed < {_confirmedEndGsn})");
        }

        if (Interlocked.Read(ref _failed) > 0)
        {
            problems.Add($"{_failed} appends failed; first: {_firstError}");
        }

        if (problems.Count == 0)
        {
            Console.WriteLine($"OK: all {_acknowledged.Count} acknowledged appends were delivered to the subscriber at their acknowledged GSN and confirmed.");
            return 0;
        }

        Console.WriteLine("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
        Console.WriteLine($"!!! MISMATCH: {problems.Count} problem(s) between acknowledged GSNs and what the subscriber saw");
        foreach (var p in problems.Take(20))
        {
            Console.WriteLine("!!!   " + p);
        }

        if (problems.Count > 20)
        {
            Console.WriteLine($"!!!   ... and {problems.Count - 20} more");
        }

        Console.WriteLine("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
        return 1;
    }

    private static async Task IgnoreCancellation(Task task)
    {
        try
        {
            await task;
        }
        catch (OperationCanceledException)
        {
        }
    }

    private static void InterlockedMax(ref long target, long value)
    {
        var current = Volatile.Read(ref target);
        while (value > current)
        {
            var seen = Interlocked.CompareExchange(ref target, value, current);
            if (seen == current)
            {
                return;
            }

            current = seen;
        }
    }

    private static void InterlockedMin(ref long target, long value)
    {
        var current = Volatile.Read(ref target);
        while (value < current)
        {
            var seen = Interlocked.CompareExchange(ref target, value, current);
            if (seen == current)
            {
                return;
            }

            current = seen;
        }
    }
}
