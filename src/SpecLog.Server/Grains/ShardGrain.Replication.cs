using Microsoft.Extensions.Logging;
using SpecLog.Server.Replication;
using SpecLog.Storage;

namespace SpecLog.Server.Grains;

/// <summary>
/// The shard's replication side (with <see cref="SpecLogOptions.EffectiveShardReplicas"/> above 1): each replica is
/// a shard grain of its own (key <see cref="ShardKeys.Of"/>) on its own node, with its own log and a
/// <see cref="ShardReplicaCore"/> deciding who leads. Only a leader whose epoch start is durable on a majority serves:
/// it recovers the shard from its log, reports to the ordering layer, takes appends and delivers to subscribers, and
/// counts an entry durable only once a majority of replicas hold it. The others copy the leader's log and refuse
/// client calls with <see cref="ShardNotLeaderException"/>. A leader that loses its role fails what it was waiting to
/// commit (the outcome is unknown to it; retries are deduplicated) and follows, in the same activation.
/// </summary>
internal sealed partial class ShardGrain : IReplicaStorage, IReplicaTransport
{
    private const string MetaFileName = "replica.meta";

    private int _replica;
    private int _replicas = 1;
    private ShardReplicaCore? _replication;
    private string _replicaDirectory = "";
    private bool _serving;
    private TaskCompletionSource? _servingStarted;

    /// <summary>How long the last start of the shard took to read its log and to fetch the decided windows.</summary>
    private (TimeSpan Log, TimeSpan Windows) _startTimes;
    private IGrainTimer? _replicationTimer;
    private long _committedApplied;
    private long _warmedAt;

    private bool Replicated => _replicas > 1;

    /// <summary>True while this grain runs the shard: always when unreplicated, from the start of serving to the loss of the role when replicated.</summary>
    private bool Leading => !Replicated || _servingStarted is not null;

    public Task ReplicaAppend(ReplicaAppend message) => OnReplication(r => r.OnAppend(message, NowMicros()));

    public Task ReplicaAcknowledge(ReplicaAck message) => OnReplication(r => r.OnAck(message, NowMicros()));

    public Task ReplicaRequestVote(ReplicaVoteRequest message) => OnReplication(r => r.OnVoteRequest(message, NowMicros()));

    public Task ReplicaVote(ReplicaVote message) => OnReplication(r => r.OnVote(message, NowMicros()));

    public Task ReplicaProbe(ReplicaProbe message) => OnReplication(r => r.OnProbe(message, NowMicros()));

    public Task ReplicaProbeReply(ReplicaProbeReply message) => OnReplication(r => r.OnProbeReply(message, NowMicros()));

    long IReplicaStorage.End => _log.NextIndex;

    long IReplicaStorage.Durable => _log.DurableIndex;

    IReadOnlyList<ReplicatedEntry> IReplicaStorage.Read(long from, int maxEntries, int maxBytes)
    {
        var stored = _log.ReadRange(from, maxEntries, maxBytes);
        var entries = new ReplicatedEntry[stored.Count];
        for (var i = 0; i < entries.Length; i++)
        {
            entries[i] = new ReplicatedEntry(stored[i].Kind, stored[i].Payload.ToArray());
        }

        return entries;
    }

    void IReplicaStorage.Append(ReplicatedEntry entry) => _log.Append(entry.Kind, entry.Payload);

    void IReplicaStorage.Flush() => EnsureFlushing();

    void IReplicaStorage.Truncate(long end)
    {
        // Entries past the agreed prefix disagree with the leader's log: reopen the log cut there (rare: a replica that
        // led, or followed a leader, whose last entries never reached a majority).
        // The protocol goes on only once the cut is durable, so this blocks the grain's turn; the close and reopen run
        // on a pool thread, because awaiting them on the grain's own scheduler while it is blocked would never finish.
        LogTruncated(logger, _shard, _replica, _log.NextIndex, end);
        var old = _log;
        var options = LogOptions(LogDirectory);
        options.TruncateFrom = end;
        _log = Task.Run(() =>
        {
            siloLogs.Close(old);
            return siloLogs.Open(options, journaled: false);
        }).GetAwaiter().GetResult();
        _flushRequestedUpTo = -1;
    }

    void IReplicaStorage.Save(ReplicaMeta meta) => meta.Save(Path.Combine(_replicaDirectory, MetaFileName), _options.Fsync);

    void IReplicaTransport.Send(int to, ReplicaAppend message) => Peer(to)?.ReplicaAppend(message).Ignore();

    void IReplicaTransport.Send(int to, ReplicaAck message) => Peer(to)?.ReplicaAcknowledge(message).Ignore();

    void IReplicaTransport.Send(int to, ReplicaVoteRequest message) => Peer(to)?.ReplicaRequestVote(message).Ignore();

    void IReplicaTransport.Send(int to, ReplicaVote message) => Peer(to)?.ReplicaVote(message).Ignore();

    void IReplicaTransport.Send(int to, ReplicaProbe message) => Peer(to)?.ReplicaProbe(message).Ignore();

    void IReplicaTransport.Send(int to, ReplicaProbeReply message) => Peer(to)?.ReplicaProbeReply(message).Ignore();

    /// <summary>Replica <paramref name="replica"/> of this shard, or null while its node is down (the protocol retransmits once it is back).</summary>
    private IShardGrain? Peer(int replica) =>
        liveness.IsHomeActive(_shard + replica) ? GrainFactory.GetGrain<IShardGrain>(ShardKeys.Of(_shard, replica)) : null;

    private string LogDirectory => Path.Combine(_replicaDirectory, "log");

    /// <summary>Opens this replica's state and log and starts the protocol; the replica serves once it leads.</summary>
    private async Task ActivateReplicaAsync()
    {
        _replicaDirectory = Path.Combine(_options.DataDirectory, $"shard-{_shard}-replica-{_replica}");
        Directory.CreateDirectory(_replicaDirectory);
        var meta = ReplicaMeta.Load(Path.Combine(_replicaDirectory, MetaFileName));
        _log = await siloLogs.OpenAsync(LogOptions(LogDirectory), journaled: false);
        LoadTrim();
        var timings = new ReplicaTimings(
            (long)_options.ShardHeartbeat.TotalMicroseconds,
            (long)_options.ShardElectionTimeout.TotalMicroseconds,
            _options.ShardDurability == ShardDurability.All);
        _replication = new ShardReplicaCore(_replica, _replicas, meta, this, this, timings, new Random(), NowMicros());
        var tick = _options.ShardHeartbeat / 2;
        _replicationTimer = this.RegisterGrainTimer(OnReplicationTimer, new GrainTimerCreationOptions(tick, tick) { KeepAlive = true, Interleave = true });
        LogReplicaActivated(logger, _shard, _replica, _replicas, meta.Promised, _log.NextIndex);
        await OnReplication(r => r.OnTick(NowMicros())); // a blank replica probes now, not a timer tick later
    }

    /// <summary>The replica's part as the status shows it: its role, or that it still probes or rebuilds a lost state.</summary>
    private string ReplicaState => _replication switch
    {
        null => "Follower",
        { Probing: true } => "Probing",
        { Rebuilding: true } => "Rebuilding",
        var r => r.Role.ToString(),
    };

    private DurableLogOptions LogOptions(string directory) => new()
    {
        Directory = directory,
        MaxEntrySize = Math.Max(_options.MaxRecordSize + AppendIdBytes + MaxTagOverhead, 64),
        SegmentSize = _options.SegmentSize,
        Fsync = _options.Fsync,
    };

    private Task OnReplicationTimer(CancellationToken cancellationToken)
    {
        KeepPeersWarm();
        return OnReplication(r => r.OnTick(NowMicros()));
    }

    /// <summary>
    /// Every half second, a replica that is not leading sends each peer what it holds (a probe answer nobody asked for:
    /// a probing peer takes it as an answer, any other ignores it), so every silo keeps where its peers' replicas live
    /// in Orleans' directory cache. In steady
    /// state followers hear only the leader; when the leader's silo dies, the directory partitions it owned move to
    /// other silos, and a first message to a peer whose location is not cached waits for that move — measured at
    /// several hundred milliseconds of a failover's election.
    /// </summary>
    private void KeepPeersWarm()
    {
        var now = NowMicros();
        if (_replication is not { Role: not ReplicaRole.Leader } r || now - _warmedAt < 500_000)
        {
            return;
        }

        _warmedAt = now;
        for (var p = 0; p < _replicas; p++)
        {
            if (p != _replica)
            {
                Peer(p)?.ReplicaProbeReply(r.Holdings()).Ignore();
            }
        }
    }

    private Task OnReplication(Action<ShardReplicaCore> step)
    {
        if (_replication is not null && !_deactivating)
        {
            var before = (_replication.Role, _replication.Ready);
            var rebuildingBefore = (_replication.Probing, _replication.Rebuilding);
            step(_replication);
            if ((_replication.Role, _replication.Ready) != before && _replication.Role != ReplicaRole.Follower)
            {
                // Failover's steps, timestamped in the silo log: standing for election, winning it, ready to serve.
                LogRoleChanged(logger, _shard, _replica, _replication.Role, _replication.Ready, _replication.Promised);
            }

            if ((_replication.Probing, _replication.Rebuilding) != rebuildingBefore)
            {
                LogRebuildState(logger, _shard, _replica, ReplicaState, _log.NextIndex, _replication.Meta.FloorEnd);
            }

            AfterReplicationStep();
        }

        return Task.CompletedTask;
    }

    /// <summary>Acts on what the protocol decided: start serving, count newly durable entries, or stop serving.</summary>
    private void AfterReplicationStep()
    {
        var r = _replication!;
        if (_servingStarted is not null && r.Role != ReplicaRole.Leader)
        {
            StopServing();
            return;
        }

        if (_servingStarted is null && r is { Role: ReplicaRole.Leader, Ready: true })
        {
            _servingStarted = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            StartServingAsync().Ignore();
            return;
        }

        if (_serving && r.Committed > _committedApplied)
        {
            _committedApplied = r.Committed;
            OnDurableUpTo(r.Committed);
        }
    }

    /// <summary>This replica leads with its epoch start durable on a majority: recover the shard from the log and serve.</summary>
    private async Task StartServingAsync()
    {
        var r = _replication!;
        var epoch = r.LeaderEpoch;
        try
        {
            // Report sequence numbers of epoch e all lie above those of every earlier epoch (and above the time-based
            // ones of an unreplicated shard), so the ordering layer ignores a deposed leader's late reports, and its
            // notices go to replica e mod R.
            await StartShardAsync(ReportSeqBase(epoch));
        }
        catch (Exception e)
        {
            LogServingFailed(logger, e, _shard, _replica, epoch);
            _servingStarted?.TrySetException(e);
            DeactivateOnIdle();
            return;
        }

        if (_servingStarted is null || r.Role != ReplicaRole.Leader || r.LeaderEpoch != epoch)
        {
            ResetShardState(); // lost the role while recovering
            return;
        }

        _serving = true;
        _committedApplied = r.EpochStart;
        LogLeading(logger, _shard, _replica, epoch, r.EpochStart, _durableSlots, _startTimes.Log.TotalMilliseconds, _startTimes.Windows.TotalMilliseconds);
        _servingStarted.TrySetResult();
        AfterReplicationStep();
    }

    /// <summary>The first report sequence number a leader of <paramref name="epoch"/> uses.</summary>
    internal static long ReportSeqBase(long epoch) => (4096 + epoch) << 40;

    /// <summary>The replica that leads a shard, from the last report sequence number the ordering layer applied from it.</summary>
    internal static int LeaderFromReportSeq(long reportSeq, int replicas) =>
        replicas <= 1 || reportSeq < ReportSeqBase(0) ? 0 : ShardKeys.LeaderOf((reportSeq >> 40) - 4096, replicas);

    /// <summary>
    /// This replica lost its leadership: what waits for commits fails with an unknown outcome (retries are
    /// deduplicated wherever the records ended up), subscribers go (they subscribe at the new leader), and the shard
    /// state is dropped; the activation stays, as a follower, so no directory registration is needed to go on.
    /// </summary>
    private void StopServing()
    {
        LogStoppedLeading(logger, _shard, _replica, _replication!.Promised);
        _serving = false;
        _servingStarted?.TrySetException(NotLeader());
        _servingStarted = null;
        FailUncommitted(new AppendOutcomeUnknownException(
            $"Replica {_replica} of shard {_shard} stopped leading (epoch {_replication.Promised} began) before the append was committed; "
            + "its outcome is unknown (a retry with the same append ids is safe)."));
        ResetShardState();
    }

    private void ResetShardState()
    {
        _subscribers.Clear();
        _ticker?.Dispose();
        _ticker = null;
        _timer?.Dispose();
        _timer = null;
        _notYetDurable.Clear();
        _sparseIndex.Clear();
        _durableMarks.TrimBelow(long.MaxValue);
        _reportMarks.TrimBelow(long.MaxValue);
        _committedApplied = 0;
        _durableSlots = 0;
        _durableRecords = 0;
    }

    /// <summary>Waits until this replica serves, or throws <see cref="ShardNotLeaderException"/> naming the leader it knows.</summary>
    private ValueTask EnsureServingAsync(CancellationToken cancellationToken)
    {
        if (!Replicated || _serving)
        {
            return ValueTask.CompletedTask;
        }

        return _servingStarted is not null ? new ValueTask(_servingStarted.Task.WaitAsync(cancellationToken)) : throw NotLeader();
    }

    private void EnsureServing()
    {
        if (Replicated && !_serving)
        {
            throw NotLeader();
        }
    }

    private ShardNotLeaderException NotLeader()
    {
        var hint = _replication?.LeaderHint(NowMicros()) ?? -1;
        var known = hint >= 0 && ShardKeys.LeaderOf(hint, _replicas) != _replica ? hint : -1;
        return new ShardNotLeaderException(_shard, _replica, known, _replicas);
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Shard {Shard} replica {Replica} of {Replicas} activated: promised epoch {Epoch}, {Entries} log entries")]
    private static partial void LogReplicaActivated(ILogger logger, int shard, int replica, int replicas, long epoch, long entries);

    [LoggerMessage(Level = LogLevel.Information, Message = "Shard {Shard} replica {Replica} leads epoch {Epoch} from log entry {Start}: serving with {Slots} slots (recovery: log {LogMs:0.0} ms, windows {WindowsMs:0.0} ms)")]
    private static partial void LogLeading(ILogger logger, int shard, int replica, long epoch, long start, long slots, double logMs, double windowsMs);

    [LoggerMessage(Level = LogLevel.Information, Message = "Shard {Shard} replica {Replica} is {Role} (ready {Ready}, epoch {Epoch} promised)")]
    private static partial void LogRoleChanged(ILogger logger, int shard, int replica, ReplicaRole role, bool ready, long epoch);

    [LoggerMessage(Level = LogLevel.Information, Message = "Shard {Shard} replica {Replica} is {State} now (log {End} entries; floor {Floor}): a replica that started with no state probes the others, and if they hold the shard it copies the leader's log and counts fully once it holds what they held")]
    private static partial void LogRebuildState(ILogger logger, int shard, int replica, string state, long end, long floor);

    [LoggerMessage(Level = LogLevel.Information, Message = "Shard {Shard} replica {Replica} stopped leading (epoch {Epoch} promised); it follows now")]
    private static partial void LogStoppedLeading(ILogger logger, int shard, int replica, long epoch);

    [LoggerMessage(Level = LogLevel.Information, Message = "Shard {Shard} replica {Replica}: the last entries of its log ({Entries}) disagree with the leader's; truncated to {End}")]
    private static partial void LogTruncated(ILogger logger, int shard, int replica, long entries, long end);

    [LoggerMessage(Level = LogLevel.Error, Message = "Shard {Shard} replica {Replica} could not start serving epoch {Epoch}")]
    private static partial void LogServingFailed(ILogger logger, Exception e, int shard, int replica, long epoch);
}
