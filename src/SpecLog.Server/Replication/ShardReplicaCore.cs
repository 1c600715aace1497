namespace SpecLog.Server.Replication;

/// <summary>The part a shard replica plays now.</summary>
internal enum ReplicaRole
{
    /// <summary>Copies the leader's log.</summary>
    Follower,

    /// <summary>Asks the other replicas to let it lead a new epoch.</summary>
    Candidate,

    /// <summary>Takes appends, writes them to its log and copies them to the followers.</summary>
    Leader,
}

/// <summary>Timings and limits of shard replication.</summary>
/// <param name="HeartbeatMicros">How often a leader tells followers it is alive (and retransmits).</param>
/// <param name="ElectionTimeoutMicros">How long a follower waits without hearing its leader before it stands for election (the owner of the next epoch; the others half of it longer per rank); also how long a leader keeps leading without hearing a majority.</param>
/// <param name="RequireAll">Whether an entry counts as durable only once every replica holds it (Belfast's rule) instead of a majority.</param>
/// <param name="MaxBatchEntries">Most entries in one copy message.</param>
/// <param name="MaxBatchBytes">About the most payload bytes in one copy message.</param>
/// <param name="MaxUnacknowledged">Most entries sent to a follower beyond what it acknowledged.</param>
internal sealed record ReplicaTimings(
    long HeartbeatMicros,
    long ElectionTimeoutMicros,
    bool RequireAll = false,
    int MaxBatchEntries = 4096,
    int MaxBatchBytes = 1 << 20,
    int MaxUnacknowledged = 65_536);

/// <summary>
/// The replication protocol of one shard replica, with no I/O of its own (storage and transport are interfaces), so
/// the simulator drives it deterministically. R replicas keep identical logs: one leader per epoch appends entries and
/// copies them to followers, and an entry counts as durable once a majority (or all, <see cref="ReplicaTimings.RequireAll"/>)
/// hold it fsync'd. Epoch e is led by replica e mod R, elected by a majority that promised e (a promise is durable and
/// fences every older leader: its copies are refused, so it can make nothing durable again). A replica votes only for
/// a log at least as up to date as its own (last entry's epoch, then length), and a new leader counts nothing durable
/// until a majority has joined its epoch holding its whole log — the entry that marks the epoch's start — so every
/// entry ever counted durable is in every later leader's log at the same index (the shard gives it the same slot and
/// GSN: no mis-speculation). A joining follower keeps the longest prefix of its log that agrees with the leader's
/// epoch history and durably truncates the rest.
/// </summary>
internal sealed partial class ShardReplicaCore
{
    private readonly int _self;
    private readonly int _n;
    private readonly IReplicaStorage _storage;
    private readonly IReplicaTransport _transport;
    private readonly ReplicaTimings _timings;
    private readonly Random _random;
    private readonly Peer[] _peers;
    private ReplicaMeta _meta;
    private long _lastHeard;
    private long _jitter;
    private bool _fastStart;
    private long _lastHeartbeat;
    private int _votes;
    private long _candidacy;
    private bool _campaigning;
    private long _leaderSince;

    public ShardReplicaCore(int self, int replicas, ReplicaMeta meta, IReplicaStorage storage, IReplicaTransport transport, ReplicaTimings timings, Random random, long nowMicros)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(replicas, 2);
        ArgumentOutOfRangeException.ThrowIfNegative(self);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(self, replicas);
        _self = self;
        _n = replicas;
        _meta = meta;
        _storage = storage;
        _transport = transport;
        _timings = timings;
        _random = random;
        _peers = new Peer[replicas];
        for (var i = 0; i < replicas; i++)
        {
            _peers[i] = new Peer();
        }

        _lastHeard = nowMicros;
        // The replica that would lead the next epoch stands at once after a start, so a new or restarted shard does not
        // sit out a whole election timeout; the others wait as usual.
        _fastStart = ShardKeys.LeaderOf(_meta.Promised + 1, _n) == _self;
        _jitter = DrawJitter();
        _probing = meta.IsBlank && storage.End == 0;
        _probes = new ProbeAnswer[replicas];
        CheckRebuilt();
    }

    /// <summary>The role now.</summary>
    public ReplicaRole Role { get; private set; }

    /// <summary>The highest epoch promised.</summary>
    public long Promised => _meta.Promised;

    /// <summary>The epoch whose leader this replica follows or is (joined or led), or -1 if it knows none.</summary>
    public long LeaderEpoch { get; private set; } = -1;

    /// <summary>For a leader: where its epoch starts in the log (everything before it came from earlier epochs).</summary>
    public long EpochStart { get; private set; }

    /// <summary>For a leader: true once its epoch start is durable on a majority, so it may serve.</summary>
    public bool Ready { get; private set; }

    /// <summary>For a ready leader: entries below this are durable on a majority (all replicas with <see cref="ReplicaTimings.RequireAll"/>).</summary>
    public long Committed { get; private set; }

    /// <summary>
    /// The epoch whose leader a client should go to, as far as this replica can tell at <paramref name="now"/>: its own
    /// when it leads, its leader's when it heard from it within an election timeout, otherwise -1 (its last leader may
    /// be dead, and sending clients there would only make them wait for it).
    /// </summary>
    public long LeaderHint(long now) => Role switch
    {
        ReplicaRole.Leader => LeaderEpoch,
        ReplicaRole.Follower when LeaderEpoch >= 0 && now - _lastHeard < _timings.ElectionTimeoutMicros => LeaderEpoch,
        _ => -1,
    };

    /// <summary>The persisted state.</summary>
    public ReplicaMeta Meta => _meta;

    /// <summary>Elections this replica started.</summary>
    public long ElectionsStarted { get; private set; }

    /// <summary>Time passes: heartbeats and lease checks for a leader, election timeouts for the others.</summary>
    public void OnTick(long now)
    {
        if (_probing || _meta.Rebuilding)
        {
            ProbeTick(now);
            return;
        }

        if (Role == ReplicaRole.Leader)
        {
            if (now - _lastHeartbeat >= _timings.HeartbeatMicros)
            {
                _lastHeartbeat = now;
                for (var p = 0; p < _n; p++)
                {
                    if (p != _self)
                    {
                        Heartbeat(p);
                    }
                }
            }

            // A leader that has not heard a majority for three election timeouts may have been replaced: it stops
            // serving (it could commit nothing anyway) so that clients look for the new leader. Three, not one: a
            // starved process (thread pool stalls of a second happen on a loaded two-core machine) must not give up a
            // role nobody else took.
            var lease = 3 * _timings.ElectionTimeoutMicros;
            if (!HeardMajority(now, lease) && now - _leaderSince >= lease)
            {
                StepDown(now);
            }

            return;
        }

        if (now - _lastHeard >= (_fastStart ? _timings.HeartbeatMicros : ElectionTimeout()))
        {
            StartElection(now);
        }
    }

    /// <summary>A copy message from the leader of <paramref name="m"/>'s epoch.</summary>
    public void OnAppend(ReplicaAppend m, long now)
    {
        var leader = ShardKeys.LeaderOf(m.Epoch, _n);
        if (leader == _self || _probing)
        {
            return; // from an earlier incarnation of this replica, or to one that does not know yet whether it lost its state
        }

        if (m.Epoch < _meta.Promised)
        {
            _transport.Send(leader, new ReplicaAck(_meta.Promised, _self, false, _storage.End, _storage.Durable));
            return;
        }

        if (m.Epoch > _meta.Promised)
        {
            Promise(m.Epoch);
        }

        if (Role != ReplicaRole.Follower)
        {
            StepDown(now);
        }

        _lastHeard = now;
        LeaderEpoch = m.Epoch;
        if (!Joined(m.Epoch))
        {
            if (m.EpochNumbers is null || m.EpochStarts is null)
            {
                _transport.Send(leader, new ReplicaAck(m.Epoch, _self, false, _storage.End, _storage.Durable));
                return;
            }

            Join(m.EpochNumbers, m.EpochStarts);
        }

        if (m.Install && m.Trim is { } installed && m.FirstIndex > _storage.End)
        {
            // Everything this log holds lies below the leader's first retained entry (trimmed there): start again at it.
            _storage.Install(m.FirstIndex, installed);
        }

        if (m.FirstIndex > _storage.End)
        {
            _transport.Send(leader, new ReplicaAck(m.Epoch, _self, true, _storage.End, _storage.Durable, Gap: true));
            return;
        }

        if (m.Trim is { } trim)
        {
            _storage.ApplyTrim(trim);
        }

        var wrote = false;
        for (var i = _storage.End - m.FirstIndex; i < m.Entries.Length; i++)
        {
            _storage.Append(m.Entries[i]);
            wrote = true;
        }

        if (wrote)
        {
            _storage.Flush(); // acknowledged once durable (OnLocalDurable)
        }
        else
        {
            _transport.Send(leader, new ReplicaAck(m.Epoch, _self, true, _storage.End, _storage.Durable));
            CheckRebuilt();
        }
    }

    /// <summary>A follower's acknowledgement.</summary>
    public void OnAck(ReplicaAck m, long now)
    {
        if (_probing)
        {
            return; // a late answer to this replica's lost former self: a probing replica changes nothing until it knows
        }

        if (m.Epoch > _meta.Promised)
        {
            Promise(m.Epoch);
            StepDown(now);
            return;
        }

        if (Role != ReplicaRole.Leader || m.Epoch < _meta.Promised || m.From == _self || m.From < 0 || m.From >= _n)
        {
            return;
        }

        var p = _peers[m.From];
        p.LastHeard = now;
        if (!m.Joined)
        {
            p.Joined = false;
            SendJoin(m.From);
            return;
        }

        if (!p.Joined || m.Gap)
        {
            p.Joined = true;
            p.Next = m.End;
        }

        p.End = m.End;
        p.Durable = Math.Max(p.Durable, m.Durable);
        Pump(m.From);
        CheckCommitted();
    }

    /// <summary>The leader wrote new entries to its log: copy them to the followers.</summary>
    public void OnLocalAppended()
    {
        if (Role != ReplicaRole.Leader)
        {
            return;
        }

        for (var p = 0; p < _n; p++)
        {
            if (p != _self)
            {
                Pump(p);
            }
        }
    }

    /// <summary>The replica's own log became durable up to <paramref name="durable"/>.</summary>
    public void OnLocalDurable(long durable)
    {
        if (Role == ReplicaRole.Leader)
        {
            CheckCommitted();
        }
        else if (Role == ReplicaRole.Follower && LeaderEpoch == _meta.Promised && Joined(LeaderEpoch))
        {
            _transport.Send(ShardKeys.LeaderOf(LeaderEpoch, _n), new ReplicaAck(LeaderEpoch, _self, true, _storage.End, durable));
            CheckRebuilt();
        }
    }

    private int Majority => (_n / 2) + 1;

    private bool Joined(long epoch) => _meta.Epochs.Length > 0 && _meta.Epochs[^1] == epoch;

    /// <summary>The election timeout runs again from <paramref name="now"/>, at this replica's rank, with fresh jitter.</summary>
    private void RestartElectionClock(long now)
    {
        _lastHeard = now;
        _fastStart = false;
        _jitter = DrawJitter();
    }

    private long DrawJitter() => (long)(_random.NextDouble() * (_timings.ElectionTimeoutMicros / 8));

    /// <summary>Whether this leader, counting itself, heard a majority within the last <paramref name="window"/> µs.</summary>
    private bool HeardMajority(long now, long window)
    {
        var heard = 1;
        for (var p = 0; p < _n; p++)
        {
            if (p != _self && now - _peers[p].LastHeard < window)
            {
                heard++;
            }
        }

        return heard >= Majority;
    }

    private void Promise(long epoch)
    {
        _meta = _meta with { Promised = epoch };
        _storage.Save(_meta);
    }

    private void StepDown(long now)
    {
        Role = ReplicaRole.Follower;
        Ready = false;
        RestartElectionClock(now);
    }

    private void BecomeLeader(long now)
    {
        EpochStart = _storage.End;
        _meta = _meta.WithEpoch(_meta.Promised, EpochStart);
        _storage.Save(_meta);
        Role = ReplicaRole.Leader;
        LeaderEpoch = _meta.Promised;
        Ready = false;
        Committed = 0;
        _leaderSince = now;
        _lastHeartbeat = now;
        foreach (var p in _peers)
        {
            p.Joined = false;
            p.Next = 0;
            p.End = 0;
            p.Durable = -1;
            p.LastHeard = now;
        }

        _storage.Flush();
        for (var p = 0; p < _n; p++)
        {
            if (p != _self)
            {
                SendJoin(p);
            }
        }

        CheckCommitted();
    }

    private void Join(long[] epochs, long[] starts)
    {
        // Entries past the agreed prefix were never counted durable (every later leader holds those that were), so
        // they go; the prefix stays, and with it every copy some earlier majority may rely on.
        var end = _storage.End;
        var keep = _meta.AgreedPrefix(end, epochs, starts);
        if (keep < end)
        {
            _storage.Truncate(keep);
        }

        _meta = _meta with { Epochs = epochs, Starts = starts };
        _storage.Save(_meta);
    }

    private void SendJoin(int peer) =>
        _transport.Send(peer, new ReplicaAppend(_meta.Promised, _storage.End, [], _meta.Epochs, _meta.Starts));

    private void Heartbeat(int peer)
    {
        var p = _peers[peer];
        if (!p.Joined)
        {
            SendJoin(peer);
            return;
        }

        if (p.Next < _storage.End && p.Next - p.End < _timings.MaxUnacknowledged)
        {
            Pump(peer, withTrim: true); // a busy follower learns the trim point from its copies
            return;
        }

        _transport.Send(peer, new ReplicaAppend(_meta.Promised, p.Next, [], Trim: _storage.Trim));
    }

    private void Pump(int peer, bool withTrim = false)
    {
        var p = _peers[peer];
        if (!p.Joined)
        {
            return;
        }

        while (p.Next < _storage.End && p.Next - p.End < _timings.MaxUnacknowledged)
        {
            // A follower behind the first entry this leader still holds gets the retained log from its start instead.
            var first = _storage.FirstIndex;
            var install = p.Next < first;
            var from = install ? first : p.Next;
            var entries = _storage.Read(from, _timings.MaxBatchEntries, _timings.MaxBatchBytes);
            if (entries.Count == 0)
            {
                return;
            }

            _transport.Send(peer, new ReplicaAppend(_meta.Promised, from, [.. entries], Trim: install || withTrim ? _storage.Trim : null, Install: install));
            withTrim = false;
            p.Next = from + entries.Count;
        }
    }

    private void CheckCommitted()
    {
        Span<long> durable = stackalloc long[_n];
        for (var p = 0; p < _n; p++)
        {
            durable[p] = p == _self ? _storage.Durable : _peers[p].Joined ? _peers[p].Durable : -1;
        }

        durable.Sort();
        // Ascending: with all required the smallest counts; otherwise the majority-th largest.
        var m = _timings.RequireAll ? durable[0] : durable[_n - Majority];
        if (m >= EpochStart)
        {
            Ready = true;
            Committed = Math.Max(Committed, m);
        }
    }

    /// <summary>For diagnostics: per peer, its log end and durable end as this replica (a leader) last heard, and how many milliseconds ago.</summary>
    public string DescribePeers(long now) => string.Join(", ", Enumerable.Range(0, _n).Where(p => p != _self)
        .Select(p => $"r{p} end {_peers[p].End} durable {_peers[p].Durable}{(_peers[p].Joined ? "" : " (not joined)")} heard {(now - _peers[p].LastHeard) / 1000} ms ago"));

    private sealed class Peer
    {
        public bool Joined { get; set; }

        public long Next { get; set; }

        public long End { get; set; }

        public long Durable { get; set; } = -1;

        public long LastHeard { get; set; }
    }
}

