using System.Collections.Immutable;

namespace SpecLog.Copilot;

public sealed partial class Replica<T>
{
    private enum Phase
    {
        FastAccept,
        Accept,
        Prepare,
        Committed,
        Preempted,
    }

    private enum ProposalKind
    {
        /// <summary>A pilot's own proposal at its view ballot.</summary>
        Pilot,

        /// <summary>A fast takeover (or a retry of a preempted proposal) at a fresh ballot.</summary>
        Recovery,

        /// <summary>A new pilot recovering its log after winning a view.</summary>
        ViewRecovery,
    }

    /// <summary>The state of this replica as the active pilot of one log.</summary>
    private sealed class PilotState(int log, Ballot ballot, long nextSlot)
    {
        public int Log { get; } = log;

        public Ballot Ballot { get; } = ballot;

        public long NextSlot { get; set; } = nextSlot;

        /// <summary>Commands waiting for the current batch to close.</summary>
        public List<Command<T>> Buffer { get; } = [];

        /// <summary>Identities in the buffer or in uncommitted own entries (a resubmission of these is ignored).</summary>
        public HashSet<CommandId> Pending { get; } = [];

        /// <summary>Commands of each uncommitted own entry, released when the entry commits (whatever value it commits with).</summary>
        public Dictionary<long, CommandId[]> InFlight { get; } = [];

        public long BatchOpenedAt { get; set; }

        /// <summary>True when the other pilot proposed since this pilot's last proposal: the batch closes at once.</summary>
        public bool MyTurn { get; set; }

        /// <summary>This pilot's latest proposed entry (-1 for none): ping-pong batching tells crossing proposals by it.</summary>
        public long LastProposed { get; set; } = -1;

        /// <summary>
        /// True while the other pilot does not keep pace (it is slow or cut off): batches then close at once instead of
        /// each waiting out the ping-pong wait. Set when the other pilot answers a proposal of this pilot (proposes an
        /// entry depending on it) more than two waits after it was made, or when two waits in a row pass without any
        /// proposal from it (one may be a hiccup, or the start of a crossing); cleared by an answer within the wait.
        /// </summary>
        public bool OtherLate { get; set; }

        /// <summary>Consecutive batches that waited out the ping-pong wait without hearing from the other pilot.</summary>
        public int SilentWaits { get; set; }

        /// <summary>Whether a proposal of the other pilot arrived since this pilot's latest proposal.</summary>
        public bool HeardOther { get; set; }

        /// <summary>The highest entry of this pilot's log an entry of the other pilot has depended on.</summary>
        public long HighestAnswered { get; set; } = -1;

        private const int RecentProposals = 64;

        private readonly long[] _recentSlots = InitRecent();
        private readonly long[] _recentTimes = new long[RecentProposals];

        /// <summary>Remembers when <paramref name="slot"/> was proposed (the last <see cref="RecentProposals"/> proposals).</summary>
        public void NoteProposed(long slot, long now)
        {
            var i = (int)(slot % RecentProposals);
            _recentSlots[i] = slot;
            _recentTimes[i] = now;
        }

        /// <summary>When this pilot proposed <paramref name="slot"/>, if it is among its recent proposals.</summary>
        public long? ProposedAt(long slot)
        {
            var i = (int)(slot % RecentProposals);
            return slot >= 0 && _recentSlots[i] == slot ? _recentTimes[i] : null;
        }

        private static long[] InitRecent()
        {
            var slots = new long[RecentProposals];
            Array.Fill(slots, -1L);
            return slots;
        }
    }

    /// <summary>One entry this replica is driving to commit: its own proposal, a takeover, or a view recovery.</summary>
    private sealed class Proposal(int log, long slot, Ballot ballot, ProposalKind kind, Phase phase)
    {
        public int Log { get; } = log;

        public long Slot { get; } = slot;

        public Ballot Ballot { get; } = ballot;

        public ProposalKind Kind { get; set; } = kind;

        public Phase Phase { get; set; } = phase;

        /// <summary>The value being proposed; a recovery replaces it with the value it adopts, never with a pilot's buffer.</summary>
        public EntryValue<T>? Value { get; set; }

        public Dictionary<int, (bool Ok, long Dep)> FastReplies { get; } = [];

        public HashSet<int> Acks { get; } = [];

        public Dictionary<int, PrepareReply<T>> PrepareReplies { get; } = [];

        public long Started { get; set; }

        public long NextSend { get; set; }

        public long RetryAt { get; set; }

        public int Attempts { get; set; }

        public int CommitSends { get; set; }

        public long? Hint { get; set; }

        /// <summary>Ambiguous recovery: other-log entries that must commit before this one can be decided.</summary>
        public List<long>? ConflictSlots { get; set; }

        public long ConflictWaitSince { get; set; }
    }

    private void ResumePilot(int log, Ballot view)
    {
        var state = _logs[log];
        var pilot = new PilotState(log, view, state.MaxKnown + 1) { MyTurn = log == 0 };
        _pilots[log] = pilot;
        for (var slot = state.Base; slot < state.End; slot++)
        {
            var s = state.Get(slot);
            if (s?.Value is null || s.IsCommitted || s.AcceptedBallot != view)
            {
                continue;
            }

            var fast = s.Status == SlotStatus.FastAccepted;
            var p = new Proposal(log, slot, view, ProposalKind.Pilot, fast ? Phase.FastAccept : Phase.Accept) { Value = s.Value };
            if (fast)
            {
                p.FastReplies[Id] = (s.FastOk, s.ReplyDep);
            }
            else
            {
                p.Acks.Add(Id);
            }

            _proposals[(log, slot)] = p;
            var ids = s.Value.Commands.Select(c => c.Id).ToArray();
            pilot.InFlight[slot] = ids;
            pilot.Pending.UnionWith(ids);
            pilot.LastProposed = slot;
        }
    }

    private void TryPropose(PilotState pilot)
    {
        while (pilot.Buffer.Count > 0)
        {
            if (!WindowOpen(pilot))
            {
                return;
            }

            var timedOut = _now >= pilot.BatchOpenedAt + _options.PingPongWait;
            var close = !_copilotMode
                || pilot.MyTurn
                || pilot.OtherLate
                || timedOut
                || pilot.Buffer.Count >= _options.MaxBatch;
            if (!close)
            {
                return;
            }

            if (_copilotMode && !pilot.MyTurn && !pilot.OtherLate)
            {
                // Two waits in a row without a single proposal of the other pilot: stop waiting for it until it
                // answers in time. (A crossing proposal is not its turn but shows it is alive, so it resets the count.)
                pilot.SilentWaits = pilot.HeardOther || !timedOut ? 0 : pilot.SilentWaits + 1;
                pilot.OtherLate = pilot.SilentWaits >= 2;
            }

            Propose(pilot);
            if (_copilotMode)
            {
                return;
            }
        }
    }

    /// <summary>True when the pilot may propose its next entry: within W + 1 of its anchor.</summary>
    private bool WindowOpen(PilotState pilot)
    {
        // Never reuse an index some recovery has already touched.
        pilot.NextSlot = Math.Max(pilot.NextSlot, _logs[pilot.Log].MaxKnown + 1);
        return pilot.NextSlot <= Anchor(pilot.Log, pilot.Ballot) + _options.PipelineWindow + 1;
    }

    private void Propose(PilotState pilot)
    {
        var take = Math.Min(pilot.Buffer.Count, _options.MaxBatch);
        var commands = ImmutableArray.CreateBuilder<Command<T>>(take);
        for (var i = 0; i < take; i++)
        {
            var c = pilot.Buffer[i];
            if (HasExecuted(c.Id))
            {
                pilot.Pending.Remove(c.Id);
            }
            else
            {
                commands.Add(c);
            }
        }

        pilot.Buffer.RemoveRange(0, take);
        if (pilot.Buffer.Count > 0)
        {
            pilot.BatchOpenedAt = _now;
        }

        if (commands.Count == 0)
        {
            return;
        }

        var slot = pilot.NextSlot++;
        Counters.Proposed++;
        var dep = _copilotMode ? _logs[1 - pilot.Log].MaxKnown : -1;
        var value = new EntryValue<T>(false, dep, commands.ToImmutable());
        pilot.InFlight[slot] = value.Commands.Select(c => c.Id).ToArray();
        pilot.MyTurn = false;
        pilot.LastProposed = slot;
        pilot.HeardOther = false;
        pilot.NoteProposed(slot, _now);
        var p = new Proposal(pilot.Log, slot, pilot.Ballot, ProposalKind.Pilot, _copilotMode ? Phase.FastAccept : Phase.Accept)
        {
            Value = value,
            Started = _now,
            NextSend = _now + _options.RetransmitInterval,
        };
        _proposals[(pilot.Log, slot)] = p;
        Arm(p);
        SendAll(_copilotMode
            ? new FastAccept<T>(pilot.Log, slot, pilot.Ballot, value)
            : new Accept<T>(pilot.Log, slot, pilot.Ballot, value));
    }

    private bool TryGetProposal(int log, long slot, Ballot ballot, Phase phase, out Proposal proposal)
    {
        return _proposals.TryGetValue((log, slot), out proposal!) && proposal.Ballot == ballot && proposal.Phase == phase;
    }

    private void OnFastAcceptReply(int from, FastAcceptReply<T> m)
    {
        if (IsMyView(m.Log, m.Ballot))
        {
            NoteAnchor(m.Log, m.Ballot, from, m.Slot);
        }

        if (TryGetProposal(m.Log, m.Slot, m.Ballot, Phase.FastAccept, out var p) && p.FastReplies.TryAdd(from, (m.Ok, m.Dep)))
        {
            EvaluateFast(p);
        }
    }

    private void EvaluateFast(Proposal p)
    {
        var ok = 0;
        foreach (var r in p.FastReplies.Values)
        {
            if (r.Ok)
            {
                ok++;
            }
        }

        if (ok >= _fastQuorum)
        {
            // Fast path. Only while this replica still holds the entry at the proposal's ballot: once it promised a
            // recoverer a higher ballot, it told that recoverer it had not committed, and must keep its word.
            if (EffectivePromise(p.Log, _logs[p.Log].Get(p.Slot)) == p.Ballot)
            {
                Counters.FastCommits++;
                CommitProposal(p, p.Value!);
            }
            else
            {
                Preempt(p);
            }

            return;
        }

        var replies = p.FastReplies.Count;
        if (replies >= _slowQuorum && (ok + (_n - replies) < _fastQuorum || _now >= p.Started + _options.FastPathWait))
        {
            // Slow path: the (f+1)-th smallest suggested dependency.
            var deps = p.FastReplies.Values.Select(r => r.Dep).Order().ToArray();
            Counters.SlowPaths++;
            StartAccept(p, p.Value!.WithDep(deps[_f]));
            return;
        }

        Arm(p);
    }

    private void StartAccept(Proposal p, EntryValue<T> value)
    {
        p.Phase = Phase.Accept;
        p.Value = value;
        p.ConflictSlots = null;
        p.Acks.Clear();
        p.NextSend = _now + _options.RetransmitInterval;
        Arm(p);
        SendAll(new Accept<T>(p.Log, p.Slot, p.Ballot, value));
    }

    private void OnAcceptReply(int from, AcceptReply<T> m)
    {
        if (IsMyView(m.Log, m.Ballot))
        {
            NoteAnchor(m.Log, m.Ballot, from, m.Slot);
        }

        if (TryGetProposal(m.Log, m.Slot, m.Ballot, Phase.Accept, out var p))
        {
            p.Acks.Add(from);
            if (p.Acks.Count >= _slowQuorum)
            {
                CommitProposal(p, p.Value!);
            }
        }
    }

    private void CommitProposal(Proposal p, EntryValue<T> value)
    {
        p.Phase = Phase.Committed;
        p.Value = value;
        p.ConflictSlots = null;
        p.Acks.Clear();
        p.Acks.Add(Id);
        p.CommitSends = 1;
        p.NextSend = _now + _options.RetransmitInterval;
        _fx.Add(new BroadcastEffect<T>(new Commit<T>(p.Log, p.Slot, value)));
        LearnCommit(p.Log, p.Slot, value);
        Arm(p);
    }

    private void OnReject(int from, Reject<T> m)
    {
        NoteRound(m.SlotPromise);
        NoteRound(m.ViewPromise);
        if (ValidLog(m.Log) && m.ViewPromise <= m.Ballot && m.SlotPromise > m.Ballot && IsMyView(m.Log, m.Ballot))
        {
            // Still our view there, the entry is under recovery (guarded, hence durably known): it counts as an anchor.
            NoteAnchor(m.Log, m.Ballot, from, m.Slot);
        }

        if (!ValidLog(m.Log) || !_proposals.TryGetValue((m.Log, m.Slot), out var p) || p.Ballot != m.Ballot
            || p.Phase is Phase.Committed or Phase.Preempted)
        {
            return;
        }

        if (p.Kind != ProposalKind.Recovery && m.ViewPromise > _logs[m.Log].ViewPromise)
        {
            // Somebody won (or is winning) a newer view of this log: adopt the promise; a pilot or candidate of an
            // older view steps down.
            _logs[m.Log].ViewPromise = m.ViewPromise;
            _fx.Add(new PersistEffect<T>(new ViewPromiseRecord<T>(m.Log, m.ViewPromise)));
            _pilotHeard[m.Log] = _now;
            CheckDeposed(m.Log);
            if (_proposals.TryGetValue((m.Log, m.Slot), out var still) && ReferenceEquals(still, p) && p.Kind == ProposalKind.Pilot)
            {
                _proposals.Remove((m.Log, m.Slot));
            }

            return;
        }

        Preempt(p);
    }

    private void Preempt(Proposal p)
    {
        Counters.Preemptions++;
        p.Phase = Phase.Preempted;
        p.ConflictSlots = null;
        p.RetryAt = _now + Backoff(p.Attempts++);
        Arm(p);
    }

    private void CheckDeposed(int log)
    {
        var view = _logs[log].ViewPromise;
        if (_pilots[log] is { } pilot && view > pilot.Ballot)
        {
            _pilots[log] = null;
            var stale = _proposals.Where(kv => kv.Value.Kind == ProposalKind.Pilot && kv.Value.Log == log && kv.Value.Phase != Phase.Committed)
                .Select(kv => kv.Key)
                .ToList();
            foreach (var key in stale)
            {
                _proposals.Remove(key);
            }

            _fx.Add(new PilotChangedEffect<T>(log, false, pilot.Ballot));
        }

        if (_candidacies[log] is { } c && view > c.Ballot)
        {
            AbortCandidacy(log);
        }
    }

    /// <summary>Records when <paramref name="p"/> next needs attention.</summary>
    private void Arm(Proposal p)
    {
        var due = DueOf(p);
        if (due < _nextProposalDue)
        {
            _nextProposalDue = due;
        }
    }

    private long DueOf(Proposal p)
    {
        switch (p.Phase)
        {
            case Phase.Preempted:
                return p.RetryAt;
            case Phase.FastAccept when p.FastReplies.Count >= _slowQuorum:
                return Math.Min(p.NextSend, p.Started + _options.FastPathWait);
            case Phase.Prepare when p.ConflictSlots is not null:
                return Math.Min(p.NextSend, p.ConflictWaitSince + _options.TakeoverTimeout);
            default:
                return p.NextSend;
        }
    }

    private void ProposalTimers()
    {
        _nextProposalDue = long.MaxValue;
        foreach (var p in _proposals.Values.ToList())
        {
            if (!_proposals.TryGetValue((p.Log, p.Slot), out var current) || !ReferenceEquals(current, p))
            {
                continue;
            }

            OnProposalTimer(p);
            if (_proposals.TryGetValue((p.Log, p.Slot), out current) && ReferenceEquals(current, p))
            {
                Arm(p);
            }
        }
    }

    private void OnProposalTimer(Proposal p)
    {
        switch (p.Phase)
        {
            case Phase.FastAccept:
                if (p.FastReplies.Count >= _slowQuorum && _now >= p.Started + _options.FastPathWait)
                {
                    EvaluateFast(p);
                    if (p.Phase != Phase.FastAccept)
                    {
                        return;
                    }
                }

                if (_now >= p.NextSend)
                {
                    p.NextSend = _now + _options.RetransmitInterval;
                    Resend(p.FastReplies.Keys, new FastAccept<T>(p.Log, p.Slot, p.Ballot, p.Value!));
                }

                break;
            case Phase.Accept:
                if (_now >= p.NextSend)
                {
                    p.NextSend = _now + _options.RetransmitInterval;
                    Resend(p.Acks, new Accept<T>(p.Log, p.Slot, p.Ballot, p.Value!));
                }

                break;
            case Phase.Prepare:
                if (_now >= p.NextSend)
                {
                    p.NextSend = _now + _options.RetransmitInterval;
                    Resend(p.PrepareReplies.Keys, new Prepare<T>(p.Log, p.Slot, p.Ballot, p.Hint));
                    if (p.ConflictSlots is not null && p.Hint is { } hint)
                    {
                        foreach (var (replica, reply) in p.PrepareReplies)
                        {
                            if (!reply.ConflictsComplete || reply.ConflictsAbove > hint)
                            {
                                Send(replica, new Prepare<T>(p.Log, p.Slot, p.Ballot, hint));
                            }
                        }
                    }
                }

                if (p.ConflictSlots is { } slots && _now >= p.ConflictWaitSince + _options.TakeoverTimeout)
                {
                    // Ambiguous recovery still waiting on entries of the other log: recover those too.
                    p.ConflictWaitSince = _now;
                    var other = 1 - p.Log;
                    foreach (var k in slots)
                    {
                        if (_logs[other].Get(k) is not { IsCommitted: true }
                            && (!_proposals.TryGetValue((other, k), out var q) || (q.Phase == Phase.Preempted && _now >= q.RetryAt)))
                        {
                            StartRecovery(other, k, q?.Attempts ?? 0, ProposalKind.Recovery);
                        }
                    }
                }

                break;
            case Phase.Committed:
                if (_now >= p.NextSend)
                {
                    if (p.CommitSends >= _options.MaxCommitRetransmits)
                    {
                        _proposals.Remove((p.Log, p.Slot));
                        return;
                    }

                    p.CommitSends++;
                    p.NextSend = _now + _options.RetransmitInterval;
                    Resend(p.Acks, new Commit<T>(p.Log, p.Slot, p.Value!));
                }

                break;
            case Phase.Preempted:
                if (_now >= p.RetryAt)
                {
                    if (_logs[p.Log].Get(p.Slot) is { IsCommitted: true })
                    {
                        _proposals.Remove((p.Log, p.Slot));
                    }
                    else
                    {
                        StartRecovery(p.Log, p.Slot, p.Attempts, p.Kind == ProposalKind.ViewRecovery && _candidacies[p.Log] is not null ? ProposalKind.ViewRecovery : ProposalKind.Recovery);
                    }
                }

                break;
        }
    }

    private void Resend(IEnumerable<int> answered, Message<T> message)
    {
        var done = answered as ICollection<int> ?? answered.ToList();
        for (var r = 0; r < _n; r++)
        {
            if (r != Id && !done.Contains(r))
            {
                _fx.Add(new SendEffect<T>(r, message));
            }
        }
    }
}
