namespace SpecLog;

/// <summary>
/// The shard failed: every replica was lost (or it stopped answering the ordering layer for
/// <c>SpecLog:ShardFailureTimeout</c>), and the log went on without it. An append that was waiting on it may or may
/// not be in the log: a record the shard had reported durable before it failed keeps its position (readable when a
/// replica's storage returns); a later one is not in the log. <c>SpecLogClient</c> does not send such an append
/// elsewhere by itself (that could write it twice); new appends that name no shard go to the shards that serve.
/// </summary>
[GenerateSerializer, Alias("speclog.ShardFailedException")]
public sealed class ShardFailedException : Exception
{
    /// <summary>Creates the exception.</summary>
    public ShardFailedException()
    {
    }

    /// <summary>Creates the exception with a message.</summary>
    public ShardFailedException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and a cause.</summary>
    public ShardFailedException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>Creates the exception for <paramref name="shard"/>.</summary>
    public ShardFailedException(int shard, Exception? lastError = null)
        : base($"Shard {shard} failed (every replica lost); the log goes on without it. This append may be in the log (if the shard had reported it durable) or not; "
            + "appends that name no shard go to the other shards." + (lastError is null ? "" : $" Last error: {lastError.Message}"), lastError)
    {
        Shard = shard;
    }

    /// <summary>The failed shard.</summary>
    [Id(0)]
    public int Shard { get; init; }
}
