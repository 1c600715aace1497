namespace SpecLog.Client;

/// <summary>Which append failures leave the outcome unknown (and so are retried with the same append ids), and the error when retrying ends.</summary>
internal static class AppendRetry
{
    /// <summary>
    /// True for failures after which the records may or may not be in the log and a retry with the same ids is safe:
    /// no answer in time, a silo or gateway lost mid-call, a shard that stopped before committing, a shard whose node is
    /// down. False for refusals (bad records, unknown shards, a retry too late to deduplicate) and cancellations.
    /// </summary>
    public static bool IsRetryable(Exception e) => e is AppendOutcomeUnknownException or TimeoutException
        || (e is OrleansException && e is not OrleansConfigurationException);

    /// <summary>The error for records whose retries ran out of time.</summary>
    public static TimeoutException GaveUp(int shard, TimeSpan deadline, Exception last) => new(
        $"Append to shard {shard} not acknowledged within {deadline.TotalSeconds:0.###} s of retries (SpecLogClientOptions.AppendRetryDeadline); "
        + $"its outcome is unknown (retries never write a record twice). Last error: {last.Message}",
        last);
}
