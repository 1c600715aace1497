namespace SpecLog.Copilot;

public sealed partial class Replica<T>
{
    /// <summary>
    /// Starts recovering one entry at once (Prepare at a fresh ballot). Replicas do this on their own when a takeover
    /// or view change needs it; hosts and tests may call it to force a takeover.
    /// </summary>
    public void StartRecovery(int log, long slot, long now, List<Effect<T>> effects)
    {
        if (!ValidLog(log) || !ValidSlot(slot))
        {
            throw new ArgumentOutOfRangeException(nameof(slot), $"No entry {slot} in log {log}.");
        }

        Begin(now, effects);
        var attempts = _proposals.TryGetValue((log, slot), out var p) ? p.Attempts : 0;
        StartRecovery(log, slot, attempts, ProposalKind.Recovery);
        Finish();
    }

    private void StartRecovery(int log, long slot, int attempts, ProposalKind kind, Ballot? ballot = null)
    {
        var s = _logs[log].Get(slot);
        if (s is { IsCommitted: true } || slot < _logs[log].Base)
        {
            // Committed here, or compacted (committed everywhere): nothing to recover. A compacted entry has no state
            // here, so without this test its "empty" look could start a recovery that ends in a no-op.
            return;
        }

        long? hint = s is { Status: SlotStatus.FastAccepted } ? s.Value!.Dep : null;
        Counters.RecoveriesStarted++;
        var p = new Proposal(log, slot, ballot ?? NewBallot(), kind, Phase.Prepare)
        {
            Attempts = attempts,
            Hint = hint,
            Started = _now,
            NextSend = _now + _options.RetransmitInterval,
        };
        _proposals[(log, slot)] = p;
        Arm(p);
        SendAll(new Prepare<T>(log, slot, p.Ballot, hint));
    }

    private void OnPrepareReply(int from, PrepareReply<T> m)
    {
        NoteRound(m.State.AcceptedBallot);
        if (IsMyView(m.Log, m.Ballot))
        {
            // A view recovery at the view ballot: the answering replica, still within our view, now knows the entry.
            NoteAnchor(m.Log, m.Ballot, from, m.Slot);
        }

        if (TryGetProposal(m.Log, m.Slot, m.Ballot, Phase.Prepare, out var p))
        {
            // A later answer (to a re-query with a better hint, or after a commit) replaces the earlier one.
            p.PrepareReplies[from] = m;
            EvaluateRecovery(p);
        }
    }

    /// <summary>
    /// Decides the value of an entry from the Prepare answers (Copilot's recovery rules):
    /// committed anywhere → commit it; accepted (slow path) at the highest ballot → re-propose that value; otherwise
    /// count the replicas that fast-accepted the original with its proposed dependency, NOT counting the proposing
    /// pilot itself: ≥ f → original; the proposer answered, or fewer than the fast-quorum intersection → no-op; the
    /// ambiguous middle (n ≥ 5) looks at the possibly conflicting entries of the other log.
    /// </summary>
    private void EvaluateRecovery(Proposal p)
    {
        if (p.Phase != Phase.Prepare)
        {
            return;
        }

        var replies = p.PrepareReplies;
        foreach (var r in replies.Values)
        {
            if (r.State.Status == SlotStatus.Committed)
            {
                Counters.RecoveredCommitted++;
                CommitProposal(p, r.State.Value!);
                return;
            }
        }

        if (replies.Count < _slowQuorum)
        {
            return;
        }

        var top = Ballot.None;
        foreach (var r in replies.Values)
        {
            if (r.State.Status is SlotStatus.FastAccepted or SlotStatus.Accepted && r.State.AcceptedBallot > top)
            {
                top = r.State.AcceptedBallot;
            }
        }

        if (top.IsNone)
        {
            // Nobody in a majority accepted anything: it cannot have been chosen.
            Counters.RecoveredNoOp++;
            StartAccept(p, EntryValue<T>.NoOp);
            return;
        }

        EntryValue<T>? original = null;
        var votes = 0;
        foreach (var (replica, r) in replies)
        {
            if (r.State.AcceptedBallot != top)
            {
                continue;
            }

            if (r.State.Status == SlotStatus.Accepted)
            {
                Counters.RecoveredAccepted++;
                StartAccept(p, r.State.Value!);
                return;
            }

            if (r.State.Status == SlotStatus.FastAccepted)
            {
                original ??= r.State.Value;
                if (r.State.FastOk && replica != top.Replica)
                {
                    votes++;
                }
            }
        }

        if (votes >= _f)
        {
            // f replicas plus the proposer form a majority that accepted the original with its dependency.
            Counters.RecoveredOriginal++;
            StartAccept(p, original!);
            return;
        }

        if (replies.ContainsKey(top.Replica))
        {
            // The proposer itself answered: it had not committed, and having promised our ballot it never will.
            Counters.RecoveredNoOp++;
            StartAccept(p, EntryValue<T>.NoOp);
            return;
        }

        // If the original was committed on the fast path, at least this many of its fast quorum answered us.
        var threshold = Math.Max(1, _fastQuorum - _n + replies.Count);
        if (votes < threshold)
        {
            Counters.RecoveredNoOp++;
            StartAccept(p, EntryValue<T>.NoOp);
            return;
        }

        if (p.ConflictSlots is null)
        {
            Counters.Ambiguous++;
        }

        ResolveAmbiguous(p, original!);
    }

    /// <summary>
    /// The ambiguous middle: the original may have been committed on the fast path (then it must be chosen), or a
    /// conflicting entry of the other log may have committed instead (then choosing it would break compatibility).
    /// Every answer lists the other log's entries above the original dependency whose dependency may lie before this
    /// entry; thanks to the recovery guard each answering replica refuses later conflicting FastAccepts, so any
    /// conflicting entry that can still commit is in some list. If one is committed with a dependency before this
    /// entry, the original was not chosen (committed pairs are compatible): no-op. If none is left, the original is
    /// safe. Otherwise wait until they commit, recovering them too if they stay uncommitted.
    /// </summary>
    private void ResolveAmbiguous(Proposal p, EntryValue<T> original)
    {
        var d0 = original.Dep;
        var stale = false;
        foreach (var (replica, r) in p.PrepareReplies)
        {
            if (!r.ConflictsComplete || r.ConflictsAbove > d0)
            {
                stale = true;
                if (p.Hint != d0 || p.ConflictSlots is null)
                {
                    Send(replica, new Prepare<T>(p.Log, p.Slot, p.Ballot, d0));
                }
            }
        }

        p.Hint = d0;
        if (stale)
        {
            WaitOnConflicts(p, []);
            return;
        }

        var other = _logs[1 - p.Log];
        var reported = new Dictionary<long, long?>();
        foreach (var r in p.PrepareReplies.Values)
        {
            foreach (var c in r.Conflicts)
            {
                if (c.Slot <= d0)
                {
                    continue;
                }

                if (c.Committed)
                {
                    reported[c.Slot] = c.Dep;
                }
                else
                {
                    reported.TryAdd(c.Slot, null);
                }
            }
        }

        var pending = new List<long>();
        foreach (var (slot, committedDep) in reported)
        {
            if (slot < other.Base)
            {
                // Cannot happen (see SafeCompactionPoint: an entry whose original dependency lies below the other
                // log's base is committed here, so it is never recovered); should it, its value is unknown: wait.
                pending.Add(slot);
                continue;
            }

            if (other.Get(slot) is { IsCommitted: true } known)
            {
                if (!known.Value!.IsNoOp && known.Value.Dep < p.Slot)
                {
                    Counters.AmbiguousNoOp++;
                    StartAccept(p, EntryValue<T>.NoOp);
                    return;
                }

                continue;
            }

            if (committedDep is not null)
            {
                Counters.AmbiguousNoOp++;
                StartAccept(p, EntryValue<T>.NoOp);
                return;
            }

            pending.Add(slot);
        }

        if (pending.Count == 0)
        {
            Counters.AmbiguousOriginal++;
            StartAccept(p, original);
            return;
        }

        WaitOnConflicts(p, pending);
    }

    private void WaitOnConflicts(Proposal p, List<long> pending)
    {
        if (p.ConflictSlots is null)
        {
            p.ConflictWaitSince = _now;
        }

        p.ConflictSlots = pending;
        Arm(p);
    }
}
