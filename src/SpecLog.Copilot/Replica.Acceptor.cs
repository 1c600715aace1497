using System.Collections.Immutable;

namespace SpecLog.Copilot;

public sealed partial class Replica<T>
{
    private Ballot EffectivePromise(int log, SlotState? s) =>
        s is null ? _logs[log].ViewPromise : Ballot.Max(_logs[log].ViewPromise, s.Promised);

    private void NoteKnown(int log, long slot)
    {
        if (slot > _logs[log].MaxKnown)
        {
            _logs[log].MaxKnown = slot;
        }
    }

    private void OnFastAccept(int from, FastAccept<T> m)
    {
        NoteRound(m.Ballot);
        var state = _logs[m.Log];
        if (m.Ballot == state.ViewPromise && from == m.Ballot.Replica)
        {
            _pilotHeard[m.Log] = _now;
            if (m.Slot > _lastOtherFastAccept[m.Log])
            {
                // Ping-pong batching: the other pilot's FastAccept closes this pilot's batch. If it did not see this
                // pilot's latest proposal, the two crossed (each depends on something older than the other): were both
                // to take that as their turn, their next proposals would cross again, for ever. Only log 0's pilot
                // takes it; log 1's waits for a FastAccept that depends on its latest, which restores alternation.
                _lastOtherFastAccept[m.Log] = m.Slot;
                if (from != Id && _pilots[1 - m.Log] is { } mine)
                {
                    mine.HeardOther = true;
                    if (mine.Log == 0 || m.Value.Dep >= mine.LastProposed)
                    {
                        mine.MyTurn = true;
                    }

                    if (m.Value.Dep > mine.HighestAnswered)
                    {
                        // Adaptive ping-pong: how long the other pilot took to answer a proposal of this pilot (the
                        // newest its entry depends on) decides whether this pilot's batches wait for its turns: an
                        // answer within the wait means it keeps pace; one after two waits (or to a proposal so old it
                        // is forgotten), that waiting for it costs more than alternation buys. (One wait late is left
                        // alone: on a loaded host healthy turns sometimes take that long, and not waiting then
                        // makes the pilots cross.)
                        mine.HighestAnswered = m.Value.Dep;
                        var lag = mine.ProposedAt(m.Value.Dep) is { } at ? _now - at : long.MaxValue;
                        if (lag <= _options.PingPongWait)
                        {
                            mine.OtherLate = false;
                            mine.SilentWaits = 0;
                        }
                        else if (lag > 2 * _options.PingPongWait)
                        {
                            mine.OtherLate = true;
                        }
                    }
                }
            }
        }

        var s = state.GetOrAdd(m.Slot);
        if (AnsweredCommittedOrStale(from, m.Log, m.Slot, m.Ballot, state, s))
        {
            return;
        }

        if (s.Status != SlotStatus.Empty && s.AcceptedBallot == m.Ballot)
        {
            // Duplicate: answer exactly as the first time (the order of first processing is what the slow path relies on).
            if (s.Status == SlotStatus.FastAccepted)
            {
                Send(from, new FastAcceptReply<T>(m.Log, m.Slot, m.Ballot, s.FastOk, s.ReplyDep));
            }

            return;
        }

        var (ok, dep) = CompatibilityCheck(m.Log, m.Slot, m.Value);
        s.Promised = Ballot.Max(s.Promised, m.Ballot);
        s.Status = SlotStatus.FastAccepted;
        s.AcceptedBallot = m.Ballot;
        s.Value = m.Value;
        s.FastOk = ok;
        s.ReplyDep = dep;
        if (!m.Value.IsNoOp)
        {
            s.CompatDep = Math.Min(s.CompatDep, m.Value.Dep);
        }

        NoteKnown(m.Log, m.Slot);
        PersistSlot(m.Log, m.Slot, s);
        Send(from, new FastAcceptReply<T>(m.Log, m.Slot, m.Ballot, ok, dep));
    }

    /// <summary>
    /// Copilot's compatibility check for entry <paramref name="slot"/> of <paramref name="log"/> depending on entry
    /// <c>value.Dep</c> of the other log: it conflicts only if this replica holds a later entry k &gt; dep of the other
    /// log whose dependency lies before <paramref name="slot"/>. Then the answer is the latest other-log entry seen.
    /// </summary>
    private (bool Ok, long Dep) CompatibilityCheck(int log, long slot, EntryValue<T> value)
    {
        if (value.IsNoOp || !_copilotMode)
        {
            return (true, value.Dep);
        }

        var other = _logs[1 - log];
        if (value.Dep < other.Base - 1)
        {
            // Compacted entries of the other log lie above the dependency and their dependencies are gone: refuse
            // (always safe: the slow path then uses a later dependency). SafeCompactionPoint makes this unreachable, as
            // an entry proposed with so old a dependency is committed here and answered with its Commit instead.
            Counters.CompactedConflictRefusals++;
            return (false, other.MaxKnown);
        }

        for (var k = other.MaxKnown; k > value.Dep; k--)
        {
            if ((other.Get(k) is { Exists: true } y && y.EffectiveCompat < slot) || UnknownAbstained(1 - log, k))
            {
                return (false, other.MaxKnown);
            }
        }

        return (true, value.Dep);
    }

    // An entry already committed answers with its Commit; a ballot below the entry's promise gets a Reject.
    // Returns true when the proposal was answered that way and must not be handled further.
    private bool AnsweredCommittedOrStale(int from, int log, long slot, Ballot ballot, LogState state, SlotState s)
    {
        if (s.IsCommitted)
        {
            Send(from, new Commit<T>(log, slot, s.Value!));
            return true;
        }

        if (ballot < EffectivePromise(log, s))
        {
            Send(from, new Reject<T>(log, slot, ballot, s.Promised, state.ViewPromise));
            return true;
        }

        return false;
    }

    private void OnAccept(int from, Accept<T> m)
    {
        NoteRound(m.Ballot);
        var state = _logs[m.Log];
        var s = state.GetOrAdd(m.Slot);
        if (AnsweredCommittedOrStale(from, m.Log, m.Slot, m.Ballot, state, s))
        {
            return;
        }

        if (!(s.Status == SlotStatus.Accepted && s.AcceptedBallot == m.Ballot))
        {
            s.Promised = Ballot.Max(s.Promised, m.Ballot);
            s.Status = SlotStatus.Accepted;
            s.AcceptedBallot = m.Ballot;
            s.Value = m.Value;
            if (!m.Value.IsNoOp)
            {
                s.CompatDep = Math.Min(s.CompatDep, m.Value.Dep);
            }

            NoteKnown(m.Log, m.Slot);
            PersistSlot(m.Log, m.Slot, s);
        }

        Send(from, new AcceptReply<T>(m.Log, m.Slot, m.Ballot));
    }

    private void OnPrepare(int from, Prepare<T> m)
    {
        NoteRound(m.Ballot);
        var state = _logs[m.Log];
        var s = state.GetOrAdd(m.Slot);
        if (!s.IsCommitted)
        {
            if (m.Ballot < EffectivePromise(m.Log, s))
            {
                Send(from, new Reject<T>(m.Log, m.Slot, m.Ballot, s.Promised, state.ViewPromise));
                return;
            }

            var changed = false;
            if (m.Ballot > s.Promised)
            {
                s.Promised = m.Ballot;
                changed = true;
            }

            if (!s.Guarded)
            {
                // Recovery guard: from now on this entry counts as present with an unknown (lowest) dependency, so
                // this replica refuses every later FastAccept of the other log that could conflict with it.
                s.Guarded = true;
                s.CompatDep = -1;
                changed = true;
            }

            NoteKnown(m.Log, m.Slot);
            if (changed)
            {
                PersistSlot(m.Log, m.Slot, s);
            }
        }

        var complete = m.HintDep is not null || s.Status == SlotStatus.FastAccepted;
        var above = m.HintDep ?? (s.Status == SlotStatus.FastAccepted ? s.Value!.Dep : -1);
        if (complete && _copilotMode && !s.IsCommitted && above < _logs[1 - m.Log].Base - 1)
        {
            // Compacted entries of the other log lie above the dependency and cannot be listed: say the list is
            // incomplete (the recoverer then waits rather than decide). Unreachable, as in CompatibilityCheck.
            Counters.CompactedConflictRefusals++;
            complete = false;
        }

        var conflicts = complete && !s.IsCommitted ? CollectConflicts(m.Log, m.Slot, above) : [];
        Send(from, new PrepareReply<T>(m.Log, m.Slot, m.Ballot, Snapshot(s), above, complete, conflicts));
    }

    /// <summary>Entries of the other log above <paramref name="above"/> whose dependency may lie before <paramref name="slot"/>.</summary>
    private ImmutableArray<ConflictReport> CollectConflicts(int log, long slot, long above)
    {
        if (!_copilotMode)
        {
            return [];
        }

        var other = _logs[1 - log];
        ImmutableArray<ConflictReport>.Builder? list = null;
        for (var k = other.MaxKnown; k > above; k--)
        {
            if (other.Get(k) is { Exists: true } y && y.EffectiveCompat < slot)
            {
                (list ??= ImmutableArray.CreateBuilder<ConflictReport>()).Add(new ConflictReport(k, y.IsCommitted, y.EffectiveCompat));
            }
            else if (UnknownAbstained(1 - log, k))
            {
                // A rebuilt replica's lost self may have seen it with any dependency: report it as under a guard.
                (list ??= ImmutableArray.CreateBuilder<ConflictReport>()).Add(new ConflictReport(k, false, -1));
            }
        }

        return list?.ToImmutable() ?? [];
    }

    private void OnViewPrepare(int from, ViewPrepare<T> m)
    {
        NoteRound(m.Ballot);
        var state = _logs[m.Log];
        var ok = m.Ballot == state.ViewPromise;
        if (!ok && m.Ballot > state.ViewPromise && LeaseExpired(m.Log, from))
        {
            state.ViewPromise = m.Ballot;
            _fx.Add(new PersistEffect<T>(new ViewPromiseRecord<T>(m.Log, m.Ballot)));
            _pilotHeard[m.Log] = _now;
            CheckDeposed(m.Log);
            ok = true;
        }

        Send(from, new ViewPrepareReply<T>(m.Log, m.Ballot, ok, state.ViewPromise, state.MaxKnown));
    }

    /// <summary>
    /// Whether this replica lets a candidate replace the current owner of the log's view: only when it has not heard
    /// from the owner acting as pilot for an election timeout (so a partitioned replica cannot depose a live pilot).
    /// </summary>
    private bool LeaseExpired(int log, int candidate)
    {
        var owner = _logs[log].ViewPromise.Replica;
        if (owner == candidate || candidate == Id)
        {
            return true;
        }

        if (_candidacies[log] is { } mine && _now - mine.StartedAt < _options.ElectionTimeout)
        {
            return false; // our own candidacy is young: let it finish rather than duel
        }

        if (owner == Id)
        {
            return _pilots[log] is null;
        }

        return _now - _pilotHeard[log] >= _options.ElectionTimeout;
    }

    private void OnCommitAck(int from, CommitAck<T> m)
    {
        if (_proposals.TryGetValue((m.Log, m.Slot), out var p) && p.Phase == Phase.Committed)
        {
            p.Acks.Add(from);
            if (p.Acks.Count >= _n)
            {
                _proposals.Remove((m.Log, m.Slot));
            }
        }
    }

    /// <summary>Records a commit (idempotent), then lets the executor and waiting recoveries move on.</summary>
    private void LearnCommit(int log, long slot, EntryValue<T> value)
    {
        var state = _logs[log];
        var s = state.GetOrAdd(slot);
        if (_proposals.TryGetValue((log, slot), out var p) && p.Phase != Phase.Committed)
        {
            _proposals.Remove((log, slot));
        }

        if (s.IsCommitted)
        {
            if (!s.Value!.SameAs(value))
            {
                throw new InvalidOperationException(
                    $"Replica {Id}: two different values committed for log {log} entry {slot}: {s.Value} and {value}.");
            }

            return;
        }

        s.Status = SlotStatus.Committed;
        s.Value = value;
        NoteKnown(log, slot);
        PersistSlot(log, slot, s);
        state.MaxCommitted = Math.Max(state.MaxCommitted, slot);
        while (state.Get(state.CommittedPrefix) is { IsCommitted: true })
        {
            state.CommittedPrefix++;
        }

        _fx.Add(new CommittedEffect<T>(log, slot, value));

        if (_pilots[log] is { } pilot && pilot.InFlight.Remove(slot, out var ids))
        {
            foreach (var id in ids)
            {
                pilot.Pending.Remove(id);
            }
        }

        _conflictsChanged = true;
        RunExecutor();
    }
}
