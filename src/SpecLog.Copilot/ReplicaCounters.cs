namespace SpecLog.Copilot;

/// <summary>Running counts of what a replica did, for metrics and for tests that check which protocol paths ran.</summary>
public sealed class ReplicaCounters
{
    /// <summary>Entries this replica proposed as a pilot.</summary>
    public long Proposed { get; internal set; }

    /// <summary>Own proposals committed on the fast path (fast quorum of matching FastAccept replies).</summary>
    public long FastCommits { get; internal set; }

    /// <summary>Own proposals that took the slow path (Accept with the (f+1)-th smallest suggested dependency).</summary>
    public long SlowPaths { get; internal set; }

    /// <summary>Recoveries (Prepare) this replica started: takeovers, retries and view recoveries.</summary>
    public long RecoveriesStarted { get; internal set; }

    /// <summary>Recoveries that found the entry committed.</summary>
    public long RecoveredCommitted { get; internal set; }

    /// <summary>Recoveries that re-proposed a value accepted on the slow path.</summary>
    public long RecoveredAccepted { get; internal set; }

    /// <summary>Recoveries that chose the original value because f replicas besides its proposer fast-accepted it.</summary>
    public long RecoveredOriginal { get; internal set; }

    /// <summary>Recoveries that chose a no-op (nothing accepted, the proposer answered, or too few fast-accepts).</summary>
    public long RecoveredNoOp { get; internal set; }

    /// <summary>Recoveries that hit the ambiguous middle (n ≥ 5) and had to look at the other log.</summary>
    public long Ambiguous { get; internal set; }

    /// <summary>Ambiguous recoveries resolved to the original value (no conflicting entry left).</summary>
    public long AmbiguousOriginal { get; internal set; }

    /// <summary>Ambiguous recoveries resolved to a no-op (a conflicting entry of the other log had committed).</summary>
    public long AmbiguousNoOp { get; internal set; }

    /// <summary>Fast takeovers started because execution waited on uncommitted entries for the takeover timeout.</summary>
    public long Takeovers { get; internal set; }

    /// <summary>Proposals preempted by a higher ballot.</summary>
    public long Preemptions { get; internal set; }

    /// <summary>Entries executed ahead of an uncommitted dependency through null-dependency elimination.</summary>
    public long NullDependencySkips { get; internal set; }

    /// <summary>Entries executed first in a dependency cycle (log 0 before log 1).</summary>
    public long CycleBreaks { get; internal set; }

    /// <summary>Candidacies this replica started.</summary>
    public long Candidacies { get; internal set; }

    /// <summary>Times this replica became a pilot through a view change.</summary>
    public long ViewsWon { get; internal set; }

    /// <summary>Entries whose acceptor state <see cref="Replica{T}.Compact()"/> dropped.</summary>
    public long SlotsCompacted { get; internal set; }

    /// <summary>
    /// Proposals or recovery queries refused (conservatively) because the compatibility check would have needed compacted
    /// entries; 0 unless the compaction watermark rule is broken.
    /// </summary>
    public long CompactedConflictRefusals { get; internal set; }

    /// <summary>FastAccepts, Accepts and Prepares a rebuilt replica left unanswered (or answered with the commit) at or below its floor.</summary>
    public long Abstentions { get; internal set; }
}
