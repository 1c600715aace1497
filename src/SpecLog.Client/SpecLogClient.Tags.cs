namespace SpecLog.Client;

/// <summary>Tagged appends and filtered subscriptions: a tag is stored with its record and matched at the shards.</summary>
public sealed partial class SpecLogClient
{
    /// <summary>
    /// <see cref="AppendAsync(ReadOnlyMemory{byte}, int?, CancellationToken)"/> with a <paramref name="tag"/> (a user,
    /// a sensor, a topic: 1 to <see cref="RecordTags.MaxBytes"/> UTF-8 bytes) stored with the record, delivered and read
    /// back with it, and matched by filtered subscriptions at the shards.
    /// </summary>
    /// <exception cref="ArgumentException">The record is empty or too large, or the tag is empty or too long.</exception>
    public Task<long> AppendAsync(ReadOnlyMemory<byte> payload, string tag, int? shard = null, CancellationToken cancellationToken = default)
    {
        RecordTags.Check(tag, nameof(tag));
        return AppendCoreAsync(payload, tag, shard, cancellationToken);
    }

    /// <summary>
    /// The records whose tags <paramref name="filter"/> matches, from <paramref name="fromGsn"/>, in GSN order, as
    /// <see cref="SubscribeAsync(long, CancellationToken)"/> delivers the whole log: the shards match the filter and send
    /// the other positions as skipped slots, so a record is delivered as soon as it would be in the whole log's
    /// stream, and only matching records travel. Confirmations cover the whole log's positions.
    /// </summary>
    /// <exception cref="ArgumentException">The filter names no tag or an invalid one.</exception>
    public IAsyncEnumerable<SpecLogEvent> SubscribeAsync(RecordFilter filter, long fromGsn = 0, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(filter);
        filter.Validate();
        return SubscribeCoreAsync(fromGsn, filter, cancellationToken);
    }

    /// <summary>
    /// <see cref="SubscribeUnorderedAsync(long, CancellationToken)"/> restricted to the records <paramref name="filter"/>
    /// matches, filtered at the shards.
    /// </summary>
    /// <exception cref="ArgumentException">The filter names no tag or an invalid one.</exception>
    public IAsyncEnumerable<SpecLogEvent> SubscribeUnorderedAsync(RecordFilter filter, long fromGsn = 0, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(filter);
        filter.Validate();
        return SubscribeUnorderedFromAsync(fromGsn, filter, cancellationToken);
    }
}
