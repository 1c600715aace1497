namespace SpecLog.Client;

/// <summary>
/// A client could not reach any silo of the log within <see cref="SpecLogClientOptions.ConnectTimeout"/>: no silo is
/// running, the gateway address or the cluster id is wrong, or the membership table cannot be read.
/// </summary>
public sealed class SpecLogUnavailableException : Exception
{
    /// <summary>Creates the exception.</summary>
    public SpecLogUnavailableException()
    {
    }

    /// <summary>Creates the exception with a message.</summary>
    public SpecLogUnavailableException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and the last connection error.</summary>
    public SpecLogUnavailableException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
