using SpecLog.Consumer;

namespace SpecLog.Samples;

/// <summary>
/// Where a sample's confirmed outputs go: counted, their end-to-end latency (append → release) recorded, and, when a
/// file is given, written to it exactly once (the file remembers what it holds, so a restarted consumer skips it).
/// </summary>
public sealed class TimedSink<TOutput>(IResumableOutputSink<TOutput>? file) : IResumableOutputSink<TOutput>
    where TOutput : ITimedOutput
{
    private long _released;
    private long _alerts;

    /// <summary>Outputs of records appended before this (UTC µs) are not timed: the first second warms the process up.</summary>
    public long TimedFromMicros { get; set; }

    /// <summary>End-to-end latencies.</summary>
    public LatencyHistogram EndToEnd { get; } = new();

    /// <summary>Outputs released.</summary>
    public long Released => Interlocked.Read(ref _released);

    /// <summary>Alerts among them.</summary>
    public long Alerts => Interlocked.Read(ref _alerts);

    /// <inheritdoc />
    public async ValueTask ReleaseAsync(IReadOnlyList<ReleasedOutput<TOutput>> outputs, CancellationToken cancellationToken)
    {
        var now = LatencyHistogram.NowMicros();
        foreach (var o in outputs)
        {
            if (o.Output.AppendedAtMicros >= TimedFromMicros)
            {
                EndToEnd.Record(now - o.Output.AppendedAtMicros);
            }

            if (o.Output.IsAlert)
            {
                Interlocked.Increment(ref _alerts);
            }
        }

        Interlocked.Add(ref _released, outputs.Count);
        if (file is not null)
        {
            await file.ReleaseAsync(outputs, cancellationToken);
        }
    }

    /// <inheritdoc />
    public ValueTask<IReadOnlyDictionary<int, OutputId>> GetLastReleasedAsync(CancellationToken cancellationToken) =>
        file?.GetLastReleasedAsync(cancellationToken) ?? ValueTask.FromResult<IReadOnlyDictionary<int, OutputId>>(new Dictionary<int, OutputId>());
}
