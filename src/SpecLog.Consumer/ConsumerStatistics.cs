namespace SpecLog.Consumer;

/// <summary>What a consumer has done so far; thread-safe to read while it runs.</summary>
public sealed class ConsumerStatistics
{
    private long _applied;
    private long _released;
    private long _rollbacks;
    private long _undone;
    private long _discarded;
    private long _checkpoints;
    private long _failedCheckpoints;
    private long _confirmedThrough;
    private RollbackNotice? _lastRollback;

    /// <summary>Records applied for the first time (re-applications by rollbacks not counted).</summary>
    public long Applied => Interlocked.Read(ref _applied);

    /// <summary>Outputs handed to the sink.</summary>
    public long Released => Interlocked.Read(ref _released);

    /// <summary>Rollbacks (mis-speculations that reached applied records or none).</summary>
    public long Rollbacks => Interlocked.Read(ref _rollbacks);

    /// <summary>Applied records undone by rollbacks.</summary>
    public long UndoneRecords => Interlocked.Read(ref _undone);

    /// <summary>Held outputs dropped by rollbacks (never released).</summary>
    public long DiscardedOutputs => Interlocked.Read(ref _discarded);

    /// <summary>Checkpoints saved.</summary>
    public long Checkpoints => Interlocked.Read(ref _checkpoints);

    /// <summary>Checkpoints that failed (their silo died, or no answer): the consumer went on and saved again later.</summary>
    public long FailedCheckpoints => Interlocked.Read(ref _failedCheckpoints);

    /// <summary>The log's confirmed prefix as last seen.</summary>
    public long ConfirmedThrough => Interlocked.Read(ref _confirmedThrough);

    /// <summary>The last rollback, if any.</summary>
    public RollbackNotice? LastRollback => Volatile.Read(ref _lastRollback);

    internal void AddApplied() => Interlocked.Increment(ref _applied);

    internal void AddReleased(int count) => Interlocked.Add(ref _released, count);

    internal void AddCheckpoint() => Interlocked.Increment(ref _checkpoints);

    internal void AddFailedCheckpoint() => Interlocked.Increment(ref _failedCheckpoints);

    internal void SetConfirmedThrough(long gsn) => Interlocked.Exchange(ref _confirmedThrough, gsn);

    internal void AddRollback(RollbackNotice notice)
    {
        Interlocked.Increment(ref _rollbacks);
        Interlocked.Add(ref _undone, notice.UndoneRecords);
        Interlocked.Add(ref _discarded, notice.DiscardedOutputs);
        Volatile.Write(ref _lastRollback, notice);
    }
}
