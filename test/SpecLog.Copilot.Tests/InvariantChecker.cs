namespace SpecLog.Copilot.Tests;

/// <summary>
/// Checks the protocol invariants as effects happen, across all replicas of one run:
/// I1 at most one value committed per (log, slot); I2 committed entries of the two logs are compatible;
/// I3 every replica's executed sequence is a prefix of one reference sequence; I4 no command executes twice in one
/// replica life; I5 each log's entries execute in order, only once committed, and only their committed commands;
/// I6 an acceptor's persisted promises never go backwards (a replica rebuilt after a disk loss is a new acceptor whose
/// view promises start at the rebuild floor, itself at least every other replica's persisted view promise); I7 the client history is linearizable: a reply is emitted
/// only once the command (or a newer command of its client, which supersedes it) executed on the replying replica
/// (checked at the effect), and a command replied before another command's first submission executes before it
/// (checked over the whole history by <see cref="CheckHistory"/>).
/// </summary>
internal sealed class InvariantChecker
{
    private readonly List<EntryValue<int>?>[] _committed = [[], []];
    private readonly List<CommandId> _reference = [];
    private readonly Life[] _lives;
    private readonly Dictionary<(int Replica, int Log, long Slot), Ballot> _slotPromises = [];
    private readonly Dictionary<(int Replica, int Log), Ballot> _viewPromises = [];
    private readonly Dictionary<CommandId, long> _submittedAt = [];
    private readonly Dictionary<CommandId, long> _repliedAt = [];

    public InvariantChecker(int replicas)
    {
        _lives = Enumerable.Range(0, replicas).Select(_ => new Life()).ToArray();
    }

    public string? Failure { get; private set; }

    public int CommittedEntries { get; private set; }

    public int ReferenceLength => _reference.Count;

    public int ExecutedCount(int replica) => _lives[replica].Executed.Count;

    public bool HasExecuted(int replica, CommandId id) => _lives[replica].Set.Contains(id);

    public EntryValue<int>? CommittedValue(int log, long slot) => slot < _committed[log].Count ? _committed[log][(int)slot] : null;

    /// <summary>
    /// A replica restarted: a new life. Rebuilt from its full record log, its executor replays from the beginning; from
    /// a checkpoint, the host restores its state-machine snapshot (<paramref name="snapshot"/>, taken with the
    /// checkpoint) and the executor goes on from the checkpoint's heads, so the life continues the snapshot's.
    /// </summary>
    public void OnRestart(int replica, ExecutionSnapshot? snapshot = null) =>
        _lives[replica] = snapshot is null ? new Life() : Life.From(snapshot);

    /// <summary>
    /// A host probed every other replica to rebuild <paramref name="replica"/> after a disk loss: the floor's view
    /// promises must be at least every view promise the others persisted (they answer with their current promises, or
    /// their running candidacies' ballots).
    /// </summary>
    public void OnRebuildProbe(int replica, RebuildFloor floor)
    {
        foreach (var ((other, log), promised) in _viewPromises)
        {
            if (other != replica && floor.View(log) < promised)
            {
                Fail($"I6: the floor {floor} rebuilding replica {replica} is below replica {other}'s view promise {promised} for log {log}");
            }
        }
    }

    /// <summary>
    /// <paramref name="replica"/> was rebuilt after a disk loss from a donor's transfer checkpoint and state-machine
    /// snapshot: a new life continuing the donor's executed sequence, and a new acceptor (its promises start afresh, at
    /// the floor its rebuild record carries).
    /// </summary>
    public void OnRebuild(int replica, ExecutionSnapshot snapshot)
    {
        _lives[replica] = Life.From(snapshot);
        foreach (var key in _slotPromises.Keys.Where(k => k.Replica == replica).ToList())
        {
            _slotPromises.Remove(key);
        }

        _viewPromises.Remove((replica, 0));
        _viewPromises.Remove((replica, 1));
    }

    /// <summary>
    /// The simulated state machine of <paramref name="replica"/> as it stands (what a host snapshots with a checkpoint):
    /// the commands executed in this life, in order, the per-client high-water marks and the next entry of each log.
    /// </summary>
    public ExecutionSnapshot Snapshot(int replica)
    {
        var life = _lives[replica];
        return new ExecutionSnapshot([.. life.Executed], new Dictionary<int, long>(life.HighWater), [.. life.NextEntry]);
    }

    /// <summary>Feeds one effect of a replica call to its check (commit, execution, finished entry, reply); other effects are the host's.</summary>
    public void Observe(int replica, Effect<int> effect, long now)
    {
        switch (effect)
        {
            case CommittedEffect<int> c:
                OnCommitted(replica, c.Log, c.Slot, c.Value);
                break;
            case ExecuteEffect<int> x:
                OnExecute(replica, x.Command.Id, x.Log, x.Slot);
                break;
            case EntryExecutedEffect<int> x:
                OnEntryExecuted(replica, x.Log, x.Slot);
                break;
            case ReplyEffect<int> reply:
                OnReply(replica, reply.Command, now);
                break;
        }
    }

    public void OnCommitted(int replica, int log, long slot, EntryValue<int> value)
    {
        var list = _committed[log];
        while (list.Count <= slot)
        {
            list.Add(null);
        }

        if (list[(int)slot] is { } existing)
        {
            if (!existing.SameAs(value))
            {
                Fail($"I1: replica {replica} committed {log}.{slot} = {value} but {existing} was committed before");
            }

            return;
        }

        list[(int)slot] = value;
        CommittedEntries++;
        if (value.IsNoOp)
        {
            return;
        }

        // I2: for committed P.i (dep d) and Q.j: d >= j or Q.j.dep >= i. No-ops execute nothing and are exempt.
        var other = _committed[1 - log];
        for (var j = Math.Max(0, value.Dep + 1); j < other.Count; j++)
        {
            if (other[(int)j] is { IsNoOp: false } q && q.Dep < slot)
            {
                Fail($"I2: committed {log}.{slot} = {value} and {1 - log}.{j} = {q} are incompatible (learnt at replica {replica})");
                return;
            }
        }
    }

    public void OnExecute(int replica, CommandId id, int log, long slot)
    {
        var life = _lives[replica];
        if (!life.Set.Add(id))
        {
            Fail($"I4: replica {replica} executed {id} twice");
            return;
        }

        if (CommittedValue(log, slot) is not { } entry || !entry.Commands.Any(c => c.Id == id))
        {
            Fail($"I5: replica {replica} executed {id} from {log}.{slot}, which is not committed with that command");
            return;
        }

        if (slot != life.NextEntry[log])
        {
            Fail($"I5: replica {replica} executed a command of {log}.{slot} while the next entry of log {log} is {life.NextEntry[log]}");
            return;
        }

        var index = life.Executed.Count;
        life.Executed.Add(id);
        life.HighWater[id.Client] = Math.Max(life.HighWater.GetValueOrDefault(id.Client, long.MinValue), id.Seq);
        if (index < _reference.Count)
        {
            if (_reference[index] != id)
            {
                Fail($"I3: replica {replica} executed {id} at position {index}, another replica executed {_reference[index]} there");
            }
        }
        else
        {
            _reference.Add(id);
        }
    }

    public void OnEntryExecuted(int replica, int log, long slot)
    {
        var life = _lives[replica];
        if (slot != life.NextEntry[log])
        {
            Fail($"I5: replica {replica} executed {log}.{slot} but the next entry of log {log} is {life.NextEntry[log]}");
            return;
        }

        if (CommittedValue(log, slot) is null)
        {
            Fail($"I5: replica {replica} executed {log}.{slot} before it was committed");
            return;
        }

        life.NextEntry[log] = slot + 1;
    }

    public void OnPersist(int replica, PersistRecord<int> record)
    {
        switch (record)
        {
            case SlotRecord<int> s:
                if (_slotPromises.TryGetValue((replica, s.Log, s.Slot), out var before) && s.Promised < before)
                {
                    Fail($"I6: replica {replica} lowered its promise for {s.Log}.{s.Slot} from {before} to {s.Promised}");
                }

                _slotPromises[(replica, s.Log, s.Slot)] = s.Promised;
                break;
            case ViewPromiseRecord<int> v:
                if (_viewPromises.TryGetValue((replica, v.Log), out var view) && v.Promised < view)
                {
                    Fail($"I6: replica {replica} lowered its view promise for log {v.Log} from {view} to {v.Promised}");
                }

                _viewPromises[(replica, v.Log)] = v.Promised;
                break;
            case RebuildRecord<int> rebuild:
                for (var log = 0; log < 2; log++)
                {
                    if (!_viewPromises.TryGetValue((replica, log), out var held) || held < rebuild.Floor.View(log))
                    {
                        _viewPromises[(replica, log)] = rebuild.Floor.View(log);
                    }
                }

                break;
        }
    }

    /// <summary>A client submitted <paramref name="id"/> at <paramref name="now"/> (only the first submission counts).</summary>
    public void OnSubmit(CommandId id, long now) => _submittedAt.TryAdd(id, now);

    /// <summary>
    /// I7, at the effect: a replica answers a command only after it executed it in this life, or executed a newer
    /// command of the same client (which supersedes it: the core answers such a resubmission too). Records the first
    /// reply time of each command for <see cref="CheckHistory"/>.
    /// </summary>
    public void OnReply(int replica, CommandId id, long now)
    {
        var life = _lives[replica];
        if (!life.Set.Contains(id) && !(life.HighWater.TryGetValue(id.Client, out var high) && high > id.Seq))
        {
            Fail($"I7: replica {replica} replied for {id} at t={now} before executing it (nor any newer command of client {id.Client})");
        }

        _repliedAt.TryAdd(id, now);
    }

    /// <summary>I7 over the history so far (call at the end of a schedule): see <see cref="FindHistoryViolation"/>.</summary>
    public void CheckHistory()
    {
        if (Failure is null && FindHistoryViolation(_reference, _submittedAt, _repliedAt) is { } violation)
        {
            Fail(violation);
        }
    }

    /// <summary>
    /// I7 over a client history: <paramref name="executed"/> is the executed sequence (the same on every replica by I3),
    /// <paramref name="submittedAt"/> each command's first submission time, <paramref name="repliedAt"/> the time of the
    /// first reply any replica emitted for it. For every replied A and every executed B first submitted strictly after
    /// A's reply, A must execute before B. A command that never executed because a newer command of its client
    /// superseded it takes effect where that newer command executed (the first executed command of the client with a
    /// higher Seq); a replied command that neither executed nor was superseded is itself a violation. Commands that
    /// never executed (superseded or still in flight) impose nothing as B. O(replied × executed). Null when linearizable.
    /// </summary>
    public static string? FindHistoryViolation(
        IReadOnlyList<CommandId> executed,
        IReadOnlyDictionary<CommandId, long> submittedAt,
        IReadOnlyDictionary<CommandId, long> repliedAt)
    {
        ArgumentNullException.ThrowIfNull(executed);
        ArgumentNullException.ThrowIfNull(submittedAt);
        ArgumentNullException.ThrowIfNull(repliedAt);
        var position = new Dictionary<CommandId, int>(executed.Count);
        for (var i = 0; i < executed.Count; i++)
        {
            position.TryAdd(executed[i], i);
        }

        foreach (var (a, repliedAtTime) in repliedAt.OrderBy(kv => kv.Value).ThenBy(kv => kv.Key.Client).ThenBy(kv => kv.Key.Seq))
        {
            string how;
            if (position.TryGetValue(a, out var at))
            {
                how = $"executed at position {at}";
            }
            else
            {
                at = -1;
                for (var i = 0; i < executed.Count; i++)
                {
                    if (executed[i].Client == a.Client && executed[i].Seq > a.Seq)
                    {
                        at = i;
                        break;
                    }
                }

                if (at < 0)
                {
                    return $"I7: {a} was replied at t={repliedAtTime} but neither executed nor was superseded by a newer command of client {a.Client}";
                }

                how = $"superseded by {executed[at]} at position {at}";
            }

            for (var j = 0; j <= at; j++)
            {
                var b = executed[j];
                if (submittedAt.TryGetValue(b, out var submitted) && submitted > repliedAtTime)
                {
                    if (b == a)
                    {
                        return $"I7: {a} was replied at t={repliedAtTime}, before its first submission at t={submitted}";
                    }

                    return $"I7: {a} was replied at t={repliedAtTime} ({how}) but {b}, first submitted later at t={submitted}, "
                        + $"executed before it at position {j}";
                }
            }
        }

        return null;
    }

    public void Fail(string message) => Failure ??= message;

    private sealed class Life
    {
        public static Life From(ExecutionSnapshot s)
        {
            var life = new Life();
            life.Executed.AddRange(s.Executed);
            life.Set.UnionWith(s.Executed);
            foreach (var (client, seq) in s.HighWater)
            {
                life.HighWater[client] = seq;
            }

            life.NextEntry[0] = s.NextEntry[0];
            life.NextEntry[1] = s.NextEntry[1];
            return life;
        }

        public List<CommandId> Executed { get; } = [];

        public HashSet<CommandId> Set { get; } = [];

        /// <summary>Highest Seq executed per client in this life (what the core's HasExecuted compares against).</summary>
        public Dictionary<int, long> HighWater { get; } = [];

        public long[] NextEntry { get; } = new long[2];
    }
}

/// <summary>A simulated host's state-machine snapshot: the executed commands in order, high-water marks, next entries.</summary>
internal sealed record ExecutionSnapshot(IReadOnlyList<CommandId> Executed, IReadOnlyDictionary<int, long> HighWater, long[] NextEntry);
