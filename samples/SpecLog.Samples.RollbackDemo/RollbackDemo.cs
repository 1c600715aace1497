using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using SpecLog.Consumer;
using SpecLog.Samples.FraudDetection;
using SpecLog.Silo.Tests;

namespace SpecLog.Samples.RollbackDemo;

/// <summary>What the demonstration is asked to do.</summary>
/// <param name="Rate">Payments appended per second (open loop, shards in turn).</param>
/// <param name="Before">Load before the first kill.</param>
/// <param name="After">Load after shard 2 is back.</param>
/// <param name="Attempts">Kills tried until one leaves records to roll back.</param>
/// <param name="FailureTimeout">How long the ordering layer waits for a silent shard before it declares it failed.</param>
/// <param name="CutInterval">The ordering interval T_ord: a shard reports a cut once it is full, so records of the open cut are delivered but not yet reported.</param>
/// <param name="Verbose">Print the consumer's progress every second.</param>
public sealed record DemoOptions(double Rate, TimeSpan Before, TimeSpan After, int Attempts, TimeSpan FailureTimeout, TimeSpan CutInterval, bool Verbose);

/// <summary>
/// The rollback demonstration: the fraud-detection application's speculative consumer on a three-silo cluster
/// (Azure Table membership on Azurite, shard k's only replica on node k, Copilot ordering with a replica on every
/// node) while node 2, the only home of shard 2, is killed with SIGKILL. The ordering layer declares shard 2 failed,
/// voids what it never reported, the consumer is told which positions it got were mis-speculated and rolls its
/// state back, node 2 comes back and shard 2 rejoins; at the end a fresh consumer replays the confirmed log, and the
/// verdicts (and alerts) released by both must be the same, each once.
/// </summary>
public static class RollbackDemo
{
    /// <summary>Exit codes: 0 the outputs are equal after a rollback; 1 they differ; 2 no kill left records to roll back.</summary>
    public static async Task<int> RunAsync(DemoOptions options, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        void Say(string line) => Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"[{clock.Elapsed.TotalSeconds,6:0.0} s] {line}"));

        Say("starting Azurite (the Azure Storage emulator: membership table, checkpoint blobs) on loopback ...");
        await using var azurite = await AzuriteServer.StartAsync(ct);
        var (exit, speculative) = await RunThroughFailureAsync(options, azurite, Say, ct);
        if (exit != 0)
        {
            return exit;
        }

        // The same application and load on Scalog mode (records reach the consumer only once ordered), without a kill.
        Say("the same workload in Scalog mode, for its end-to-end latency (no kill) ...");
        var ordered = await RunScalogAsync(options, azurite, Say, ct);
        Say(string.Create(CultureInfo.InvariantCulture,
            $"E2E, payment appended → verdict released: SpecLog p50 {speculative.Ms(50):0.00} ms, p99 {speculative.Ms(99):0.00} ms (through the kill) · "
            + $"Scalog mode p50 {ordered.Ms(50):0.00} ms, p99 {ordered.Ms(99):0.00} ms · Scalog ÷ SpecLog p50 {ordered.Ms(50) / speculative.Ms(50):0.00}×"));
        return 0;
    }

    /// <summary>The demonstration proper; returns its exit code and the live consumer's end-to-end latencies.</summary>
    private static async Task<(int Exit, LatencyHistogram E2e)> RunThroughFailureAsync(DemoOptions options, AzuriteServer azurite, Action<string> Say, CancellationToken ct)
    {
        Say($"starting three silo processes node-0, node-1, node-2: shard k's only replica on node k, Copilot ordering replicas on all three, "
            + $"a shard silent for {options.FailureTimeout.TotalMilliseconds:0} ms declared failed, cuts every {options.CutInterval.TotalMilliseconds:0} ms ...");
        await using var cluster = await ProcessCluster.StartAsync(
            azurite.ConnectionString, 3, ct, "--SpecLog:ShardReplicas=1", $"--SpecLog:ShardFailureTimeout={options.FailureTimeout:c}", $"--SpecLog:Ordering:OrderingInterval={options.CutInterval:c}");
        var log = cluster.Client.Log;
        var sequencer = cluster.Client.Grains.GetGrain<ISequencerGrain>(0);

        // The ordering layer's status, or null while the call fails (the silo that answered it for this client may be the one killed).
        async Task<SequencerStatus?> Status()
        {
            try
            {
                return await sequencer.GetStatusAsync().WaitAsync(TimeSpan.FromSeconds(2), ct);
            }
            catch (Exception e) when (e is OrleansException or TimeoutException)
            {
                return null;
            }
        }

        Say("cluster up; the fraud-detection consumer (GSN order, checkpoints on Azure Blob storage) and the payment producer start");

        var sink = new CollectingSink();
        var rollbacks = new ConcurrentQueue<RollbackNotice>();
        var codec = new OrleansStateCodec<Dictionary<int, UserStats>>(cluster.Client.Services);
        SpeculativeConsumer<Dictionary<int, UserStats>, Verdict>? consumer = null;

        // The kill comes the moment the consumer applies a record of shard 2 it got speculatively (not yet confirmed):
        // a failure while speculation is outstanding, which is what the consumer must undo. Whether that record (and
        // the ones after it) had been reported by shard 2 before the kill decides whether the log keeps them.
        TaskCompletionSource<long>? killed = null;
        Dictionary<int, UserStats> Apply(Dictionary<int, UserStats> users, ConsumedRecord record, OutputBuffer<Verdict> outputs)
        {
            if (record.Shard == 2 && Volatile.Read(ref killed) is { Task.IsCompleted: false } armed && record.Gsn >= consumer!.Statistics.ConfirmedThrough)
            {
                cluster.Kill(2);
                armed.TrySetResult(record.Gsn);
            }

            return FraudModel.Apply(users, record, outputs);
        }

        consumer = new SpeculativeConsumer<Dictionary<int, UserStats>, Verdict>(
            log, "fraud-demo", FraudModel.NewState, Apply, sink, codec,
            new SpeculativeConsumerOptions
            {
                Ordering = ConsumerOrdering.Gsn,
                CheckpointInterval = TimeSpan.FromMilliseconds(500),
                OnRollback = r =>
                {
                    rollbacks.Enqueue(r);
                    Say($"ROLLBACK: positions [{r.Range.FromGsn}, {r.Range.ToGsn}) were mis-speculated (failed shard {r.Range.Shard}): "
                        + $"{r.UndoneRecords} applied records undone, {r.DiscardedOutputs} held verdicts dropped; the state is back at GSN {r.Range.FromGsn} and the corrected log is applied again");
                },
            });
        using var stopConsumer = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var run = consumer.RunAsync(stopConsumer.Token);
        var producer = new PaymentProducer(log, options.Rate);
        _ = Task.Run(async () =>
        {
            while (options.Verbose && !stopConsumer.IsCancellationRequested)
            {
                await Task.Delay(1000);
                Say($"  (applied {consumer.Statistics.Applied}, released {consumer.Statistics.Released}, confirmed through {consumer.Statistics.ConfirmedThrough}, acked {producer.Acknowledged})");
            }
        });

        await Task.Delay(options.Before, ct);

        for (var attempt = 1; attempt <= options.Attempts && rollbacks.IsEmpty; attempt++)
        {
            var trigger = new TaskCompletionSource<long>(TaskCreationOptions.RunContinuationsAsynchronously);
            Volatile.Write(ref killed, trigger);
            var atGsn = await trigger.Task.WaitAsync(cluster.StepTimeout, ct);
            var since = Stopwatch.StartNew();
            Say($"kill -9 node-2 (shard 2's only replica and ordering replica 2), attempt {attempt}, as the consumer applied shard 2's record at GSN {atGsn} speculatively: "
                + $"{sink.Count} verdicts released so far, {producer.Acknowledged} payments acknowledged");
            await cluster.UntilAsync(async () => (await Status())?.FailedShards?.Contains(2) == true, "shard 2 declared failed", ct);
            Say($"the ordering layer declared shard 2 failed {since.ElapsedMilliseconds} ms after the kill: its slots beyond what it reported durable are voided, and the log goes on with shards 0 and 1");

            // Shard 2's committed records live only on node-2 (one replica): a consumer in GSN order gets the ones it
            // had not received yet once the node is back, as an operator would bring it back.
            Say("starting node-2 again ...");
            await cluster.RestartAsync(2, ct);
            await cluster.UntilAsync(async () => await Status() is { } status && status.FailedShards?.Contains(2) != true, "shard 2 rejoined", ct);
            Say($"node-2 is back {since.ElapsedMilliseconds} ms after the kill and shard 2 has rejoined the log ({producer.Failed} appends that waited on shard 2 failed meanwhile; the producer goes on)");
            // The window that voided shard 2's slots was committed before the rejoin: once the consumer is confirmed past
            // what the log had committed by then, it has seen the void, and any mis-speculation it brings.
            var settled = (await Status())?.CommittedGsn ?? producer.LastGsn;
            await cluster.UntilAsync(async () => !rollbacks.IsEmpty || consumer.Statistics.ConfirmedThrough > settled || await Ended(run), "the consumer past the failure", ct);
            if (rollbacks.IsEmpty)
            {
                Say("none of shard 2's voided slots held a record the consumer had applied (it had reported all it delivered): nothing to roll back; another kill follows");
                await Task.Delay(options.Before, ct);
            }
        }

        await Task.Delay(options.After, ct);
        var last = await producer.StopAsync();
        Say($"producer stopped: {producer.Acknowledged} payments acknowledged (last GSN {last}), {producer.Failed} failed with shard 2");
        await cluster.UntilAsync(() => Task.FromResult(consumer.Statistics.ConfirmedThrough > last), "the consumer confirmed past the last payment", ct);
        await Task.Delay(500, ct); // the last confirmed outputs reach the sink
        await stopConsumer.CancelAsync();
        await run;
        var through = consumer.Statistics.ConfirmedThrough;

        Say($"replaying the confirmed log [0, {through}) with a fresh consumer that never saw the failure ...");
        var replaySink = new CollectingSink();
        var replay = new SpeculativeConsumer<Dictionary<int, UserStats>, Verdict>(
            log, "fraud-demo-replay", FraudModel.NewState, FraudModel.Apply, replaySink, codec,
            new SpeculativeConsumerOptions { Ordering = ConsumerOrdering.Gsn, Checkpoints = false });
        using var stopReplay = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var replayRun = replay.RunAsync(stopReplay.Token);
        await cluster.UntilAsync(() => Task.FromResult(replay.Statistics.ConfirmedThrough >= through && replaySink.Count >= sink.Below(through).Count), "the replay through the same position", ct);
        await stopReplay.CancelAsync();
        await replayRun;

        var live = sink.Below(through);
        var reference = replaySink.Below(through);
        var once = live.Select(o => (o.Gsn, o.Index)).Distinct().Count() == live.Count;
        var equal = live.SequenceEqual(reference);
        Say($"live consumer: {live.Count} verdicts, {live.Count(o => o.Output.Flagged)} alerts, {consumer.Statistics.Rollbacks} rollback(s), {consumer.Statistics.Checkpoints} checkpoints ({consumer.Statistics.FailedCheckpoints} failed while node-2 was down)");
        Say($"replay of the confirmed log: {reference.Count} verdicts, {reference.Count(o => o.Output.Flagged)} alerts");
        if (rollbacks.IsEmpty)
        {
            Say($"RESULT: no kill in {options.Attempts} attempts left a delivered record unreported, so nothing was rolled back; outputs {(equal ? "equal" : "DIFFER")}");
            return (2, sink.EndToEnd);
        }

        Say(equal && once
            ? $"RESULT: the verdicts released through GSN {through} are identical to the undisturbed replay's ({live.Count} verdicts, {live.Count(o => o.Output.Flagged)} alerts), each released once"
            : $"RESULT: MISMATCH: equal = {equal}, each once = {once}");
        return (equal && once ? 0 : 1, sink.EndToEnd);
    }

    /// <summary>The fraud consumer and the same load on a three-silo cluster in Scalog mode, no kill; returns the end-to-end latencies.</summary>
    private static async Task<LatencyHistogram> RunScalogAsync(DemoOptions options, AzuriteServer azurite, Action<string> Say, CancellationToken ct)
    {
        await using var cluster = await ProcessCluster.StartAsync(
            azurite.ConnectionString, 3, ct, "--SpecLog:ShardReplicas=1", "--SpecLog:Ordering:Mode=Scalog", $"--SpecLog:Ordering:OrderingInterval={options.CutInterval:c}");
        var sink = new CollectingSink();
        var consumer = new SpeculativeConsumer<Dictionary<int, UserStats>, Verdict>(
            cluster.Client.Log, "fraud-demo-scalog", FraudModel.NewState, FraudModel.Apply, sink,
            new OrleansStateCodec<Dictionary<int, UserStats>>(cluster.Client.Services),
            new SpeculativeConsumerOptions { Ordering = ConsumerOrdering.Gsn, CheckpointInterval = TimeSpan.FromMilliseconds(500) });
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var run = consumer.RunAsync(stop.Token);
        var producer = new PaymentProducer(cluster.Client.Log, options.Rate);
        await Task.Delay(options.Before + options.After, ct);
        var last = await producer.StopAsync();
        await cluster.UntilAsync(async () => consumer.Statistics.ConfirmedThrough > last || await Ended(run), "the Scalog-mode consumer past the last payment", ct);
        await stop.CancelAsync();
        await run;
        Say($"Scalog mode: {producer.Acknowledged} payments, {sink.Count} verdicts released");
        return sink.EndToEnd;
    }

    /// <summary>False while the consumer runs; throws its error if it stopped with one.</summary>
    private static async Task<bool> Ended(Task run)
    {
        if (run.IsCompleted)
        {
            await run;
            return true;
        }

        return false;
    }

    /// <summary>Keeps every released verdict in release order, and its end-to-end latency (payment appended → verdict released).</summary>
    private sealed class CollectingSink : IOutputSink<Verdict>
    {
        private readonly List<ReleasedOutput<Verdict>> _released = [];

        public LatencyHistogram EndToEnd { get; } = new();

        public int Count
        {
            get
            {
                lock (_released)
                {
                    return _released.Count;
                }
            }
        }

        public List<ReleasedOutput<Verdict>> Below(long gsn)
        {
            lock (_released)
            {
                return [.. _released.Where(o => o.Gsn < gsn)];
            }
        }

        public ValueTask ReleaseAsync(IReadOnlyList<ReleasedOutput<Verdict>> outputs, CancellationToken cancellationToken)
        {
            var now = LatencyHistogram.NowMicros();
            foreach (var o in outputs)
            {
                EndToEnd.Record(now - o.Output.AppendedAtMicros);
            }

            lock (_released)
            {
                _released.AddRange(outputs);
            }

            return ValueTask.CompletedTask;
        }
    }
}
