namespace SpecLog.Client;

/// <summary>Something a subscription tells the application.</summary>
public abstract record SpecLogEvent;

/// <summary>
/// A record delivered speculatively: durable on its shard, at the GSN it will keep unless a mis-speculation notice
/// for that position follows. Compute on it at once; hold external effects until a <see cref="ConfirmedRange"/> covers it.
/// <see cref="Tag"/> is the tag it was appended with (null: none).
/// </summary>
public sealed record SpeculativeRecord(long Gsn, int Shard, ReadOnlyMemory<byte> Payload, string? Tag = null) : SpecLogEvent;

/// <summary>GSNs in [<see cref="FromGsn"/>, <see cref="ToGsn"/>) are committed: their records keep their positions for ever.</summary>
public sealed record ConfirmedRange(long FromGsn, long ToGsn) : SpecLogEvent;

/// <summary>
/// Shard <see cref="Shard"/> failed (every replica lost) and its records delivered speculatively at GSNs from
/// <see cref="FromGsn"/> on are not in the log. In a GSN-ordered subscription the range [<see cref="FromGsn"/>,
/// <see cref="ToGsn"/>) is everything delivered from the first lost position on: roll back what was computed on it;
/// the records of the range that stay (other shards') are delivered again right after, in GSN order, then the stream
/// goes on. In an unordered or per-shard subscription the range bounds the failed shard's lost records only (other
/// shards' records are not repeated). Nothing in the range was ever confirmed.
/// </summary>
public sealed record MisSpeculatedRange(long FromGsn, long ToGsn, int Shard = -1) : SpecLogEvent;

/// <summary>A committed record read back from the log.</summary>
public sealed record LogRecord(long Gsn, int Shard, ReadOnlyMemory<byte> Payload, string? Tag = null);
