namespace SpecLog.Client;

/// <summary>Something a subscription tells the application.</summary>
public abstract record SpecLogEvent;

/// <summary>
/// A record delivered speculatively: durable on its shard, at the GSN it will keep unless a mis-speculation notice
/// for that position follows. Compute on it at once; hold external effects until a <see cref="ConfirmedRange"/> covers it.
/// </summary>
public sealed record SpeculativeRecord(long Gsn, int Shard, ReadOnlyMemory<byte> Payload) : SpecLogEvent;

/// <summary>GSNs in [<see cref="FromGsn"/>, <see cref="ToGsn"/>) are committed: their records keep their positions for ever.</summary>
public sealed record ConfirmedRange(long FromGsn, long ToGsn) : SpecLogEvent;

/// <summary>
/// Records delivered speculatively in [<see cref="FromGsn"/>, <see cref="ToGsn"/>) will not stay there (a whole shard
/// failed before its cut was committed): roll back what was computed on them. Produced by the shard-failure handling.
/// </summary>
public sealed record MisSpeculatedRange(long FromGsn, long ToGsn) : SpecLogEvent;

/// <summary>A committed record read back from the log.</summary>
public sealed record LogRecord(long Gsn, int Shard, ReadOnlyMemory<byte> Payload);
