namespace SpecLog.Copilot;

public sealed partial class Replica<T>
{
    /// <summary>A view change in progress: this replica is trying to become pilot of one log.</summary>
    private sealed class Candidacy(Ballot ballot, long startedAt)
    {
        public Ballot Ballot { get; } = ballot;

        public long StartedAt { get; } = startedAt;

        public long NextSend { get; set; }

        public Dictionary<int, ViewPrepareReply<T>> Replies { get; } = [];

        /// <summary>Replicas that refused the view (they still hear their pilot, or promised a higher view).</summary>
        public HashSet<int> Refusals { get; } = [];

        public bool Recovering { get; set; }

        /// <summary>First entry not yet known committed in the recovery range.</summary>
        public long From { get; set; }

        /// <summary>Last entry of the recovery range: W + 1 past the highest entry any answering replica had seen.</summary>
        public long To { get; set; }
    }

    private const int MaxParallelRecoveries = 64;

    private long ElectionDeadline(int log)
    {
        if ((!_copilotMode && log == 1) || _candidacies[log] is not null)
        {
            return long.MaxValue;
        }

        var owner = _logs[log].ViewPromise.Replica;
        if (owner == Id)
        {
            // The view is ours but we are not its pilot (a candidacy cut short by a crash or a timeout): try again.
            return _pilots[log] is null ? Math.Max(_now, _electionRetryAt[log]) : long.MaxValue;
        }

        var deadline = _pilotHeard[log] + _options.ElectionTimeout + ElectionRank(log, owner) * (_options.ElectionTimeout / 2)
            + _electionJitter[log];
        return Math.Max(deadline, _electionRetryAt[log]);
    }

    /// <summary>Staggers candidates: replicas after the failed pilot in id order first, the other log's pilot last.</summary>
    private int ElectionRank(int log, int owner)
    {
        var otherPilot = _copilotMode ? _logs[1 - log].ViewPromise.Replica : -1;
        var rank = 0;
        for (var step = 1; step < _n; step++)
        {
            var r = (owner + step) % _n;
            if (r == otherPilot)
            {
                continue;
            }

            if (r == Id)
            {
                return rank;
            }

            rank++;
        }

        return rank;
    }

    private void CheckElection(int log)
    {
        if (_now < ElectionDeadline(log))
        {
            return;
        }

        Counters.Candidacies++;
        var c = new Candidacy(NewBallot(), _now) { NextSend = _now + _options.RetransmitInterval };
        _candidacies[log] = c;

        // Ask the others first; this replica promises its own ballot only once they make a majority with it
        // (PromiseSelf). A candidate whose pilot is in fact alive (it was paused, or restarted, and timed out before
        // hearing a heartbeat) is refused by replicas that still hear that pilot; had it promised its ballot already,
        // it would stay promised to a view that never forms, deaf to the live pilot's heartbeats (lower ballots) and
        // naming itself pilot to every shard that asked it, for as long as that pilot lived.
        _fx.Add(new BroadcastEffect<T>(new ViewPrepare<T>(log, c.Ballot)));
    }

    /// <summary>
    /// The candidate's own promise, taken when the others' promises and its own make a majority. It is an acceptor's
    /// ordinary promise, made later: anything this replica accepted under the old view until now is in its reply.
    /// </summary>
    private bool PromiseSelf(int log, Candidacy c)
    {
        if (_logs[log].ViewPromise >= c.Ballot)
        {
            AbortCandidacy(log);
            return false;
        }

        _logs[log].ViewPromise = c.Ballot;
        _fx.Add(new PersistEffect<T>(new ViewPromiseRecord<T>(log, c.Ballot)));
        c.Replies[Id] = new ViewPrepareReply<T>(log, c.Ballot, true, c.Ballot, _logs[log].MaxKnown);
        return true;
    }

    private void OnViewPrepareReply(int from, ViewPrepareReply<T> m)
    {
        NoteRound(m.Promised);
        if (_candidacies[m.Log] is not { } c || c.Ballot != m.Ballot)
        {
            return;
        }

        if (!m.Ok)
        {
            // A higher promise, or too many replicas that still hear their pilot for a majority to be left: give up
            // now (the backoff spaces the next try; the live pilot's heartbeats usually make it unnecessary).
            c.Refusals.Add(from);
            if (m.Promised > c.Ballot || (!c.Recovering && c.Refusals.Count > _n - _slowQuorum))
            {
                AbortCandidacy(m.Log);
            }

            return;
        }

        c.Replies[from] = m;
        if (!c.Recovering && c.Replies.Count + 1 >= _slowQuorum) // the others, and this replica once it promises
        {
            if (!PromiseSelf(m.Log, c))
            {
                return;
            }

            // A majority promised the view: the old pilot can no longer commit anything new. Every entry it may have
            // proposed lies below the highest entry a majority has seen plus the pipeline window; recover them all.
            c.Recovering = true;
            c.From = _logs[m.Log].CommittedPrefix;
            c.To = c.Replies.Values.Max(r => r.MaxSlot) + _options.PipelineWindow + 1;
            CheckCandidacy(m.Log);
        }
    }

    private void CheckCandidacy(int log)
    {
        if (_candidacies[log] is not { } c)
        {
            return;
        }

        // Before its own promise the candidate stays in the current view; a higher promise (another candidate's)
        // ends the candidacy either way.
        if (c.Recovering ? _logs[log].ViewPromise != c.Ballot : _logs[log].ViewPromise > c.Ballot)
        {
            AbortCandidacy(log);
            return;
        }

        if (!c.Recovering)
        {
            if (_now >= c.StartedAt + _options.ElectionTimeout)
            {
                AbortCandidacy(log);
            }
            else if (_now >= c.NextSend)
            {
                c.NextSend = _now + _options.RetransmitInterval;
                Resend(c.Replies.Keys, new ViewPrepare<T>(log, c.Ballot));
            }

            return;
        }

        var state = _logs[log];
        while (c.From <= c.To && (c.From < state.Base || state.Get(c.From) is { IsCommitted: true }))
        {
            c.From++;
        }

        if (c.From > c.To)
        {
            Activate(log, c);
            return;
        }

        var active = 0;
        for (var slot = c.From; slot <= c.To; slot++)
        {
            if (slot < state.Base || state.Get(slot) is { IsCommitted: true })
            {
                continue;
            }

            if (_proposals.ContainsKey((log, slot)))
            {
                active++;
            }
            else if (active < MaxParallelRecoveries)
            {
                StartRecovery(log, slot, 0, ProposalKind.ViewRecovery, c.Ballot);
                active++;
            }
        }

        c.NextSend = _now + _options.RetransmitInterval;
    }

    private void Activate(int log, Candidacy c)
    {
        _candidacies[log] = null;
        _electionAttempts[log] = 0;
        Counters.ViewsWon++;
        var pilot = new PilotState(log, c.Ballot, Math.Max(c.To + 1, _logs[log].MaxKnown + 1)) { MyTurn = log == 0 };
        _pilots[log] = pilot;
        _pilotHeard[log] = _now;
        _activated[log] = c.Ballot;
        _fx.Add(new PersistEffect<T>(new PilotRecord<T>(log, c.Ballot)));
        _fx.Add(new PilotChangedEffect<T>(log, true, c.Ballot));
        SendHeartbeat();
    }

    private void AbortCandidacy(int log)
    {
        _candidacies[log] = null;

        // Recoveries already under way are finished anyway: they guard their entries, which must not stay open.
        foreach (var p in _proposals.Values)
        {
            if (p.Kind == ProposalKind.ViewRecovery && p.Log == log)
            {
                p.Kind = ProposalKind.Recovery;
            }
        }

        _electionRetryAt[log] = _now + Backoff(_electionAttempts[log]++);
        _electionJitter[log] = DrawJitter();
    }
}
