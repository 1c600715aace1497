namespace SpecLog.Copilot;

/// <summary>
/// One Copilot replica as a synchronous state machine: every call takes the current time and appends the effects the
/// host must carry out (persist, send, execute, reply). It reads no clock and draws randomness only from the injected
/// <see cref="Random"/> (for backoff and election jitter), so a seeded host replays it exactly.
/// </summary>
/// <remarks>
/// Roles: every replica is an acceptor for both logs and executes the merged order. The owner of a log's view ballot is
/// that log's pilot (log 0: the pilot, log 1: the copilot); a pilot batches client commands into its log's entries. A
/// pilot whose execution waits on uncommitted entries takes them over; replicas that stop hearing from a pilot elect a
/// new one for that log only.
/// </remarks>
/// <typeparam name="T">The command payload type.</typeparam>
public sealed partial class Replica<T>
{
    private readonly CopilotOptions _options;
    private readonly Random _random;
    private readonly int _n;
    private readonly int _f;
    private readonly int _fastQuorum;
    private readonly int _slowQuorum;
    private readonly bool _copilotMode;
    private readonly LogState[] _logs = [new(), new()];
    private readonly long[] _lastHeard;
    private readonly long[] _pilotHeard = new long[2];
    private readonly long[] _electionJitter = new long[2];
    private readonly long[] _electionRetryAt = new long[2];
    private readonly int[] _electionAttempts = new int[2];
    private readonly long[] _catchUpAt = new long[2];
    private readonly long[] _lastOtherFastAccept = [-1, -1];
    private readonly Ballot[] _anchorBallot = [Ballot.None, Ballot.None];
    private readonly long[][] _anchorAcks = new long[2][];
    private readonly PilotState?[] _pilots = new PilotState?[2];
    private readonly Candidacy?[] _candidacies = new Candidacy?[2];
    private readonly Dictionary<(int Log, long Slot), Proposal> _proposals = [];
    private readonly Queue<(int From, Message<T> Message)> _selfQueue = new();
    private readonly long[] _heads = new long[2];
    private readonly Dictionary<int, long> _highWater = [];
    private readonly Ballot[] _activated = [new Ballot(0, 0), new Ballot(0, 1)];
    private List<Effect<T>> _fx = [];
    private long _now;
    private bool _started;
    private int _maxRound;
    private long _nextHeartbeat;
    private long _nextProposalDue = long.MaxValue;
    private bool _conflictsChanged;
    private long _blockedSince;
    private long _blockedHead0 = -1;
    private long _blockedHead1 = -1;
    private int _blockedAttempts;
    private long _nextWakeup;

    /// <summary>Creates a replica, fresh or rebuilt from the records it persisted before a crash.</summary>
    /// <param name="options">The group configuration (identical on every replica).</param>
    /// <param name="id">This replica's index, 0 to n - 1. Replica 0 starts as pilot of log 0, replica 1 of log 1.</param>
    /// <param name="random">Seeded randomness for backoff and election jitter.</param>
    /// <param name="recovered">
    /// Everything this replica persisted, in order; null or empty for a fresh replica. It may begin with a
    /// <see cref="CheckpointRecord{T}"/> (the records of a <see cref="TakeCheckpoint"/> followed by everything persisted
    /// after it): the replica then starts from the checkpoint's heads and executes only the entries from them on.
    /// </param>
    /// <exception cref="ArgumentException">A checkpoint record appears anywhere but first, or is inconsistent.</exception>
    public Replica(CopilotOptions options, int id, Random random, IEnumerable<PersistRecord<T>>? recovered = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(random);
        options.Validate();
        ArgumentOutOfRangeException.ThrowIfNegative(id);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(id, options.ReplicaCount);
        _options = options;
        _random = random;
        Id = id;
        _n = options.ReplicaCount;
        _f = options.F;
        _fastQuorum = options.FastQuorum;
        _slowQuorum = options.SlowQuorum;
        _copilotMode = options.Mode == ReplicationMode.Copilot;
        _lastHeard = new long[_n];
        _watermarks = [NewWatermarks(_n), NewWatermarks(_n)];
        _anchorAcks[0] = new long[_n];
        _anchorAcks[1] = new long[_n];
        _logs[0].ViewPromise = new Ballot(0, 0);
        _logs[1].ViewPromise = new Ballot(0, 1);
        if (recovered is not null)
        {
            var first = true;
            foreach (var record in recovered)
            {
                if (record is CheckpointRecord<T> checkpoint)
                {
                    if (!first)
                    {
                        throw new ArgumentException("A checkpoint record must be the first recovered record.", nameof(recovered));
                    }

                    RestoreCheckpoint(checkpoint);
                }
                else
                {
                    Restore(record);
                }

                first = false;
            }
        }

        for (var log = 0; log < 2; log++)
        {
            var state = _logs[log];
            NoteRound(state.ViewPromise);
            for (var slot = state.Base; slot < state.End; slot++)
            {
                var s = state.Get(slot);
                if (s is null)
                {
                    continue;
                }

                NoteRound(s.Promised);
                NoteRound(s.AcceptedBallot);
                if (s.Exists)
                {
                    state.MaxKnown = Math.Max(state.MaxKnown, slot);
                }

                if (s.IsCommitted)
                {
                    state.MaxCommitted = Math.Max(state.MaxCommitted, slot);
                }
            }

            while (state.Get(state.CommittedPrefix) is { IsCommitted: true })
            {
                state.CommittedPrefix++;
            }

            if (state.CommittedPrefix < _heads[log])
            {
                throw new ArgumentException(
                    $"Inconsistent records: log {log} executed up to {_heads[log]} but committed only up to {state.CommittedPrefix}.", nameof(recovered));
            }
        }

        for (var log = 0; log < 2; log++)
        {
            var view = _logs[log].ViewPromise;
            if (view.Replica == Id && view == _activated[log] && (_copilotMode || log == 0))
            {
                ResumePilot(log, view);
            }
        }
    }

    /// <summary>Counts of what this replica did (fresh after a restart).</summary>
    public ReplicaCounters Counters { get; } = new();

    /// <summary>This replica's index.</summary>
    public int Id { get; }

    /// <summary>The configuration.</summary>
    public CopilotOptions Options => _options;

    /// <summary>
    /// The time (same unit as <c>now</c>) at which the host should call <see cref="Tick"/> next; calling earlier or later
    /// is harmless. Updated by every call.
    /// </summary>
    public long NextWakeup => _nextWakeup;

    /// <summary>True when this replica is the active pilot of <paramref name="log"/> and proposes client commands in it.</summary>
    public bool IsActivePilot(int log) => _pilots[log] is not null;

    /// <summary>The replica this one believes owns <paramref name="log"/>'s view (its pilot, or a candidate taking over).</summary>
    public int BelievedPilot(int log) => _logs[log].ViewPromise.Replica;

    /// <summary>The view ballot this replica has promised for <paramref name="log"/>.</summary>
    public Ballot ViewBallot(int log) => _logs[log].ViewPromise;

    /// <summary>Number of entries of <paramref name="log"/> executed so far (the next entry to execute).</summary>
    public long ExecutedThrough(int log) => _heads[log];

    /// <summary>Length of the contiguous committed prefix of <paramref name="log"/> known here.</summary>
    public long CommittedPrefix(int log) => _logs[log].CommittedPrefix;

    /// <summary>Highest entry index of <paramref name="log"/> this replica has seen (-1 for none).</summary>
    public long MaxKnownSlot(int log) => _logs[log].MaxKnown;

    /// <summary>The committed value of an entry, if this replica holds it (false for a compacted entry, below <see cref="LogBase"/>).</summary>
    public bool TryGetCommitted(int log, long slot, out EntryValue<T> value)
    {
        if (_logs[log].Get(slot) is { IsCommitted: true } s)
        {
            value = s.Value!;
            return true;
        }

        value = null!;
        return false;
    }

    /// <summary>
    /// What this replica's acceptor state holds for an entry (for tests and diagnostics). A compacted entry (below
    /// <see cref="LogBase"/>) reports <see cref="SlotStatus.Committed"/> with no value: it is committed everywhere, its
    /// value is no longer held.
    /// </summary>
    public SlotReport<T> InspectSlot(int log, long slot)
    {
        if (slot < _logs[log].Base)
        {
            return new SlotReport<T>(SlotStatus.Committed, Ballot.None, null, false);
        }

        var s = _logs[log].Get(slot);
        return s is null ? new SlotReport<T>(SlotStatus.Empty, Ballot.None, null, false) : Snapshot(s);
    }

    /// <summary>True when <paramref name="command"/> (or a newer command of the same client) has executed here.</summary>
    public bool HasExecuted(CommandId command) => _highWater.TryGetValue(command.Client, out var h) && h >= command.Seq;

    /// <summary>The highest view (ballot) this replica promised for <paramref name="log"/>, as text (<c>b3.1</c>; <c>b-</c> for none).</summary>
    public string ViewOf(int log) => _logs[log].ViewPromise.ToString();

    /// <summary>Describes the replica's roles and in-flight proposals, for diagnostics and test failure reports.</summary>
    public string Describe()
    {
        var parts = new List<string> { $"replica {Id} t={_now}" };
        for (var log = 0; log < 2; log++)
        {
            var c = _candidacies[log];
            parts.Add($"log {log}: view {_logs[log].ViewPromise} pilot={_pilots[log] is not null} base {_logs[log].Base} head {_heads[log]} committed {_logs[log].CommittedPrefix}/{_logs[log].MaxCommitted} known {_logs[log].MaxKnown}"
                + (c is null ? "" : $" candidacy {c.Ballot} recovering={c.Recovering} [{c.From}..{c.To}] replies {c.Replies.Count}")
                + (_logs[log].Get(_heads[log]) is { } next ? $" next {next.Status} {next.AcceptedBallot} dep {next.Value?.Dep.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "-"}" : " next empty"));
        }

        if (_floor is { } floor)
        {
            parts.Add($"rebuilt from floor {floor}, abstaining {IsRebuilding(0)}/{IsRebuilding(1)}");
        }

        parts.Add($"executed per client (high-water): {string.Join(", ", _highWater.OrderBy(h => h.Key).Select(h => $"{h.Key}:{h.Value}"))}");
        parts.Add($"proposals {_proposals.Count}");
        foreach (var p in _proposals.Values.OrderBy(p => (p.Log, p.Slot)).Take(12))
        {
            parts.Add($"  {p.Log}.{p.Slot} {p.Kind} {p.Phase} {p.Ballot} value {p.Value} replies fa={p.FastReplies.Count} acks={p.Acks.Count} prep={p.PrepareReplies.Count} retry={p.RetryAt} next={p.NextSend} conflicts={(p.ConflictSlots is null ? "-" : string.Join(",", p.ConflictSlots))}");
        }

        return string.Join("\n", parts);
    }

    /// <summary>Arms the timers and replays the committed log through the executor; called once, before or by the first other call.</summary>
    public void Start(long now, List<Effect<T>> effects)
    {
        Begin(now, effects);
        Finish();
    }

    /// <summary>A client submits a command. Active pilots batch it into their log; others ignore it (the client retries).</summary>
    public void Submit(Command<T> command, long now, List<Effect<T>> effects)
    {
        Begin(now, effects);
        if (HasExecuted(command.Id))
        {
            if (_pilots[0] is not null || _pilots[1] is not null)
            {
                _fx.Add(new ReplyEffect<T>(command.Id));
            }
        }
        else
        {
            foreach (var pilot in _pilots)
            {
                if (pilot is not null && pilot.Pending.Add(command.Id))
                {
                    if (pilot.Buffer.Count == 0)
                    {
                        pilot.BatchOpenedAt = _now;
                    }

                    pilot.Buffer.Add(command);
                }
            }
        }

        Finish();
    }

    /// <summary>Handles a message from replica <paramref name="from"/>.</summary>
    public void Handle(int from, Message<T> message, long now, List<Effect<T>> effects)
    {
        ArgumentNullException.ThrowIfNull(message);
        Begin(now, effects);
        if (from >= 0 && from < _n && from != Id)
        {
            _lastHeard[from] = Math.Max(_lastHeard[from], now);
            Dispatch(from, message);
        }

        Finish();
    }

    /// <summary>Fires whatever timers are due (heartbeats, batching, retransmission, takeover, elections).</summary>
    public void Tick(long now, List<Effect<T>> effects)
    {
        Begin(now, effects);
        Finish();
    }

    private void Begin(long now, List<Effect<T>> effects)
    {
        ArgumentNullException.ThrowIfNull(effects);
        _fx = effects;
        _now = Math.Max(_now, now);
        if (!_started)
        {
            _started = true;
            Array.Fill(_lastHeard, _now);
            _pilotHeard[0] = _pilotHeard[1] = _now;
            _blockedSince = _now;
            _nextHeartbeat = _now;
            for (var log = 0; log < 2; log++)
            {
                _electionJitter[log] = DrawJitter();
            }

            foreach (var p in _proposals.Values)
            {
                p.NextSend = _now;
                Arm(p);
            }

            RunExecutor();
        }
    }

    private void Finish()
    {
        Drain();
        RunDue();
        Drain();
        _nextWakeup = ComputeNextWakeup();
    }

    private void Drain()
    {
        while (_selfQueue.TryDequeue(out var item))
        {
            Dispatch(item.From, item.Message);
        }
    }

    private void Dispatch(int from, Message<T> message)
    {
        switch (message)
        {
            case FastAccept<T> m when Held(m.Log, m.Slot) && Abstains(m.Log, m.Slot):
                Abstain(from, m.Log, m.Slot);
                break;
            case Accept<T> m when Held(m.Log, m.Slot) && Abstains(m.Log, m.Slot):
                Abstain(from, m.Log, m.Slot);
                break;
            case Prepare<T> m when Held(m.Log, m.Slot) && Abstains(m.Log, m.Slot):
                Abstain(from, m.Log, m.Slot);
                break;
            case FastAccept<T> m when Held(m.Log, m.Slot):
                OnFastAccept(from, m);
                break;
            case FastAcceptReply<T> m:
                OnFastAcceptReply(from, m);
                break;
            case Accept<T> m when Held(m.Log, m.Slot):
                OnAccept(from, m);
                break;
            case AcceptReply<T> m:
                OnAcceptReply(from, m);
                break;
            case Reject<T> m:
                OnReject(from, m);
                break;
            case Commit<T> m when ValidLog(m.Log) && ValidSlot(m.Slot):
                if (m.Slot >= _logs[m.Log].Base)
                {
                    LearnCommit(m.Log, m.Slot, m.Value);
                }

                // (A compacted entry is committed here already; the ack stops a proposer that has not compacted it.)
                if (from != Id)
                {
                    Send(from, new CommitAck<T>(m.Log, m.Slot));
                }

                break;
            case CommitAck<T> m:
                OnCommitAck(from, m);
                break;
            case Prepare<T> m when Held(m.Log, m.Slot):
                OnPrepare(from, m);
                break;
            case PrepareReply<T> m:
                OnPrepareReply(from, m);
                break;
            case ViewPrepare<T> m when ValidLog(m.Log):
                OnViewPrepare(from, m);
                break;
            case ViewPrepareReply<T> m when ValidLog(m.Log):
                OnViewPrepareReply(from, m);
                break;
            case Heartbeat<T> m:
                OnHeartbeat(from, m);
                break;
            case CatchUpRequest<T> m when ValidLog(m.Log):
                OnCatchUpRequest(from, m);
                break;
            case AnchorAck<T> m when IsMyView(m.Log, m.Ballot):
                NoteAnchor(m.Log, m.Ballot, from, m.Slot);
                break;
        }
    }

    private static bool ValidLog(int log) => log is 0 or 1;

    private static bool ValidSlot(long slot) => slot >= 0 && slot < int.MaxValue - 1;

    /// <summary>
    /// True for an entry whose acceptor state this replica still holds (or may create): at or above the log's compaction
    /// base. A FastAccept, Accept or Prepare of a compacted entry is a stale duplicate (the entry is committed at every
    /// replica) and is dropped unanswered. A Prepare in particular must not be answered "empty": a majority of such
    /// answers would make its recoverer write a no-op over a committed entry. No live recovery can need the answer
    /// either, since its recoverer holds the entry committed and never starts one (see <see cref="StartRecovery(int, long, long, List{Effect{T}})"/>).
    /// </summary>
    private bool Held(int log, long slot) => ValidLog(log) && ValidSlot(slot) && slot >= _logs[log].Base;

    private void Send(int to, Message<T> message)
    {
        if (to == Id)
        {
            _selfQueue.Enqueue((Id, message));
        }
        else
        {
            _fx.Add(new SendEffect<T>(to, message));
        }
    }

    /// <summary>
    /// Sends to every replica, this one included. The local acceptor handles it at once (its answer is queued), so a
    /// proposer's own vote always reflects exactly the state it proposed from: a pilot's FastAccept carries the latest
    /// other-log entry its acceptor has seen, hence its own vote is always OK, and nothing can slip in between.
    /// </summary>
    private void SendAll(Message<T> message)
    {
        _fx.Add(new BroadcastEffect<T>(message));
        Dispatch(Id, message);
    }

    private void NoteRound(Ballot ballot)
    {
        if (ballot.Round > _maxRound)
        {
            _maxRound = ballot.Round;
        }
    }

    /// <summary>A ballot above every round this replica has seen, owned by it.</summary>
    private Ballot NewBallot() => new(++_maxRound, Id);

    private long Backoff(int attempt)
    {
        var step = _options.BackoffBase;
        for (var i = 0; i < attempt && step < _options.BackoffMax; i++)
        {
            step *= 2;
        }

        step = Math.Min(step, _options.BackoffMax);
        return step + (long)(_random.NextDouble() * step);
    }

    private long DrawJitter() => (long)(_random.NextDouble() * (_options.ElectionTimeout / 4));

    private void RunDue()
    {
        if (_now >= _nextHeartbeat)
        {
            SendHeartbeat();
            _nextHeartbeat = _now + _options.HeartbeatInterval;
        }

        for (var log = 0; log < 2; log++)
        {
            CheckElection(log);
            CheckCandidacy(log);
        }

        if (_conflictsChanged)
        {
            _conflictsChanged = false;
            foreach (var p in _proposals.Values.Where(p => p.Phase == Phase.Prepare && p.ConflictSlots is not null).ToList())
            {
                EvaluateRecovery(p);
            }
        }

        if (_now >= _nextProposalDue)
        {
            ProposalTimers();
        }

        for (var log = 0; log < 2; log++)
        {
            if (_pilots[log] is { } pilot)
            {
                TryPropose(pilot);
            }
        }

        CheckBlocked();
    }

    private long ComputeNextWakeup()
    {
        var next = Math.Min(_nextHeartbeat, _nextProposalDue);
        for (var log = 0; log < 2; log++)
        {
            next = Math.Min(next, ElectionDeadline(log));
            if (_candidacies[log] is { } c)
            {
                next = Math.Min(next, c.NextSend);
            }

            if (_pilots[log] is { Buffer.Count: > 0 } pilot && WindowOpen(pilot))
            {
                // A full window reopens on a message (an acknowledgement), not on a timer.
                next = Math.Min(next, pilot.BatchOpenedAt + _options.PingPongWait);
            }
        }

        if (BlockedDeadline() is { } blocked)
        {
            next = Math.Min(next, blocked);
        }

        return Math.Max(next, _now + 1);
    }

    /// <summary>Replica <paramref name="replica"/>, promising view <paramref name="ballot"/>, durably knows entries up to <paramref name="slot"/>.</summary>
    private void NoteAnchor(int log, Ballot ballot, int replica, long slot)
    {
        if (replica < 0 || replica >= _n)
        {
            return;
        }

        var acks = _anchorAcks[log];
        if (_anchorBallot[log] != ballot)
        {
            if (_anchorBallot[log] > ballot)
            {
                return;
            }

            _anchorBallot[log] = ballot;
            Array.Fill(acks, -1);
        }

        if (slot > acks[replica])
        {
            acks[replica] = slot;
        }
    }

    private bool IsMyView(int log, Ballot ballot) =>
        ValidLog(log) && (_pilots[log]?.Ballot == ballot || _candidacies[log]?.Ballot == ballot);

    /// <summary>The highest entry f+1 replicas have acknowledged under view <paramref name="ballot"/> (-1 if none).</summary>
    private long Anchor(int log, Ballot ballot)
    {
        NoteAnchor(log, ballot, Id, _logs[log].MaxKnown);
        if (_anchorBallot[log] != ballot)
        {
            return -1;
        }

        var sorted = (long[])_anchorAcks[log].Clone();
        Array.Sort(sorted);
        return sorted[_n - _slowQuorum];
    }
}
