using System.Diagnostics;
using System.Globalization;
using SpecLog.Consumer;

namespace SpecLog.Samples.FraudDetection;

/// <summary>One run of the application against a log: producers, the speculative consumer, or both.</summary>
internal sealed class FraudRun(SampleLog log, string name, OutputFile<Verdict>? file)
{
    public sealed record Result(long Verdicts, long Alerts, double P50, double P90, double P99, long Rollbacks, long Checkpoints)
    {
        public override string ToString() => string.Create(
            CultureInfo.InvariantCulture,
            $"{Verdicts} verdicts ({Alerts} alerts); end to end (append → verdict released) p50 {P50:0.000} ms, p90 {P90:0.000} ms, p99 {P99:0.000} ms; {Rollbacks} rollbacks, {Checkpoints} checkpoints");
    }

    private readonly VerdictSink _sink = new(file);

    private SpeculativeConsumer<Dictionary<int, UserStats>, Verdict> NewConsumer() => new(
        log.Client, name, FraudModel.NewState, FraudModel.Apply, _sink,
        new OrleansStateCodec<Dictionary<int, UserStats>>(log.Services),
        new SpeculativeConsumerOptions
        {
            OnRollback = r => Console.WriteLine(
                $"  rollback: positions [{r.Range.FromGsn}, {r.Range.ToGsn}) of failed shard {r.Range.Shard} were mis-speculated; {r.UndoneRecords} payments undone, {r.DiscardedOutputs} held verdicts dropped, re-applying the corrected log"),
        });

    /// <summary>Appends <paramref name="count"/> payments at <paramref name="rate"/> per second (open loop); returns the last GSN.</summary>
    public async Task<long> ProduceAsync(double rate, long count, CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        var pending = new List<Task<long>>();
        for (long i = 0; i < count; i++)
        {
            var due = started + (long)(i / rate * Stopwatch.Frequency);
            var wait = due - Stopwatch.GetTimestamp();
            if (wait > Stopwatch.Frequency / 1000)
            {
                await Task.Delay(TimeSpan.FromSeconds((double)wait / Stopwatch.Frequency), cancellationToken);
            }

            pending.Add(log.Client.AppendAsync(Payment.Generate(i, LatencyHistogram.NowMicros()).Encode(), cancellationToken: cancellationToken));
        }

        return (await Task.WhenAll(pending)).Max();
    }

    /// <summary>Consumes until cancelled, printing progress every second.</summary>
    public async Task<Result> ConsumeAsync(CancellationToken cancellationToken)
    {
        var consumer = NewConsumer();
        var run = consumer.RunAsync(cancellationToken);
        while (!run.IsCompleted)
        {
            await Task.WhenAny(run, Task.Delay(1000, CancellationToken.None));
            Console.WriteLine($"released {_sink.Released} verdicts ({_sink.Flagged} alerts), confirmed through GSN {consumer.Statistics.ConfirmedThrough}");
        }

        await run;
        return Summary(consumer);
    }

    /// <summary>Producers and the consumer together; returns once every payment's verdict is released.</summary>
    public async Task<Result> RunBothAsync(double rate, long count, CancellationToken cancellationToken)
    {
        using var stopConsumer = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var consumer = NewConsumer();
        var run = consumer.RunAsync(stopConsumer.Token);
        var before = _sink.Released;
        _sink.TimedFromMicros = LatencyHistogram.NowMicros() + 1_000_000;
        await ProduceAsync(rate, count, cancellationToken);
        var deadline = Stopwatch.GetTimestamp() + 60 * Stopwatch.Frequency;
        while (_sink.Released - before < count && !run.IsCompleted && Stopwatch.GetTimestamp() < deadline)
        {
            await Task.Delay(20, cancellationToken); // the last verdicts follow their confirmations
        }

        await stopConsumer.CancelAsync();
        await run;
        return Summary(consumer);
    }

    private Result Summary(SpeculativeConsumer<Dictionary<int, UserStats>, Verdict> consumer) => new(
        _sink.Released, _sink.Flagged, _sink.EndToEnd.Ms(50), _sink.EndToEnd.Ms(90), _sink.EndToEnd.Ms(99), consumer.Statistics.Rollbacks, consumer.Statistics.Checkpoints);
}
