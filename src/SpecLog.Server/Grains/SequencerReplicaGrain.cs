using System.Buffers.Binary;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans.Concurrency;
using Orleans.Placement;
using SpecLog.Copilot;
using SpecLog.FixAnte;
using SpecLog.Server.Ordering;
using SpecLog.Server.Ordering.Copilot;
using SpecLog.Server.Placement;
using SpecLog.Server.Scheduling;
using SpecLog.Server.Hosting;
using SpecLog.Storage;

namespace SpecLog.Server.Grains;

/// <summary>
/// One replica of the replicated sequencer: hosts the pure Copilot core (<see cref="Replica{T}"/>, T = shard report)
/// and the Fix-Ante sequencer state machine it executes. Every handler runs the core synchronously, appends the
/// core's persist records to the replica's own durable log, and sends that call's messages only after the records
/// are fsync'd (group commit). Nothing awaits a peer: replicas exchange one-way <see cref="Deliver"/> calls.
/// <para>
/// Fencing: each activation takes the next incarnation number (epoch) from its log and stamps it on every packet;
/// replicas remember (durably) the highest epoch seen per peer and drop packets from older incarnations. A duplicate
/// activation on the same storage cannot open the log (it is locked); one on other storage starts at epoch 1 and is
/// ignored by peers that knew the replica, so a replica that lost its state never votes.
/// </para>
/// Active pilots tell shards about commits and windows; every replica executes, so a new pilot can take over at once.
/// </summary>
[Reentrant]
[Immovable]
[ReplicaHomePlacement]
internal sealed partial class SequencerReplicaGrain(
    IOptions<SpecLogOptions> options,
    TimeProvider timeProvider,
    SiloLogs siloLogs,
    DeadlineTicker deadlineTicker,
    ILocalSiloDetails siloDetails,
    NodeLiveness liveness,
    ILogger<SequencerReplicaGrain> logger) : Grain, ISequencerReplicaGrain
{
    private const byte IncarnationKind = 21;
    private const byte PeerEpochKind = 22;

    /// <summary>The Copilot client id of shard-set changes (shards are clients 0 … n−1).</summary>
    internal const int AdminClient = -1;

    private readonly SpecLogOptions _options = options.Value;
    private readonly SequencerOutput _output = new();
    private readonly HashSet<CommandId> _executedNow = [];
    private readonly HashSet<int> _answer = [];
    private readonly Queue<(long Required, int To, Message<ShardReport> Message)> _pending = new();
    private List<Message<ShardReport>>?[] _packets = [];
    private CopilotOptions _copilot = null!;
    private Replica<ShardReport> _replica = null!;
    private SequencerState _state = null!;
    private IDisposable? _metrics;
    private SequencerPublisher _publisher = null!;
    private DurableLog _log = null!;
    private DeadlineTicker.Registration? _ticker;
    private IGrainTimer? _timer;
    private long[] _peerEpochs = [];
    private long _epoch;
    private int _id;
    private long _commandsExecuted;
    private long _staleDropped;
    private long _wakeups;
    private long _lastProgressCut = -1;
    private long _lastProgressMicros;
    private DateTimeOffset _activatedAt;
    private bool _deactivating;

    public override async Task OnActivateAsync(CancellationToken cancellationToken)
    {
        var replication = _options.Replication;
        var key = this.GetPrimaryKeyLong();
        if (!replication.IsReplicated)
        {
            throw new InvalidOperationException("The sequencer is not replicated (SpecLog:Replication:Mode is Single); replica grains are not used.");
        }

        if (key < 0 || key >= replication.Replicas)
        {
            throw new InvalidOperationException($"Replica {key} does not exist: the ordering layer has {replication.Replicas} replicas (0 to {replication.Replicas - 1}).");
        }

        _id = (int)key;
        _activatedAt = timeProvider.GetUtcNow();
        _copilot = replication.ToCopilotOptions();
        _packets = new List<Message<ShardReport>>?[_copilot.ReplicaCount];
        OrderingModeGuard.Check(_options.DataDirectory, replication.Mode);
        _log = await siloLogs.OpenAsync(new DurableLogOptions
        {
            Directory = Path.Combine(_options.DataDirectory, $"sequencer-replica-{_id}"),
            SegmentSize = Math.Min(8L << 20, _options.SegmentSize),
            Fsync = _options.Fsync,
        });
        _peerEpochs = new long[_copilot.ReplicaCount];
        _ticker = deadlineTicker.Register(GrainContext.Scheduler, OnTick);
        var period = TimeSpan.FromTicks(Math.Min(replication.HeartbeatInterval.Ticks, _options.Ordering.FallbackInterval.Ticks));
        _failures = _options.EffectiveShardFailureTimeout is { } failAfter ? new ShardFailureDetector(failAfter, timeProvider) : null;
        _timer = this.RegisterGrainTimer(OnTimerAsync, new GrainTimerCreationOptions(period, period) { KeepAlive = true });
        if (_log.NextIndex == 0)
        {
            // Nothing was ever written here: a new ordering layer, or this replica lost its disk. It must not act
            // until it knows which (see SequencerReplicaGrain.Rebuild.cs).
            StartProbing();
        }
        else
        {
            await StartReplicaAsync(cancellationToken);
        }

        await base.OnActivateAsync(cancellationToken);
    }

    /// <summary>Rebuilds the core and the sequencer state from the log (its newest checkpoint and what follows) and starts them.</summary>
    private async Task StartReplicaAsync(CancellationToken cancellationToken)
    {
        var records = ReadLog(out var lastEpoch);
        _epoch = lastEpoch + 1;
        _log.Append(IncarnationKind, EncodeIncarnation(_epoch, _copilot));
        await _log.FlushAsync(cancellationToken);

        _output.Clear();
        if (_recoveredSnapshot is { } snapshot)
        {
            _state = SequencerState.Restore(_options.Ordering, snapshot); // at the heads of the core's checkpoint
            _recoveredSnapshot = null;
        }
        else
        {
            _state = new SequencerState(_options.Ordering, _options.ShardCount, []);
            _state.Initialize(_output); // deterministic: every replica starts from the same window 0
        }

        _publisher = new SequencerPublisher(_options.ShardCount, GrainFactory, shardReplicas: _options.EffectiveShardReplicas);
        _replica = new Replica<ShardReport>(_copilot, _id, new Random(), records);
        _metrics?.Dispose();
        _metrics = OrderingMetrics.AddSource(_id.ToString(System.Globalization.CultureInfo.InvariantCulture), () =>
        {
            var c = _replica.Counters;
            return new OrderingFigures(_state.CommittedCut, _state.LagFixesIssued, _state.Failures, true, c.FastCommits, c.SlowPaths, c.Takeovers, c.ViewsWon);
        });
        _probing = false; // only now: every handler that sees it false uses the core and the state
        LogActivated(logger, _id, _epoch, records.Count, _copilot.Mode, siloDetails.SiloAddress);

        var effects = new List<Effect<ShardReport>>();
        _replica.Start(NowMicros(), effects);
        _lastProgressMicros = NowMicros();
        await ProcessAsync(effects);
        _started.TrySetResult();
    }

    public override async Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken)
    {
        _deactivating = true;
        _metrics?.Dispose();
        _ticker?.Dispose();
        _timer?.Dispose();
        AbandonTracedCommands();
        if (_log is not null)
        {
            await siloLogs.CloseAsync(_log);
        }

        LogDeactivated(logger, _id, _epoch, reason.Description);
        await base.OnDeactivateAsync(reason, cancellationToken);
    }

    public Task Deliver(int from, long epoch, byte[] packet)
    {
        if (_probing || _deactivating || (uint)from >= (uint)_copilot.ReplicaCount || from == _id || packet is null)
        {
            return Task.CompletedTask;
        }

        if (epoch < _peerEpochs[from])
        {
            // An older incarnation of the sender (a duplicate activation, or one that lost its state): it must not vote.
            if (_staleDropped++ % 1000 == 0)
            {
                LogStalePacket(logger, _id, from, epoch, _peerEpochs[from]);
            }

            return Task.CompletedTask;
        }

        if (epoch > _peerEpochs[from])
        {
            // Remembered durably before anything this packet causes is sent (the flush below covers it).
            RememberPeerEpoch(from, epoch);
        }

        Message<ShardReport>[] messages;
        try
        {
            messages = ReplicaCodec.DecodeMessages(packet);
        }
        catch (InvalidDataException e)
        {
            LogBadPacket(logger, e, _id, from);
            return Task.CompletedTask;
        }

        var effects = new List<Effect<ShardReport>>();
        var now = NowMicros();
        foreach (var message in messages)
        {
            _replica.Handle(from, message, now, effects);
        }

        return ProcessAsync(effects);
    }

    public Task Submit(ShardReport report, bool forwarded)
    {
        if (_probing)
        {
            return Task.CompletedTask; // not ordering yet: the shard's retransmission reaches a pilot
        }

        if (_deactivating || (report.Control == ShardControl.None && (uint)report.Shard >= (uint)_state.ShardCount))
        {
            if (!_deactivating)
            {
                LogUnknownShard(logger, report.Shard);
            }

            return Task.CompletedTask;
        }

        if (!_replica.IsActivePilot(0) && !_replica.IsActivePilot(1))
        {
            // Not a pilot (any more): pass the report on once; a lost report is repaired by the shard's retransmission.
            if (!forwarded)
            {
                // To the pilots it believes in; one that believes only in itself (its view is not won yet) passes the
                // report to every other replica, so that whichever pilots orders it.
                var pilots = BelievedPilots().Where(p => p != _id).ToList();
                foreach (var pilot in pilots.Count > 0 ? pilots : Enumerable.Range(0, _copilot.ReplicaCount).Where(r => r != _id))
                {
                    GrainFactory.GetGrain<ISequencerReplicaGrain>(pilot).Submit(report, true).Ignore();
                }
            }

            return Task.CompletedTask;
        }

        var effects = new List<Effect<ShardReport>>();
        // Shard-set changes come from administrators, not from a shard: their own client id, so the shards' report
        // sequence numbers and theirs never shadow each other.
        var id = new CommandId(report.Control == ShardControl.None ? report.Shard : AdminClient, report.ReportSeq);
        OnSubmitted(id, report);
        _replica.Submit(new Command<ShardReport>(id, report), NowMicros(), effects);
        return ProcessAsync(effects);
    }

    public async Task<WindowSlice> GetWindowsAsync(long fromWindow) => SequencerPublisher.WindowsFrom(await StartedStateAsync(), fromWindow);

    public async Task<SequencerStatus> GetSequencerStatusAsync() => SequencerPublisher.Describe(await StartedStateAsync(), _options);

    /// <inheritdoc />
    public Task<ReplicaStatus> GetState() => GetStatusAsync();

    public async Task<ReplicaStatus> GetStatusAsync()
    {
        if (_probing && !await StartedWithinAsync(TimeSpan.FromSeconds(5)))
        {
            return ProbingStatus(); // still probing or rebuilding: it believes in no pilot (-1)
        }

        var c = _replica.Counters;
        return new ReplicaStatus(
            _id,
            _epoch,
            siloDetails.SiloAddress.ToString(),
            _copilot.Mode.ToString(),
            _copilot.ReplicaCount,
            _replica.BelievedPilot(0),
            _replica.BelievedPilot(1),
            _replica.IsActivePilot(0),
            _replica.IsActivePilot(1),
            _replica.ExecutedThrough(0),
            _replica.ExecutedThrough(1),
            _commandsExecuted,
            c.FastCommits,
            c.SlowPaths,
            c.Takeovers,
            c.ViewsWon,
            c.NullDependencySkips,
            _staleDropped,
            _activatedAt,
            _wakeups,
            _replica.Describe(),
            _checkpoints,
            _log.FirstIndex,
            _log.NextIndex,
            _replica.LogBase(0),
            _replica.LogBase(1),
            _state.History.First,
            _replica.IsRebuilding(0) || _replica.IsRebuilding(1) ? "Rebuilding" : "Replica",
            _lastCheckpointBytes,
            _rebuildBytes,
            _replica.ViewOf(0),
            _replica.ViewOf(1));
    }

    private IEnumerable<int> BelievedPilots() =>
        _copilot.Mode == ReplicationMode.MultiPaxos
            ? [_replica.BelievedPilot(0)]
            : new[] { _replica.BelievedPilot(0), _replica.BelievedPilot(1) }.Distinct();

    private void OnTick()
    {
        if (_deactivating || _probing)
        {
            return;
        }

        _wakeups++;
        var effects = new List<Effect<ShardReport>>();
        _replica.Tick(NowMicros(), effects);
        ProcessAsync(effects).Ignore();
    }

    private async Task OnTimerAsync(CancellationToken cancellationToken)
    {
        if (_deactivating)
        {
            return;
        }

        if (_probing)
        {
            ProbeAgain();
            return;
        }

        DropIdleTransfer();
        var effects = new List<Effect<ShardReport>>();
        var now = NowMicros();
        _replica.Tick(now, effects);
        await ProcessAsync(effects);
        CheckFallback(now);
        await MaybeCheckpointAsync();
        if (IsPilot && _failures is not null)
        {
            foreach (var shard in _failures.Check(_state))
            {
                // Proposed like any command; whichever pilot orders it first decides, the other's is a no-op.
                LogShardFailed(logger, _id, shard, _options.EffectiveShardFailureTimeout!.Value.TotalMilliseconds);
                // Conditional on what was observed: if the shard is heard of before the command executes (the ordering
                // layer itself had stalled), it changes nothing.
                await Submit(ShardReport.ForControl(ShardControl.Fail, shard, SpecLogMetrics.NowMicros(), _state.AppliedSeqOf(shard)), forwarded: true);
            }
        }
    }

    /// <summary>
    /// Belfast's fallback, on pilots only: if the committed cut has not moved for a fallback interval while shards wait,
    /// tell lagging shards to fill and repeat the last notices. Lag-fix signals are advisory outputs (a shard fills
    /// no-ops below a target it already owns), so pilots may issue them without replicating the decision.
    /// </summary>
    private void CheckFallback(long now)
    {
        if (_state.CommittedCut != _lastProgressCut)
        {
            _lastProgressCut = _state.CommittedCut;
            _lastProgressMicros = now;
            return;
        }

        var interval = (long)_options.Ordering.FallbackInterval.TotalMicroseconds;
        if (!IsPilot || !_state.AnyWaiting || now - _lastProgressMicros < interval)
        {
            return;
        }

        _lastProgressMicros = now;
        _output.Clear();
        _state.EvaluateFallback(_output);
        _publisher.Rewind(_state);
        _publisher.Publish(_state, _output);
    }

    private bool IsPilot => _replica.IsActivePilot(0) || _replica.IsActivePilot(1);

    private ShardFailureDetector? _failures;

    /// <summary>
    /// Carries out one core call's effects: state-machine execution and shard notices at once (executed entries are
    /// committed, so any replica would decide the same), persist records to the log, and replica messages only after
    /// the log is durable up to the last record of this call.
    /// </summary>
    private async Task ProcessAsync(List<Effect<ShardReport>> effects)
    {
        if (effects.Count == 0)
        {
            ScheduleWakeup();
            return;
        }

        List<Effect<ShardReport>>? sends = null;
        _output.Clear();
        _executedNow.Clear();
        _answer.Clear();
        var becamePilot = false;
        foreach (var effect in effects)
        {
            switch (effect)
            {
                case PersistEffect<ShardReport> p:
                    var record = ReplicaCodec.EncodeRecord(p.Record);
                    _log.Append(ReplicaCodec.RecordKind, record);
                    _bytesSinceCheckpoint += record.Length;
                    break;
                case SendEffect<ShardReport> or BroadcastEffect<ShardReport>:
                    (sends ??= []).Add(effect);
                    break;
                case ExecuteEffect<ShardReport> e:
                    if (e.Command.Payload.Control == ShardControl.None && (uint)e.Command.Payload.Shard >= (uint)_state.ShardCount)
                    {
                        LogUnknownShard(logger, e.Command.Payload.Shard); // ordered before its join: every replica skips it alike
                        break;
                    }

                    _state.Apply(e.Command.Payload, _output);
                    foreach (var behind in _output.BehindShards)
                    {
                        _answer.Add(behind); // a departed shard that missed windows hears no broadcast
                    }

                    _output.BehindShards.Clear();
                    if (_output.ControlRefused is { } refused)
                    {
                        LogShardChangeRefused(logger, _id, refused);
                        _output.ControlRefused = null;
                    }

                    _executedNow.Add(e.Command.Id);
                    OnExecuted(e.Command.Id);

                    _commandsExecuted++;
                    break;
                case ReplyEffect<ShardReport> r:
                    if (r.Command.Client >= 0 && !_executedNow.Contains(r.Command))
                    {
                        _answer.Add(r.Command.Client); // a retransmitted report: that shard missed a notice
                    }

                    break;
                case PilotChangedEffect<ShardReport> pc:
                    LogPilotChanged(logger, _id, pc.Log, pc.Active, pc.Ballot.ToString());
                    becamePilot |= pc.Active;
                    break;
            }
        }

        if (IsPilot)
        {
            if (becamePilot)
            {
                _publisher.Rewind(_state);
                _output.CommitAdvanced = true; // a new pilot announces the state it executed to every shard
            }

            _publisher.Publish(_state, _output);
            foreach (var shard in _answer)
            {
                _publisher.Answer(_state, shard);
            }
        }

        ScheduleWakeup();
        if (sends is null)
        {
            return;
        }

        // Every message of this call waits until the log is durable up to everything appended so far. Messages of
        // calls that share one group commit leave together, one packet per destination.
        var required = _log.NextIndex;
        foreach (var send in sends)
        {
            if (send is SendEffect<ShardReport> one)
            {
                if (one.To != _id && (uint)one.To < (uint)_copilot.ReplicaCount)
                {
                    _pending.Enqueue((required, one.To, one.Message));
                }

                continue;
            }

            var message = ((BroadcastEffect<ShardReport>)send).Message;
            for (var to = 0; to < _copilot.ReplicaCount; to++)
            {
                if (to != _id)
                {
                    _pending.Enqueue((required, to, message));
                }
            }
        }

        if (_log.DurableIndex < required)
        {
            await _log.FlushAsync(); // covers this call's records and any peer epoch remembered before them
        }

        SendDurable();
    }

    /// <summary>Sends every queued message whose records are durable, one packet per destination.</summary>
    private void SendDurable()
    {
        if (_deactivating)
        {
            return;
        }

        var durable = _log.DurableIndex;
        while (_pending.Count > 0 && _pending.Peek().Required <= durable)
        {
            var (_, to, message) = _pending.Dequeue();
            (_packets[to] ??= []).Add(message);
        }

        for (var to = 0; to < _packets.Length; to++)
        {
            if (_packets[to] is { Count: > 0 } packet)
            {
                if (!liveness.IsHomeActive(to))
                {
                    packet.Clear(); // its node is down: Copilot retransmits what it still needs once the peer is back
                    continue;
                }

                GrainFactory.GetGrain<ISequencerReplicaGrain>(to).Deliver(_id, _epoch, ReplicaCodec.EncodeMessages(packet)).Ignore();
                packet.Clear();
            }
        }
    }

    private void ScheduleWakeup()
    {
        var wait = _replica.NextWakeup - NowMicros();
        if (wait < long.MaxValue / 2)
        {
            _ticker?.WakeIn(TimeSpan.FromMicroseconds(Math.Max(0, wait)));
        }
    }

    /// <summary>Remembers <paramref name="peer"/>'s newest incarnation (a log record; the caller flushes before sending).</summary>
    private void RememberPeerEpoch(int peer, long epoch)
    {
        _peerEpochs[peer] = epoch;
        var bytes = new byte[12];
        BinaryPrimitives.WriteInt32LittleEndian(bytes, peer);
        BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan(4), epoch);
        _log.Append(PeerEpochKind, bytes);
    }

    private static byte[] EncodeIncarnation(long epoch, CopilotOptions copilot)
    {
        var bytes = new byte[13];
        BinaryPrimitives.WriteInt64LittleEndian(bytes, epoch);
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(8), copilot.ReplicaCount);
        bytes[12] = (byte)copilot.Mode;
        return bytes;
    }

    private long NowMicros() => (long)timeProvider.GetElapsedTime(0).TotalMicroseconds;

    [LoggerMessage(Level = LogLevel.Information, Message = "Sequencer replica {Replica} activated: epoch {Epoch}, {Records} records recovered, {Mode} mode, on {Silo}")]
    private static partial void LogActivated(ILogger logger, int replica, long epoch, int records, ReplicationMode mode, SiloAddress silo);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Sequencer replica {Replica}: shard {Shard} held the log back and was not heard of for {TimeoutMs} ms: proposing that it failed")]
    private static partial void LogShardFailed(ILogger logger, int replica, int shard, double timeoutMs);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Sequencer replica {Replica}: shard-set change refused: {Reason}")]
    private static partial void LogShardChangeRefused(ILogger logger, int replica, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Sequencer replica {Replica} (epoch {Epoch}) deactivated: {Reason}")]
    private static partial void LogDeactivated(ILogger logger, int replica, long epoch, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Sequencer replica {Replica}: pilot of log {Log} {Active} at ballot {Ballot}")]
    private static partial void LogPilotChanged(ILogger logger, int replica, int log, bool active, string ballot);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Sequencer replica {Replica}: dropped a packet from replica {From}'s incarnation {Epoch}; incarnation {Known} is newer (a duplicate activation or a replica that lost its data)")]
    private static partial void LogStalePacket(ILogger logger, int replica, int from, long epoch, long known);

    [LoggerMessage(Level = LogLevel.Error, Message = "Sequencer replica {Replica}: undecodable packet from replica {From} dropped")]
    private static partial void LogBadPacket(ILogger logger, Exception e, int replica, int from);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Report from unknown shard {Shard} ignored")]
    private static partial void LogUnknownShard(ILogger logger, int shard);
}
