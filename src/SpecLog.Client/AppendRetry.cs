namespace SpecLog.Client;

/// <summary>Which append failures leave the outcome unknown (and so are retried with the same append ids), and the error when retrying ends.</summary>
internal static class AppendRetry
{
    /// <summary>The pause before the first retry; it doubles with each retry of the same records, up to <see cref="MaxBackoff"/>.</summary>
    public static readonly TimeSpan FirstBackoff = TimeSpan.FromMilliseconds(50);

    /// <summary>The longest pause between retries.</summary>
    public static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(1);

    /// <summary>The pause after <paramref name="backoff"/>.</summary>
    public static TimeSpan NextBackoff(TimeSpan backoff) => TimeSpan.FromTicks(Math.Min(MaxBackoff.Ticks, backoff.Ticks * 2));

    /// <summary>The pause before retrying a call that took too long or reached a replica that does not lead: it already waited, or the next try goes elsewhere.</summary>
    public static readonly TimeSpan ReroutePause = TimeSpan.FromMilliseconds(20);

    /// <summary>
    /// How long to pause before retrying after <paramref name="error"/>: <see cref="ReroutePause"/> after a timeout or a
    /// replica that does not lead (looking for a new leader must not slow down as it goes on), otherwise
    /// <paramref name="backoff"/>, which then doubles.
    /// </summary>
    public static TimeSpan Pause(Exception error, ref TimeSpan backoff)
    {
        if (error is ShardNotLeaderException or TimeoutException)
        {
            return ReroutePause;
        }

        var pause = backoff;
        backoff = NextBackoff(backoff);
        return pause;
    }

    /// <summary>The error of a call that got no answer within the call timeout (retryable: its outcome is unknown).</summary>
    public static TimeoutException NoAnswer(int shard, int records, TimeSpan callTimeout) => new(
        $"No answer from shard {shard} to an append of {records} record(s) within {callTimeout.TotalSeconds:0.###} s (SpecLogClientOptions.AppendCallTimeout, or ReplicatedAppendCallTimeout with replicated shards).");

    /// <summary>
    /// True for failures after which the records may or may not be in the log and a retry with the same ids is safe:
    /// no answer in time, a silo or gateway lost mid-call, a shard that stopped before committing, a shard whose node is
    /// down or whose storage cannot be opened (its activation failed: nothing was written), a replica that does not lead
    /// its shard (nothing was written). False for refusals (bad records, unknown shards, a retry too late to
    /// deduplicate), a shard that left or failed, and cancellations.
    /// </summary>
    public static bool IsRetryable(Exception e) => e is AppendOutcomeUnknownException or TimeoutException or ShardNotLeaderException or IOException
        || (e is OrleansException && e is not OrleansConfigurationException);

    /// <summary>The error for records whose retries ran out of time.</summary>
    public static TimeoutException GaveUp(int shard, TimeSpan deadline, Exception last) => new(
        $"Append to shard {shard} not acknowledged within {deadline.TotalSeconds:0.###} s of retries (SpecLogClientOptions.AppendRetryDeadline); "
        + $"its outcome is unknown (retries never write a record twice). Last error: {last.Message}",
        last);
}
