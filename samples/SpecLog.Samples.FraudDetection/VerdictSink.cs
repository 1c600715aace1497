using SpecLog.Consumer;

namespace SpecLog.Samples.FraudDetection;

/// <summary>
/// Where confirmed verdicts go: counted, their end-to-end latency (append → release) recorded, and, when a file is
/// given, written to it exactly once (the file remembers what it holds, so a restarted consumer skips it).
/// </summary>
internal sealed class VerdictSink(OutputFile<Verdict>? file) : IResumableOutputSink<Verdict>
{
    /// <summary>Payments appended before this (UTC µs) are not timed: the first second warms the process up.</summary>
    public long TimedFromMicros { get; set; }

    private long _released;
    private long _flagged;

    public LatencyHistogram EndToEnd { get; } = new();

    public long Released => Interlocked.Read(ref _released);

    public long Flagged => Interlocked.Read(ref _flagged);

    public async ValueTask ReleaseAsync(IReadOnlyList<ReleasedOutput<Verdict>> outputs, CancellationToken cancellationToken)
    {
        var now = LatencyHistogram.NowMicros();
        foreach (var o in outputs)
        {
            if (o.Output.AppendedAtMicros >= TimedFromMicros)
            {
                EndToEnd.Record(now - o.Output.AppendedAtMicros);
            }
            if (o.Output.Flagged)
            {
                Interlocked.Increment(ref _flagged);
            }
        }

        Interlocked.Add(ref _released, outputs.Count);
        if (file is not null)
        {
            await file.ReleaseAsync(outputs, cancellationToken);
        }
    }

    public ValueTask<IReadOnlyDictionary<int, OutputId>> GetLastReleasedAsync(CancellationToken cancellationToken) =>
        file?.GetLastReleasedAsync(cancellationToken) ?? ValueTask.FromResult<IReadOnlyDictionary<int, OutputId>>(new Dictionary<int, OutputId>());
}
