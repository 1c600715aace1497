namespace SpecLog.Copilot.Tests;

/// <summary>
/// A hand-driven network for scenario tests: messages wait in <see cref="Pending"/> until the test delivers or drops
/// them; time moves only when the test advances it. Every effect goes through the same invariant checker as the
/// simulator, so a scenario that breaks I1–I6 (or answers a command before executing it, I7) fails at the step that
/// broke it; the client history (I7) is checked by <see cref="ThrowIfBroken"/> and at the end of <see cref="Run"/>.
/// </summary>
internal sealed class Harness
{
    private readonly List<PersistRecord<int>>[] _disks;
    private readonly ExecutionSnapshot?[] _snapshots;
    private long _order;

    public Harness(CopilotOptions options)
    {
        Options = options;
        N = options.ReplicaCount;
        Checker = new InvariantChecker(N);
        _disks = Enumerable.Range(0, N).Select(_ => new List<PersistRecord<int>>()).ToArray();
        _snapshots = new ExecutionSnapshot?[N];
        Replicas = Enumerable.Range(0, N).Select(r => new Replica<int>(options, r, new Random(1000 + r))).ToArray();
        Down = new bool[N];
        for (var r = 0; r < N; r++)
        {
            Step(r, (rep, fx) => rep.Start(Now, fx));
        }
    }

    public static CopilotOptions Defaults(int n, ReplicationMode mode = ReplicationMode.Copilot) => new()
    {
        ReplicaCount = n,
        Mode = mode,
        HeartbeatInterval = 20_000,
        ElectionTimeout = 150_000,
        TakeoverTimeout = 10_000,
        PingPongWait = 0,
        FastPathWait = 2_000,
        RetransmitInterval = 20_000,
        BackoffBase = 5_000,
        BackoffMax = 80_000,
        PipelineWindow = 4,
    };

    public CopilotOptions Options { get; }

    public int N { get; }

    public Replica<int>[] Replicas { get; }

    public bool[] Down { get; }

    public InvariantChecker Checker { get; }

    public List<Envelope> Pending { get; } = [];

    public List<(int Replica, CommandId Command)> Executed { get; } = [];

    public List<(int Replica, int Log, long Slot, EntryValue<int> Value, long At)> Commits { get; } = [];

    public List<(int Replica, CommandId Command, long At)> Replies { get; } = [];

    public long Now { get; private set; }

    public void ThrowIfBroken()
    {
        Checker.CheckHistory();
        ThrowIfFailed();
    }

    private void ThrowIfFailed()
    {
        if (Checker.Failure is { } failure)
        {
            throw new InvalidOperationException(failure);
        }
    }

    public void Submit(int replica, int client, long seq)
    {
        Checker.OnSubmit(new CommandId(client, seq), Now);
        Step(replica, (rep, fx) => rep.Submit(new Command<int>(new CommandId(client, seq), client), Now, fx));
    }

    public void StartRecovery(int replica, int log, long slot) => Step(replica, (rep, fx) => rep.StartRecovery(log, slot, Now, fx));

    /// <summary>Delivers pending messages matching <paramref name="which"/>, in send order, including matching ones they cause.</summary>
    public int Deliver(Func<Envelope, bool> which)
    {
        var count = 0;
        while (true)
        {
            var index = Pending.FindIndex(e => which(e));
            if (index < 0)
            {
                return count;
            }

            var e = Pending[index];
            Pending.RemoveAt(index);
            count++;
            if (!Down[e.To])
            {
                Step(e.To, (rep, fx) => rep.Handle(e.From, e.Message, Now, fx));
            }
        }
    }

    public int Drop(Func<Envelope, bool> which) => Pending.RemoveAll(e => which(e));

    /// <summary>Moves time forward by <paramref name="micros"/>, firing every due timer once per 1 ms step.</summary>
    public void Advance(long micros)
    {
        var end = Now + micros;
        while (Now < end)
        {
            Now = Math.Min(end, Now + 1_000);
            TickDue();
        }
    }

    /// <summary>
    /// Runs the network until <paramref name="done"/> holds or the time budget ends: delivers every message
    /// <paramref name="deliverable"/> allows (choosing the next with <paramref name="pick"/>, FIFO by default), then
    /// advances to the next timer. Held messages stay pending.
    /// </summary>
    public bool Run(long budget, Func<bool>? done = null, Func<Envelope, bool>? deliverable = null, Func<List<Envelope>, int>? pick = null)
    {
        var end = Now + budget;
        while (Now < end)
        {
            ThrowIfFailed();
            if (done?.Invoke() == true)
            {
                ThrowIfBroken();
                return true;
            }

            var candidates = Pending.Where(e => deliverable?.Invoke(e) ?? true).ToList();
            if (candidates.Count > 0)
            {
                var e = candidates[pick?.Invoke(candidates) ?? 0];
                Pending.Remove(e);
                Now += 10;                                    // every hop takes a little time, so a livelock runs out of budget
                if (!Down[e.To])
                {
                    Step(e.To, (rep, fx) => rep.Handle(e.From, e.Message, Now, fx));
                }

                continue;
            }

            var next = Enumerable.Range(0, N).Where(r => !Down[r]).Select(r => Replicas[r].NextWakeup).DefaultIfEmpty(end).Min();
            Now = Math.Clamp(next, Now + 1, end);
            TickDue();
        }

        ThrowIfBroken();
        return done?.Invoke() == true;
    }

    public void Crash(int replica)
    {
        Down[replica] = true;
        Pending.RemoveAll(e => e.To == replica);
    }

    public void Restart(int replica)
    {
        Down[replica] = false;
        Replicas[replica] = new Replica<int>(Options, replica, new Random(2000 + replica), _disks[replica]);
        Checker.OnRestart(replica, _disks[replica] is [CheckpointRecord<int>, ..] ? _snapshots[replica] : null);
        Step(replica, (rep, fx) => rep.Start(Now, fx));
    }

    /// <summary>The records replica <paramref name="replica"/> persisted (or its checkpoint and the records after it).</summary>
    public IReadOnlyList<PersistRecord<int>> Disk(int replica) => _disks[replica];

    /// <summary>
    /// Checkpoints <paramref name="replica"/> as a host would: its records are replaced by the checkpoint's, and its
    /// executed sequence is snapshotted, so a later <see cref="Restart"/> goes on from the checkpoint.
    /// </summary>
    public ReplicaCheckpoint<int> Checkpoint(int replica)
    {
        var checkpoint = Replicas[replica].TakeCheckpoint();
        _snapshots[replica] = Checker.Snapshot(replica);
        _disks[replica].Clear();
        _disks[replica].AddRange(checkpoint.Records);
        return checkpoint;
    }

    public EntryValue<int>? Committed(int log, long slot) => Checker.CommittedValue(log, slot);

    private void TickDue()
    {
        for (var r = 0; r < N; r++)
        {
            if (!Down[r] && Replicas[r].NextWakeup <= Now)
            {
                Step(r, (rep, fx) => rep.Tick(Now, fx));
            }
        }
    }

    private void Step(int r, Action<Replica<int>, List<Effect<int>>> call)
    {
        var fx = new List<Effect<int>>();
        call(Replicas[r], fx);
        foreach (var effect in fx)
        {
            if (effect is PersistEffect<int> p)
            {
                _disks[r].Add(p.Record);
                Checker.OnPersist(r, p.Record);
            }
        }

        foreach (var effect in fx)
        {
            Checker.Observe(r, effect, Now);
            switch (effect)
            {
                case SendEffect<int> s:
                    Pending.Add(new Envelope(r, s.To, s.Message, _order++));
                    break;
                case BroadcastEffect<int> b:
                    for (var to = 0; to < N; to++)
                    {
                        if (to != r)
                        {
                            Pending.Add(new Envelope(r, to, b.Message, _order++));
                        }
                    }

                    break;
                case CommittedEffect<int> c:
                    Commits.Add((r, c.Log, c.Slot, c.Value, Now));
                    break;
                case ExecuteEffect<int> x:
                    Executed.Add((r, x.Command.Id));
                    break;
                case ReplyEffect<int> reply:
                    Replies.Add((r, reply.Command, Now));
                    break;
            }
        }
    }

    public sealed record Envelope(int From, int To, Message<int> Message, long Order)
    {
        public bool Is<TMessage>() => Message is TMessage;

        public bool About(int log, long slot) => Message switch
        {
            FastAccept<int> m => m.Log == log && m.Slot == slot,
            FastAcceptReply<int> m => m.Log == log && m.Slot == slot,
            Accept<int> m => m.Log == log && m.Slot == slot,
            AcceptReply<int> m => m.Log == log && m.Slot == slot,
            Reject<int> m => m.Log == log && m.Slot == slot,
            Commit<int> m => m.Log == log && m.Slot == slot,
            CommitAck<int> m => m.Log == log && m.Slot == slot,
            Prepare<int> m => m.Log == log && m.Slot == slot,
            PrepareReply<int> m => m.Log == log && m.Slot == slot,
            _ => false,
        };
    }
}
