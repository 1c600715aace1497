namespace SpecLog.Copilot.Tests;

/// <summary>
/// Checks the protocol invariants as effects happen, across all replicas of one run:
/// I1 at most one value committed per (log, slot); I2 committed entries of the two logs are compatible;
/// I3 every replica's executed sequence is a prefix of one reference sequence; I4 no command executes twice in one
/// replica life; I5 each log's entries execute in order, only once committed, and only their committed commands;
/// I6 an acceptor's persisted promises never go backwards.
/// </summary>
internal sealed class InvariantChecker
{
    private readonly List<EntryValue<int>?>[] _committed = [[], []];
    private readonly List<CommandId> _reference = [];
    private readonly Life[] _lives;
    private readonly Dictionary<(int Replica, int Log, long Slot), Ballot> _slotPromises = [];
    private readonly Dictionary<(int Replica, int Log), Ballot> _viewPromises = [];

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

    /// <summary>A replica restarted: its executor replays from the beginning (a new life).</summary>
    public void OnRestart(int replica) => _lives[replica] = new Life();

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
        }
    }

    public void Fail(string message) => Failure ??= message;

    private sealed class Life
    {
        public List<CommandId> Executed { get; } = [];

        public HashSet<CommandId> Set { get; } = [];

        public long[] NextEntry { get; } = new long[2];
    }
}
