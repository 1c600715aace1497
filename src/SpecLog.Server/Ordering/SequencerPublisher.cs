using SpecLog.FixAnte;

namespace SpecLog.Server.Ordering;

/// <summary>
/// Tells shards what the sequencer state machine decided: committed cut, windows they lack, lag-fix signals and
/// whether anybody waits. Shared by the single sequencer and the Copilot pilots. Notices are one-way and idempotent
/// (a shard keeps the highest cut it has heard of), so sending one twice, or from two pilots, is harmless.
/// </summary>
/// <remarks>
/// Notices carry a state version, <paramref name="versionBase"/> + reports applied, so shards can tell a stale notice
/// (from a pilot executing behind the other) from a newer one. Replicas pass 0: they all reach the same count at the
/// same state, and recover it by re-executing their logs. The single sequencer, which recovers only its windows,
/// passes the time of its activation in µs, larger than any version an earlier activation used.
/// With replicated shards a notice goes to the replica that leads the shard's latest reporting epoch, which the report
/// sequence number names (<see cref="Grains.ShardGrain.LeaderFromReportSeq"/>).
/// </remarks>
internal sealed class SequencerPublisher(int shardCount, IGrainFactory grainFactory, long versionBase = 0, int shardReplicas = 1)
{
    private long[] _sentWindows = new long[shardCount];
    private long[] _sentToEpoch = new long[shardCount];
    private bool[] _retired = new bool[shardCount];
    private long _committedCut = -1;
    private long _committedAtMicros;

    /// <summary>After applying reports or a fallback: notify every shard if the commit, the windows or the waiting flag changed, and shards with a lag-fix.</summary>
    public void Publish(SequencerState state, SequencerOutput output)
    {
        var count = Track(state);
        Span<long> lagTarget = stackalloc long[count];
        foreach (var (shard, target) in output.LagFixes)
        {
            lagTarget[shard] = Math.Max(lagTarget[shard], target);
        }

        if (state.CommittedCut != _committedCut)
        {
            _committedCut = state.CommittedCut;
            _committedAtMicros = SpecLogMetrics.NowMicros();
        }

        var broadcast = output.CommitAdvanced || output.NewWindows.Count > 0 || output.WaitingChanged;
        for (var s = 0; s < count; s++)
        {
            if (_retired[s] && !state.IsDeparted(s))
            {
                _retired[s] = false; // a failed shard rejoined: it follows the log again
            }

            if ((broadcast && !_retired[s]) || lagTarget[s] > 0)
            {
                Notify(state, s, Math.Max(state.KnownWindowsOf(s), _sentWindows[s]), lagTarget[s]);
                _retired[s] = Finished(state, s);
            }
        }
    }

    /// <summary>
    /// A departed shard whose every slot is committed needs no more notices once it was told so (it answers reads and
    /// nothing else); if that notice is lost, its retransmitted report is answered (<see cref="Answer"/>).
    /// </summary>
    private static bool Finished(SequencerState state, int shard) =>
        state.IsDeparted(shard) && state.History.SlotsBeforeCut(shard, state.CommittedCut) >= state.History.KnownSlots(shard);

    /// <summary>Answers one shard with everything it lacks (a retransmitted report means it missed a notice).</summary>
    public void Answer(SequencerState state, int shard)
    {
        Track(state);
        Notify(state, shard, state.KnownWindowsOf(shard), 0);
    }

    /// <summary>Forgets which windows were sent beyond what shards confirmed, so the next publish repeats them (repairs lost notices).</summary>
    public void Rewind(SequencerState state)
    {
        for (var s = 0; s < Track(state); s++)
        {
            _sentWindows[s] = Math.Min(_sentWindows[s], state.KnownWindowsOf(s));
        }
    }

    /// <summary>Follows the shard set as shards join; returns the number of shards to notify.</summary>
    private int Track(SequencerState state)
    {
        if (state.ShardCount > _sentWindows.Length)
        {
            Array.Resize(ref _sentWindows, state.ShardCount);
            Array.Resize(ref _sentToEpoch, state.ShardCount);
            Array.Resize(ref _retired, state.ShardCount);
        }

        return state.ShardCount;
    }

    /// <summary>The decided windows numbered <paramref name="fromWindow"/> and above (none past the last; from the base, with it, when the history was trimmed above that).</summary>
    public static WindowSlice WindowsFrom(SequencerState state, long fromWindow)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(fromWindow);
        return WindowSlice.From(state.History, fromWindow);
    }

    /// <summary>The state machine's status for operators, tests and clients (record size limits come from the options).</summary>
    public static SequencerStatus Describe(SequencerState state, SpecLogOptions options)
    {
        var completed = new long[state.ShardCount];
        for (var s = 0; s < completed.Length; s++)
        {
            completed[s] = state.CompletedCutOf(s);
        }

        var shards = Enumerable.Range(0, state.ShardCount).ToArray();
        return new SequencerStatus(
            state.ShardCount,
            state.CommittedCut,
            state.CommittedGsn,
            state.History.Count,
            state.History.Last,
            state.ReportsApplied,
            state.LagFixesIssued,
            state.LagFixesAcknowledged,
            completed,
            options.Ordering.Mode.ToString(),
            options.MaxRecordSize,
            options.MaxBatchRecords,
            options.EffectiveShardReplicas,
            state.Groundings,
            [.. shards.Where(state.IsGrounded)],
            [.. shards.Where(state.IsDeparted)],
            [.. shards.Where(state.IsJoining)],
            [.. shards.Where(state.IsLeaving)],
            [.. shards.Where(s => state.IsFailing(s) || state.IsFailedOut(s))],
            state.TrimmedBelowGsn,
            options.Replication.Mode.ToString(),
            options.Replication.IsReplicated ? options.Replication.Replicas : 0);
    }

    private void Notify(SequencerState state, int shard, long fromWindow, long lagFixTarget)
    {
        var seq = state.AppliedSeqOf(shard);
        var epoch = seq >> 40;
        if (epoch != _sentToEpoch[shard])
        {
            // A new leader of the shard: what was sent to the old one says nothing about what the new one knows.
            _sentToEpoch[shard] = epoch;
            fromWindow = state.KnownWindowsOf(shard);
        }

        var windows = WindowsFrom(state, fromWindow);
        _sentWindows[shard] = state.History.Count;
        var replica = Grains.ShardGrain.LeaderFromReportSeq(seq, shardReplicas);
        grainFactory.GetGrain<IShardGrain>(ShardKeys.Of(shard, replica))
            .OnCommitted(new CommitNotice(state.CommittedCut, windows.Windows, lagFixTarget, state.AnyWaiting, _committedAtMicros, versionBase + state.ReportsApplied + 1, windows.Base))
            .Ignore();
    }
}
