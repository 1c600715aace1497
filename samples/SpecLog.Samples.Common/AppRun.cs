using System.Diagnostics;
using System.Globalization;
using SpecLog.Consumer;

namespace SpecLog.Samples;

/// <summary>What a sample's run measured: outputs released, alerts among them, end-to-end percentiles (ms), rollbacks and checkpoints.</summary>
public sealed record SampleResult(long Outputs, long Alerts, double P50, double P90, double P99, long Rollbacks, long Checkpoints)
{
    /// <inheritdoc />
    public override string ToString() => string.Create(
        CultureInfo.InvariantCulture,
        $"{Outputs} outputs ({Alerts} alerts); end to end (append → output released) p50 {P50:0.000} ms, p90 {P90:0.000} ms, p99 {P99:0.000} ms; {Rollbacks} rollbacks, {Checkpoints} checkpoints");
}

/// <summary>One run of a sample application against a log: producers, the speculative consumer, or both.</summary>
/// <param name="log">The log.</param>
/// <param name="app">The application.</param>
/// <param name="name">The consumer's name (its checkpoints; its group's name).</param>
/// <param name="file">Where outputs are also written, exactly once (null: nowhere).</param>
/// <param name="group">Whether the consumer joins the consumer group named <paramref name="name"/> (per-shard applications).</param>
public sealed class AppRun<TState, TOutput>(SampleLog log, SampleApp<TState, TOutput> app, string name, IResumableOutputSink<TOutput>? file, bool group = false)
    where TOutput : ITimedOutput
{
    private readonly TimedSink<TOutput> _sink = new(file);

    private SpeculativeConsumer<TState, TOutput> NewConsumer() => new(
        log.Client, name, app.NewState, app.Apply, _sink, new OrleansStateCodec<TState>(log.Services),
        new SpeculativeConsumerOptions
        {
            Ordering = app.Ordering,
            Group = group,
            OnRollback = r => Console.WriteLine(
                $"  rollback: positions [{r.Range.FromGsn}, {r.Range.ToGsn}) of failed shard {r.Range.Shard} were mis-speculated; {r.UndoneRecords} records undone, {r.DiscardedOutputs} held outputs dropped, re-applying the corrected log"),
        });

    /// <summary>Appends <paramref name="count"/> records at <paramref name="rate"/> per second (open loop); returns the last GSN.</summary>
    public async Task<long> ProduceAsync(double rate, long count, CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        var pending = new List<Task<long>>();
        for (long i = 0; i < count; i++)
        {
            var wait = started + (long)(i / rate * Stopwatch.Frequency) - Stopwatch.GetTimestamp();
            if (wait > Stopwatch.Frequency / 1000)
            {
                await Task.Delay(TimeSpan.FromSeconds((double)wait / Stopwatch.Frequency), cancellationToken);
            }

            var (payload, shard) = app.Generate(i, LatencyHistogram.NowMicros());
            pending.Add(log.Client.AppendAsync(payload, shard, cancellationToken));
        }

        return (await Task.WhenAll(pending)).Max();
    }

    /// <summary>Consumes until cancelled, printing progress every second.</summary>
    public async Task<SampleResult> ConsumeAsync(CancellationToken cancellationToken)
    {
        var consumer = NewConsumer();
        var run = consumer.RunAsync(cancellationToken);
        while (!run.IsCompleted)
        {
            await Task.WhenAny(run, Task.Delay(1000, CancellationToken.None));
            Console.WriteLine($"released {_sink.Released} outputs ({_sink.Alerts} alerts), confirmed through GSN {consumer.Statistics.ConfirmedThrough}"
                + (group ? $"; member {consumer.MemberId} holds shards [{string.Join(", ", consumer.Partitions)}]" : ""));
        }

        await run;
        return Summary(consumer);
    }

    /// <summary>Producers and the consumer together; returns once every record's output is released.</summary>
    public async Task<SampleResult> RunBothAsync(double rate, long count, CancellationToken cancellationToken)
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
            await Task.Delay(20, cancellationToken); // the last outputs follow their confirmations
        }

        await stopConsumer.CancelAsync();
        await run;
        return Summary(consumer);
    }

    private SampleResult Summary(SpeculativeConsumer<TState, TOutput> consumer) => new(
        _sink.Released, _sink.Alerts, _sink.EndToEnd.Ms(50), _sink.EndToEnd.Ms(90), _sink.EndToEnd.Ms(99), consumer.Statistics.Rollbacks, consumer.Statistics.Checkpoints);
}
