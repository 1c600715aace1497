namespace SpecLog;

/// <summary>
/// Thrown back to a shard by a subscriber whose consumer stopped reading (its buffer of pushes stayed full): the shard
/// drops the subscription instead of holding a push, and the subscriber registers again from its own position once
/// its consumer reads. Neither side holds more than its bounded buffer meanwhile.
/// </summary>
[GenerateSerializer, Alias("speclog.SubscriberStalledException")]
public sealed class SubscriberStalledException : Exception
{
    /// <summary>Creates the exception.</summary>
    public SubscriberStalledException()
    {
    }

    /// <summary>Creates the exception with a message.</summary>
    public SubscriberStalledException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and a cause.</summary>
    public SubscriberStalledException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
