namespace SpecLog.Consumer;

/// <summary>Takes a consumer's confirmed outputs, in release order (GSN, then index), each once.</summary>
public interface IOutputSink<TOutput>
{
    /// <summary>
    /// Takes <paramref name="outputs"/>: every record that produced one is confirmed. The consumer waits for this before
    /// it goes on, and counts the outputs as released once it returns (a checkpoint saved after it never releases them
    /// again). Throwing stops the consumer.
    /// </summary>
    ValueTask ReleaseAsync(IReadOnlyList<ReleasedOutput<TOutput>> outputs, CancellationToken cancellationToken);
}

/// <summary>
/// A sink that remembers the last output it took from each shard's records, so that a consumer restarted after a crash
/// (which may re-derive outputs released after its last checkpoint) releases each output exactly once: it skips
/// everything up to what the sink already holds.
/// </summary>
public interface IResumableOutputSink<TOutput> : IOutputSink<TOutput>
{
    /// <summary>Per shard, the identity of the last output taken from that shard's records; shards it never took from are absent.</summary>
    ValueTask<IReadOnlyDictionary<int, OutputId>> GetLastReleasedAsync(CancellationToken cancellationToken);
}

/// <summary>An output's identity: the GSN of the record that produced it and its index among that record's outputs.</summary>
public readonly record struct OutputId(long Gsn, int Index) : IComparable<OutputId>
{
    /// <inheritdoc />
    public int CompareTo(OutputId other) => Gsn != other.Gsn ? Gsn.CompareTo(other.Gsn) : Index.CompareTo(other.Index);
}
