namespace SpecLog.Copilot;

public sealed partial class Replica<T>
{
    private long _blockedDelay;

    private EntryValue<T>? CommittedAt(int log, long slot) => _logs[log].Get(slot) is { IsCommitted: true } s ? s.Value : null;

    /// <summary>
    /// Executes the merged order as far as it is decided. With heads P.i (log 0) and Q.j (log 1): an entry executes
    /// when it is committed and its dependency lies before the other head (own-log order comes from the heads
    /// themselves: nothing after an uncommitted entry of a log executes). If both heads are committed and depend on
    /// each other (a cycle), log 0's entry goes first. Compatibility (I2) makes the result the same whatever order the
    /// commits arrived in. Null-dependency elimination: a committed head whose dependency range of the other log is
    /// uncommitted but made only of entries whose commands all executed already does not wait for it.
    /// </summary>
    private void RunExecutor()
    {
        while (true)
        {
            var a = CommittedAt(0, _heads[0]);
            var b = CommittedAt(1, _heads[1]);
            if (a is not null && (a.IsNoOp || a.Dep < _heads[1]))
            {
                ExecuteEntry(0, a);
                continue;
            }

            if (b is not null && (b.IsNoOp || b.Dep < _heads[0]))
            {
                ExecuteEntry(1, b);
                continue;
            }

            if (a is not null && b is not null)
            {
                Counters.CycleBreaks++;
                ExecuteEntry(0, a);
                continue;
            }

            if (_options.NullDependencyElimination)
            {
                if (a is not null && AllNull(1, _heads[1], a.Dep))
                {
                    Counters.NullDependencySkips++;
                    ExecuteEntry(0, a);
                    continue;
                }

                if (b is not null && AllNull(0, _heads[0], b.Dep))
                {
                    Counters.NullDependencySkips++;
                    ExecuteEntry(1, b);
                    continue;
                }
            }

            return;
        }
    }

    /// <summary>
    /// True when every entry of <paramref name="log"/> in [from, to] is a committed no-op or carries only commands that
    /// already executed. An uncommitted entry can only end up with the commands this replica saw or as a no-op (a new
    /// pilot never reuses an entry index, see the pipeline window), so waiting for it cannot change what executes.
    /// </summary>
    private bool AllNull(int log, long from, long to)
    {
        var state = _logs[log];
        for (var slot = from; slot <= to; slot++)
        {
            var s = state.Get(slot);
            if (s?.Value is not { } value)
            {
                return false;
            }

            if (value.IsNoOp)
            {
                if (s.IsCommitted)
                {
                    continue;
                }

                return false;
            }

            foreach (var c in value.Commands)
            {
                if (!HasExecuted(c.Id))
                {
                    return false;
                }
            }
        }

        return true;
    }

    private void ExecuteEntry(int log, EntryValue<T> value)
    {
        var slot = _heads[log];
        var reply = _pilots[0] is not null || _pilots[1] is not null;
        foreach (var c in value.Commands)
        {
            if (HasExecuted(c.Id))
            {
                continue;
            }

            _highWater[c.Id.Client] = c.Id.Seq;
            _fx.Add(new ExecuteEffect<T>(c, log, slot));
            if (reply)
            {
                _fx.Add(new ReplyEffect<T>(c.Id));
            }
        }

        _fx.Add(new EntryExecutedEffect<T>(log, slot));
        _heads[log] = slot + 1;
    }

    private bool HasCommittedBacklog() => _logs[0].MaxCommitted >= _heads[0] || _logs[1].MaxCommitted >= _heads[1];

    private long? BlockedDeadline() =>
        (_pilots[0] is not null || _pilots[1] is not null) && HasCommittedBacklog() ? _blockedSince + _blockedDelay : null;

    /// <summary>
    /// Fast takeover trigger: a pilot whose execution has not moved for the takeover timeout while committed entries
    /// wait takes over the uncommitted entries they wait on (its own log's head, or the other log's entries up to the
    /// head's dependency). Repeated attempts back off exponentially with randomisation.
    /// </summary>
    private void CheckBlocked()
    {
        var pilot = _pilots[0] is not null || _pilots[1] is not null;
        if (!pilot || !HasCommittedBacklog() || _heads[0] != _blockedHead0 || _heads[1] != _blockedHead1)
        {
            _blockedHead0 = _heads[0];
            _blockedHead1 = _heads[1];
            _blockedSince = _now;
            _blockedAttempts = 0;
            _blockedDelay = _options.TakeoverTimeout;
            return;
        }

        if (_now < _blockedSince + _blockedDelay)
        {
            return;
        }

        _blockedSince = _now;
        _blockedDelay = Backoff(_blockedAttempts++);
        var started = 0;
        for (var log = 0; log < 2 && started < MaxParallelRecoveries; log++)
        {
            if (_pilots[log] is null)
            {
                continue;
            }

            var head = _heads[log];
            var mine = CommittedAt(log, head);
            if (mine is null)
            {
                // Our own log is stuck: recover its open entries (a takeover or a failed candidacy may hold them).
                for (var slot = head; slot <= _logs[log].MaxKnown && started < MaxParallelRecoveries; slot++)
                {
                    if (CommittedAt(log, slot) is null)
                    {
                        TakeOver(log, slot, ref started);
                    }
                }

                continue;
            }

            var other = 1 - log;
            for (var slot = _heads[other]; slot <= mine.Dep && started < MaxParallelRecoveries; slot++)
            {
                if (CommittedAt(other, slot) is null)
                {
                    TakeOver(other, slot, ref started);
                }
            }
        }
    }

    private void TakeOver(int log, long slot, ref int started)
    {
        if (_proposals.TryGetValue((log, slot), out var p) && (p.Phase != Phase.Preempted || _now < p.RetryAt))
        {
            return;
        }

        Counters.Takeovers++;
        StartRecovery(log, slot, p?.Attempts ?? 0, ProposalKind.Recovery);
        started++;
    }
}
