namespace SpecLog;

/// <summary>
/// The positions asked for were trimmed (<c>SpecLogClient.TrimAsync</c>): every record below
/// <see cref="FirstRetainedGsn"/> is gone. Read or subscribe from <see cref="FirstRetainedGsn"/> on.
/// </summary>
[GenerateSerializer, Alias("speclog.LogTrimmedException")]
public sealed class LogTrimmedException : InvalidOperationException
{
    /// <summary>Creates the exception.</summary>
    public LogTrimmedException()
    {
    }

    /// <summary>Creates the exception with a message.</summary>
    public LogTrimmedException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and a cause.</summary>
    public LogTrimmedException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>Creates the exception for a request at <paramref name="requestedGsn"/> (−1 if it named a shard slot only) below <paramref name="firstRetainedGsn"/>.</summary>
    public LogTrimmedException(long requestedGsn, long firstRetainedGsn)
        : base((requestedGsn >= 0 ? $"GSN {requestedGsn} was trimmed" : "The positions asked for were trimmed")
            + $": the log holds records from GSN {firstRetainedGsn} on (everything below it was removed by TrimAsync).")
    {
        RequestedGsn = requestedGsn;
        FirstRetainedGsn = firstRetainedGsn;
    }

    /// <summary>The GSN asked for, or −1.</summary>
    [Id(0)]
    public long RequestedGsn { get; init; } = -1;

    /// <summary>The lowest GSN the log still holds: the trim point.</summary>
    [Id(1)]
    public long FirstRetainedGsn { get; init; }
}
