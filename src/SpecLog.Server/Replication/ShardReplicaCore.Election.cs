namespace SpecLog.Server.Replication;

/// <summary>
/// Elections: pre-votes and votes, the staggered election timeout (epoch e is led by replica e mod R, so candidates
/// never split one epoch's votes), and the up-to-date rule a voter applies (with a rebuilding replica's floor).
/// </summary>
internal sealed partial class ShardReplicaCore
{
    /// <summary>A candidate asks for a vote (or a pre-vote).</summary>
    public void OnVoteRequest(ReplicaVoteRequest m, long now)
    {
        var candidate = ShardKeys.LeaderOf(m.Epoch, _n);
        if (candidate == _self)
        {
            return;
        }

        if (_probing)
        {
            // A replica that may have lost its state does not vote: its empty log would make it vote for any candidate,
            // even one that lacks entries only its lost copy made durable.
            // (A pre-vote refusal names this replica's promise when it is above the candidacy: see OnVote.) A pre-vote is
            // answered again once probing is over (EndProbing).
            _transport.Send(candidate, new ReplicaVote(m.Pre ? Math.Max(m.Epoch, _meta.Promised) : _meta.Promised, _self, false, m.Pre));
            _deferredPreVote = m.Pre ? m : _deferredPreVote;
            return;
        }

        // A replica that hears a live leader refuses to help depose it, and so does a leader that still hears a majority.
        // "Hears" means within half an election timeout (several heartbeats): the successor stands exactly one timeout
        // after it last heard the dead leader, and the others last heard it at about the same instant, so a full
        // timeout here made them refuse by a few milliseconds and cost a whole round of timeouts.
        var recently = _timings.ElectionTimeoutMicros / 2;
        var leaderAlive = Role == ReplicaRole.Leader
            ? HeardMajority(now, recently)
            : Role == ReplicaRole.Follower && LeaderEpoch == _meta.Promised && now - _lastHeard < recently;
        if (m.Pre)
        {
            var upToDate = UpToDate(m);
            // A refusal names this replica's promise when it is above the candidacy, so a candidate that was down while
            // others elected stands above their epochs next time (see OnVote).
            var preGranted = m.Epoch > _meta.Promised && !leaderAlive && upToDate;
            _transport.Send(candidate, new ReplicaVote(preGranted ? m.Epoch : Math.Max(m.Epoch, _meta.Promised), _self, preGranted, Pre: true));
            if (!upToDate && !leaderAlive && Role == ReplicaRole.Follower && m.Epoch > _meta.Promised && !_meta.Rebuilding)
            {
                // The leader is silent and this replica's log is ahead of the candidate's, which can therefore not win:
                // stand now rather than after this replica's own (later-ranked) timeout.
                StartElection(now);
            }

            return;
        }

        if (m.Epoch < _meta.Promised || (m.Epoch > _meta.Promised && leaderAlive))
        {
            _transport.Send(candidate, new ReplicaVote(_meta.Promised, _self, false));
            return;
        }

        if (m.Epoch > _meta.Promised)
        {
            Promise(m.Epoch);
            if (Role != ReplicaRole.Follower)
            {
                StepDown(now);
            }
        }

        // Epoch m.Epoch has one possible leader, so voting for it again (a repeated request) is harmless.
        var granted = Role == ReplicaRole.Follower && LeaderEpoch != m.Epoch && UpToDate(m);
        if (granted)
        {
            _lastHeard = now; // give the candidate time to win
        }

        _transport.Send(candidate, new ReplicaVote(m.Epoch, _self, granted));
    }

    /// <summary>A vote for (or against) this replica's candidacy.</summary>
    public void OnVote(ReplicaVote m, long now)
    {
        if (_probing)
        {
            return; // a late answer to this replica's lost former self (see OnAck)
        }

        if (m.Pre)
        {
            if (!m.Granted && Role == ReplicaRole.Candidate && !_campaigning && m.Epoch > _candidacy && m.Epoch > _meta.Promised)
            {
                // A voter promised an epoch this candidate never heard of (it was down while others elected): stand above
                // it next time. Without this a replica holding the most up-to-date log could stay refused for ever, e.g.
                // by a rebuilding replica whose floor came from this very log.
                Promise(m.Epoch);
                return;
            }

            if (Role == ReplicaRole.Candidate && !_campaigning && m.Epoch == _candidacy && m.Granted && m.From >= 0 && m.From < _n)
            {
                _votes |= 1 << m.From;
                if (System.Numerics.BitOperations.PopCount((uint)_votes) >= Majority)
                {
                    Campaign(now);
                }
            }

            return;
        }

        if (m.Epoch > _meta.Promised)
        {
            Promise(m.Epoch);
            StepDown(now);
            return;
        }

        if (Role != ReplicaRole.Candidate || !_campaigning || m.Epoch != _meta.Promised || !m.Granted || m.From < 0 || m.From >= _n)
        {
            return;
        }

        _votes |= 1 << m.From;
        if (System.Numerics.BitOperations.PopCount((uint)_votes) >= Majority)
        {
            BecomeLeader(now);
        }
    }

    private long NextOwnEpoch()
    {
        var e = _meta.Promised + 1;
        return e + ((((_self - e) % _n) + _n) % _n);
    }

    /// <summary>
    /// The election timeout, staggered by rank rather than drawn from [T, 2T]: epochs are owned (e is led by e mod R),
    /// so two candidates never split the votes of one epoch, and the replica that owns the next epoch can go first after
    /// one timeout T; the owner of the one after waits T/2 longer, and so on, each with up to T/8 of jitter. The rank is
    /// taken from the epoch promised now (a follower promises each new leader's epoch as it hears it), so when a leader
    /// dies its successor stands after T instead of 1.5 T on average.
    /// </summary>
    private long ElectionTimeout()
    {
        var t = _timings.ElectionTimeoutMicros;
        var rank = NextOwnEpoch() - (_meta.Promised + 1);
        return t + rank * (t / 2) + _jitter;
    }

    private bool UpToDate(ReplicaVoteRequest m)
    {
        var end = _storage.End;
        var last = _meta.LastEpoch(end);
        return AtLeast(m.LastEpoch, m.End, last, end) && (!_meta.Rebuilding || AtLeast(m.LastEpoch, m.End, _meta.FloorEpoch, _meta.FloorEnd));
    }

    /// <summary>Whether a log whose last entry has epoch <paramref name="lastEpoch"/> and which ends at <paramref name="end"/> is at least as up to date as the other.</summary>
    private static bool AtLeast(long lastEpoch, long end, long otherLastEpoch, long otherEnd) =>
        lastEpoch > otherLastEpoch || (lastEpoch == otherLastEpoch && end >= otherEnd);

    /// <summary>Asks the others whether they would vote for this replica (a pre-vote: nothing changes yet).</summary>
    private void StartElection(long now)
    {
        Role = ReplicaRole.Candidate;
        Ready = false;
        _campaigning = false;
        _candidacy = NextOwnEpoch();
        _votes = 1 << _self;
        RestartElectionClock(now);
        var end = _storage.End;
        var request = new ReplicaVoteRequest(_candidacy, _meta.LastEpoch(end), end, Pre: true);
        Broadcast(request);
    }

    /// <summary>A majority would vote: promise the epoch and ask for the votes that count.</summary>
    private void Campaign(long now)
    {
        var epoch = Math.Max(_candidacy, NextOwnEpoch());
        Promise(epoch);
        _campaigning = true;
        LeaderEpoch = -1;
        ElectionsStarted++;
        _votes = 1 << _self;
        _lastHeard = now;
        var end = _storage.End;
        var request = new ReplicaVoteRequest(epoch, _meta.LastEpoch(end), end);
        Broadcast(request);

        if (Majority == 1)
        {
            BecomeLeader(now);
        }
    }

    private void Broadcast(ReplicaVoteRequest request)
    {
        for (var p = 0; p < _n; p++)
        {
            if (p != _self)
            {
                _transport.Send(p, request);
            }
        }
    }
}
