namespace SpecLog.Server.Replication;

/// <summary>
/// Replacing a replica whose disk was lost (a node started again on a new machine, or with an empty volume). A replica
/// that starts with no state at all cannot tell a new shard from a lost disk, and the difference matters: an empty log
/// votes for any candidate, and a forgotten promise accepts a deposed leader, so a replica that lost what it held could
/// help elect a leader lacking entries only its lost copy made durable, or help an old leader commit. So it first
/// <em>probes</em>: it takes part in nothing until the others answer. If every replica answers that it holds nothing,
/// the shard is new (so a new shard starts once all its replicas are up). If anybody holds something, it is a
/// replacement and <em>rebuilds</em>:
/// once every other replica has answered it promises the highest epoch any of them promised (above every epoch its
/// lost self may have voted in, since a candidate promises its epoch before it asks for votes) and takes the most up to
/// date of their logs as its floor: every entry its lost copy helped make durable is in that log, because a majority
/// held it and every other replica answered. Until its own durable log reaches the floor it copies the leader's log as
/// a follower, does not stand for election, and votes only for a candidate at least as up to date as the floor, as the
/// answering replica would. The rebuilding state and floor are persisted, so a crash while copying resumes it.
/// </summary>
internal sealed partial class ShardReplicaCore
{
    private readonly ProbeAnswer[] _probes;
    private bool _probing;
    private long _lastProbe = long.MinValue / 2;
    private long _probePromised;
    private (long LastEpoch, long End) _probeFloor = (-1, 0);
    private ReplicaVoteRequest? _deferredPreVote; // a pre-vote refused only because this replica still probed

    /// <summary>What another replica answered to this replica's probe.</summary>
    private enum ProbeAnswer : byte
    {
        /// <summary>No answer yet.</summary>
        None,

        /// <summary>It holds nothing either.</summary>
        Blank,

        /// <summary>It holds something: the shard has history.</summary>
        Holds,
    }

    /// <summary>True while this replica, started with no state, waits to learn whether the shard is new or it replaces a lost replica.</summary>
    public bool Probing => _probing;

    /// <summary>True while this replica replaces a lost one and copies the leader's log before it counts.</summary>
    public bool Rebuilding => _meta.Rebuilding;

    /// <summary>How many times this replica finished rebuilding.</summary>
    public long Rebuilt { get; private set; }

    /// <summary>Another replica asks what this one holds.</summary>
    public void OnProbe(ReplicaProbe m, long now)
    {
        if (m.From < 0 || m.From >= _n || m.From == _self)
        {
            return;
        }

        if (_probing)
        {
            // The asker probes, so it holds nothing either: that counts as its answer to this replica's own probe.
            Record(m.From, ProbeAnswer.Blank, 0, now);
        }

        _transport.Send(m.From, Holdings());
    }

    /// <summary>What this replica holds, as it answers a probe (also sent unasked: a probing replica takes it as an answer, any other ignores it).</summary>
    public ReplicaProbeReply Holdings()
    {
        var end = _storage.End;
        return new ReplicaProbeReply(_self, _meta.Promised, _meta.IsBlank && end == 0, _meta.LastEpoch(end), end);
    }

    /// <summary>The answer to this replica's probe.</summary>
    public void OnProbeReply(ReplicaProbeReply m, long now)
    {
        if (!_probing || m.From < 0 || m.From >= _n || m.From == _self)
        {
            return;
        }

        if (!m.Blank && AtLeast(m.LastEpoch, m.End, _probeFloor.LastEpoch, _probeFloor.End))
        {
            _probeFloor = (m.LastEpoch, m.End);
        }

        Record(m.From, m.Blank ? ProbeAnswer.Blank : ProbeAnswer.Holds, m.Promised, now);
    }

    private void ProbeTick(long now)
    {
        if (!_probing)
        {
            return; // rebuilding: a follower that waits for a leader's copies and never stands
        }

        if (now - _lastProbe < _timings.HeartbeatMicros)
        {
            return;
        }

        _lastProbe = now;
        for (var p = 0; p < _n; p++)
        {
            if (p != _self)
            {
                _transport.Send(p, new ReplicaProbe(_self));
            }
        }
    }

    private void Record(int from, ProbeAnswer answer, long promised, long now)
    {
        _probes[from] = answer;
        if (answer == ProbeAnswer.Holds)
        {
            _probePromised = Math.Max(_probePromised, promised);
        }

        int blank = 1, holds = 0, answered = 0;
        for (var p = 0; p < _n; p++)
        {
            if (p == _self || _probes[p] == ProbeAnswer.None)
            {
                continue;
            }

            answered++;
            if (_probes[p] == ProbeAnswer.Blank)
            {
                blank++;
            }
            else
            {
                holds++;
            }
        }

        if (holds == 0 && blank == _n)
        {
            // Every replica holds nothing: a new shard (or one that lost everything, which no replication survives).
            // A majority is not enough: a replica that was down from the start is as blank as a new one, and with it a
            // replica that lost its disk would take the shard for new while the only copy was on a third, down replica.
            _probing = false;
            _lastHeard = now;
            EndProbing(now);
            if (_fastStart)
            {
                // Nobody can lead a new shard yet, so the replica that owns its first epoch stands at once rather than
                // after a heartbeat's wait for a leader that cannot exist (the others answer its pre-vote as soon as
                // they know too: see EndProbing).
                StartElection(now);
            }

            return;
        }

        if (holds > 0 && answered == _n - 1)
        {
            _probing = false;
            _meta = _meta with { Promised = _probePromised, Rebuilding = true, FloorEpoch = _probeFloor.LastEpoch, FloorEnd = _probeFloor.End };
            _storage.Save(_meta);
            _lastHeard = now;
            CheckRebuilt();
            EndProbing(now);
        }
    }

    /// <summary>
    /// Probing is over: a pre-vote refused meanwhile only because this replica did not know yet whether it lost its
    /// state is answered again, so a candidate that stood a moment earlier does not sit out an election timeout.
    /// </summary>
    private void EndProbing(long now)
    {
        if (_deferredPreVote is { } request)
        {
            _deferredPreVote = null;
            OnVoteRequest(request, now);
        }
    }

    /// <summary>Ends rebuilding once this replica's durable log is at least as up to date as its floor.</summary>
    private void CheckRebuilt()
    {
        var durable = _storage.Durable;
        if (_meta.Rebuilding && AtLeast(_meta.LastEpoch(durable), durable, _meta.FloorEpoch, _meta.FloorEnd))
        {
            _meta = _meta with { Rebuilding = false, FloorEpoch = -1, FloorEnd = 0 };
            _storage.Save(_meta);
            Rebuilt++;
        }
    }
}
