namespace SpecLog;

/// <summary>
/// An append's records reached a shard that stopped (deactivated, failed storage, lost its silo) before they were
/// committed: they may or may not be in the log. Retrying them with the same client id and sequence numbers
/// (<c>IShardGrain.AppendIdentifiedAsync</c>, as <c>SpecLogClient</c> does) is safe: the shard returns the original
/// GSNs of any it holds.
/// </summary>
[GenerateSerializer, Alias("speclog.AppendOutcomeUnknownException")]
public sealed class AppendOutcomeUnknownException : Exception
{
    /// <summary>Creates the exception.</summary>
    public AppendOutcomeUnknownException()
    {
    }

    /// <summary>Creates the exception with a message.</summary>
    public AppendOutcomeUnknownException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and a cause.</summary>
    public AppendOutcomeUnknownException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
