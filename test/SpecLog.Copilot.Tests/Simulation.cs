using System.Text;

namespace SpecLog.Copilot.Tests;

/// <summary>Thrown when a simulated schedule breaks an invariant or fails to finish; the message names the seed.</summary>
internal sealed class SimulationException(string message) : Exception(message);

/// <summary>
/// Deterministic discrete-event simulation of n replicas and a few closed-loop clients, all driven by one seed (time
/// in µs): random message delays (hence reordering), drops, duplicates, slowdowns of any replica (pilots included),
/// crashes and restarts from the persisted records of at most f replicas at a time, and network partitions. Faults stop
/// at a seeded time; from then on every submitted command must execute on every replica (liveness), and the client
/// history (first submission and first reply of every command) must be linearizable (I7). Hosts also compact their
/// replicas and replace their records with checkpoints on a schedule drawn from a second generator of the same seed
/// (so the network and fault schedule stay what they were without compaction); a restart from a checkpoint restores the
/// host's snapshot of the executed sequence taken with it, and execution must continue it exactly.
/// </summary>
internal sealed partial class Simulation
{
    private const long LivenessBudget = 30_000_000;

    private readonly int _seed;
    private readonly int _n;
    private readonly Random _rng;
    private readonly CopilotOptions _options;
    private readonly PriorityQueue<Event, (long Time, long Order)> _events = new();
    private readonly Host[] _hosts;
    private readonly Client[] _clients;
    private readonly InvariantChecker _checker;
    private readonly StringBuilder? _trace;
    private readonly List<Effect<int>> _effects = [];
    private readonly int[] _group;
    private readonly double _dropRate;
    private readonly double _duplicateRate;
    private readonly long _maxDelay;
    private readonly long _faultEnd;
    private readonly int _totalCommands;
    private readonly bool _faults;
    private readonly long _thinkTime;
    private readonly (int Replica, long Extra)? _permanentSlow;
    private readonly Random _compactRng;
    private readonly double _compactRate;
    private readonly double _checkpointRate;
    private readonly SimulationTweaks _tweaks;
    private readonly Random _diskRng;
    private readonly double _diskLossRate;
    private long _now;
    private long _order;
    private bool _healed;
    private int _down;
    private long _steps;
    private int _crashes;
    private int _partitions;
    private int _slowdowns;
    private int _viewChanges;
    private int _checkpoints;
    private int _checkpointRestarts;
    private readonly Dictionary<string, long> _counters = [];

    public string TraceText => _trace?.ToString() ?? "";

    /// <summary>Client-observed latency (µs) from first submission to the first reply, per command.</summary>
    public List<long> Latencies { get; } = [];

    /// <summary>Sum of every replica life's counters (filled when the run ends).</summary>
    public IReadOnlyDictionary<string, long> Counters => _counters;

    /// <summary>Checkpoints taken (each replaced a host's records).</summary>
    public int Checkpoints => _checkpoints;

    /// <summary>Restarts rebuilt from a checkpoint (with the host's snapshot).</summary>
    public int CheckpointRestarts => _checkpointRestarts;

    public Simulation(int seed, int n, ReplicationMode mode = ReplicationMode.Copilot, bool trace = false, Action<SimulationTweaks>? tweak = null)
    {
        _seed = seed;
        _n = n;
        _rng = new Random(seed);
        var tweaks = new SimulationTweaks();
        tweak?.Invoke(tweaks);
        _compactRng = new Random(unchecked((seed * 7919) + 104_729));
        _compactRate = tweaks.CompactionRate ?? new[] { 0.0, 0.05, 0.3 }[_compactRng.Next(3)];
        _checkpointRate = tweaks.CheckpointRate ?? new[] { 0.0, 0.01, 0.05 }[_compactRng.Next(3)];
        _tweaks = tweaks;
        _diskRng = new Random(unchecked((seed * 104_723) + 7_919));
        _diskLossRate = tweaks.DiskLossRate ?? new[] { 0.0, 0.5, 1.0 }[_diskRng.Next(3)];
        var chunk = tweaks.CompactionChunk ?? new[] { 1, 8, 64 }[_compactRng.Next(3)];
        _options = new CopilotOptions
        {
            ReplicaCount = n,
            Mode = mode,
            HeartbeatInterval = 20_000,
            ElectionTimeout = 150_000,
            TakeoverTimeout = tweaks.TakeoverTimeout ?? new long[] { 3_000, 10_000, 20_000 }[_rng.Next(3)],
            PingPongWait = tweaks.PingPongWait ?? new long[] { 0, 1_000, 3_000 }[_rng.Next(3)],
            FastPathWait = 2_000,
            RetransmitInterval = 20_000,
            BackoffBase = 5_000,
            BackoffMax = 160_000,
            PipelineWindow = new[] { 1, 3, 16 }[_rng.Next(3)],
            MaxBatch = tweaks.MaxBatch ?? new[] { 1, 3, 64 }[_rng.Next(3)],
            NullDependencyElimination = _rng.Next(4) != 0,
            MaxCommitRetransmits = 5,
            CompactionChunk = chunk,
        };
        _checker = new InvariantChecker(n);
        _trace = trace ? new StringBuilder() : null;
        _group = new int[n];
        _dropRate = tweaks.DropRate ?? new[] { 0.0, 0.01, 0.05, 0.15 }[_rng.Next(4)];
        _duplicateRate = tweaks.DuplicateRate ?? new[] { 0.0, 0.02, 0.1 }[_rng.Next(3)];
        _maxDelay = tweaks.MaxDelay ?? new long[] { 500, 2_000, 8_000 }[_rng.Next(3)];
        _faultEnd = _rng.NextInt64(100_000, 1_200_000);
        _faults = tweaks.Faults;
        _thinkTime = tweaks.ThinkTime ?? 30_000;
        _hosts = new Host[n];
        for (var r = 0; r < n; r++)
        {
            _hosts[r] = new Host(NewReplica(r, new Random(_rng.Next()), []));
        }

        if (tweaks.SlowReplica is { } slow)
        {
            _hosts[slow.Replica].Extra = slow.Extra;
            _permanentSlow = slow;
        }

        var clientCount = tweaks.Clients ?? _rng.Next(2, 6);
        _clients = new Client[clientCount];
        for (var c = 0; c < clientCount; c++)
        {
            _clients[c] = new Client(c, tweaks.CommandsPerClient ?? _rng.Next(3, 15), mode == ReplicationMode.Copilot ? [0, 1] : [0]);
            _totalCommands += _clients[c].Total;
        }
    }

    public string Run()
    {
        for (var r = 0; r < _n; r++)
        {
            Step(r, (replica, fx) => replica.Start(0, fx));
        }

        foreach (var client in _clients)
        {
            Schedule(_rng.NextInt64(0, 20_000), new ClientNext(client.Id));
        }

        if (_faults)
        {
            PlanFaults();
        }

        Schedule(_faultEnd, new Heal());
        while (_events.TryDequeue(out var e, out var key))
        {
            _now = key.Time;
            _steps++;
            Process(e);
            if (_checker.Failure is { } failure)
            {
                throw Failed(failure);
            }

            if (_healed && Done())
            {
                _checker.CheckHistory();
                if (_checker.Failure is { } historyFailure)
                {
                    throw Failed(historyFailure);
                }

                foreach (var h in _hosts)
                {
                    AddCounters(h.Replica.Counters);
                }

                return $"seed {_seed} n={_n}: {_totalCommands} commands, {_checker.CommittedEntries} entries committed, "
                    + $"{_steps} events, {_crashes} crashes, {_partitions} partitions, {_slowdowns} slowdowns, "
                    + $"{_viewChanges} pilot changes, {_counters.GetValueOrDefault("SlotsCompacted")} entries compacted, "
                    + $"{_checkpoints} checkpoints, {_checkpointRestarts} restarts from one, {_rebuilds} rebuilds after disk loss "
                    + $"({_rebuildWaits} waits for peers, {_counters.GetValueOrDefault("Abstentions")} abstentions), finished at {_now / 1000} ms (faults until {_faultEnd / 1000} ms)";
            }

            if (_steps > 20_000 && _steps > 20 * _n * (_now / 1000 + 1))
            {
                throw Failed($"event storm: {_steps} events in {_now / 1000} ms (a timer that keeps firing?)");
            }

            if (_now > _faultEnd + LivenessBudget)
            {
                throw Failed($"liveness: not every command executed everywhere {LivenessBudget / 1000} ms after faults healed; "
                    + DescribeProgress());
            }
        }

        throw Failed("event queue ran dry");
    }

    private SimulationException Failed(string reason)
    {
        var text = $"Copilot simulation failed: COPILOT_N={_n} COPILOT_SEED={_seed} (mode {_options.Mode}) at t={_now} µs: {reason}";
        if (_trace is not null)
        {
            var t = _trace.ToString();
            text += "\n--- trace (tail) ---\n" + (t.Length > 400_000 ? t[^400_000..] : t);
        }

        return new SimulationException(text);
    }

    private string DescribeProgress()
    {
        var sb = new StringBuilder();
        foreach (var c in _clients)
        {
            sb.Append($"client {c.Id}: {c.Completed}/{c.Total} done; ");
        }

        for (var r = 0; r < _n; r++)
        {
            var rep = _hosts[r].Replica;
            sb.Append($"replica {r}: up={_hosts[r].Up} executed {_checker.ExecutedCount(r)}/{_totalCommands} heads {rep.ExecutedThrough(0)}/{rep.ExecutedThrough(1)} "
                + $"committed {rep.CommittedPrefix(0)}/{rep.CommittedPrefix(1)} known {rep.MaxKnownSlot(0)}/{rep.MaxKnownSlot(1)} "
                + $"pilot {rep.IsActivePilot(0)}/{rep.IsActivePilot(1)} views {rep.ViewBallot(0)}/{rep.ViewBallot(1)};\n{rep.Describe()}\n");
        }

        return sb.ToString();
    }

    private bool Done()
    {
        foreach (var c in _clients)
        {
            if (c.Completed < c.Total)
            {
                return false;
            }
        }

        for (var r = 0; r < _n; r++)
        {
            if (!_hosts[r].Up || _checker.ExecutedCount(r) < _totalCommands)
            {
                return false;
            }
        }

        return true;
    }

    private void PlanFaults()
    {
        var t = _rng.NextInt64(0, 50_000);
        while (t < _faultEnd)
        {
            var duration = _rng.NextInt64(20_000, 400_000);
            switch (_rng.Next(4))
            {
                case 0:
                    Schedule(t, new Crash(_rng.Next(_n), duration));
                    break;
                case 1:
                    var target = _rng.Next(3) == 0 ? _rng.Next(_n) : _rng.Next(Math.Min(2, _n));
                    Schedule(t, new Slowdown(target, _rng.NextInt64(2_000, 40_000), duration));
                    break;
                case 2:
                    Schedule(t, new Partition(_rng.Next(), duration));
                    break;
                default:
                    break;
            }

            t += _rng.NextInt64(10_000, 200_000);
        }
    }

    private void Schedule(long at, Event e) => _events.Enqueue(e, (at, _order++));

    private void Trace(string text) => _trace?.Append(_now).Append(' ').AppendLine(text);

    private void Process(Event e)
    {
        switch (e)
        {
            case Deliver d:
                if (_hosts[d.To].Up && d.FromLife == _hosts[d.From].Life)
                {
                    Trace($"{d.From}->{d.To} {d.Message}");
                    Step(d.To, (replica, fx) => replica.Handle(d.From, d.Message, _now, fx));
                }

                break;
            case TickEvent t:
                if (_hosts[t.Replica].Up && _hosts[t.Replica].TickAt == _now)
                {
                    _hosts[t.Replica].TickAt = long.MaxValue;
                    Step(t.Replica, (replica, fx) => replica.Tick(_now, fx));
                }

                break;
            case SubmitEvent s:
                if (_hosts[s.To].Up)
                {
                    Trace($"client->{s.To} submit {s.Command.Id}");
                    Step(s.To, (replica, fx) => replica.Submit(s.Command, _now, fx));
                }

                break;
            case ClientNext c:
                ClientSubmit(_clients[c.Client]);
                break;
            case ClientTimeout c:
                var client = _clients[c.Client];
                if (client.Outstanding is { } id && id.Seq == c.Seq)
                {
                    client.Attempts++;
                    client.Targets = Enumerable.Range(0, _n).ToArray();
                    SendCommand(client);
                }

                break;
            case ClientReply r:
                var cl = _clients[r.Client];

                // Only active pilots answer: the two latest distinct repliers are where the next command goes.
                cl.Repliers.Remove(r.From);
                cl.Repliers.Insert(0, r.From);
                if (cl.Repliers.Count >= 2 || _options.Mode == ReplicationMode.MultiPaxos)
                {
                    cl.Targets = cl.Repliers.Take(_options.Mode == ReplicationMode.MultiPaxos ? 1 : 2).ToArray();
                }

                if (cl.Outstanding is { } outstanding && outstanding == r.Command)
                {
                    cl.Outstanding = null;
                    cl.Completed++;
                    Latencies.Add(_now - cl.SubmittedAt);
                    if (cl.Completed < cl.Total)
                    {
                        Schedule(_now + _rng.NextInt64(0, _thinkTime + 1), new ClientNext(cl.Id));
                    }
                }

                break;
            case Crash c:
                if (!_healed && _hosts[c.Replica].Up && _down < _options.F)
                {
                    Trace($"CRASH {c.Replica}");
                    _hosts[c.Replica].Up = false;
                    if (_diskLossRate > 0 && _diskRng.NextDouble() < _diskLossRate && DiskLossAllowed())
                    {
                        // Its disk is lost: it comes back with no records and must be rebuilt.
                        _hosts[c.Replica].Rebuild = RebuildStage.WaitingForPeers;
                    }

                    _down++;
                    _crashes++;
                    Schedule(Math.Min(_now + c.Duration, _faultEnd), new Restart(c.Replica));
                }

                break;
            case Restart r:
                RestartReplica(r.Replica);
                break;
            case RebuildRetry rr:
                _hosts[rr.Replica].RebuildRetryScheduled = false;
                RestartReplica(rr.Replica);
                break;
            case RebuildTransfer rt:
                CompleteRebuild(rt.Replica, rt.Floor);
                break;
            case Slowdown s:
                if (s.Duration == 0)
                {
                    _hosts[s.Replica].Extra = 0;
                }
                else if (!_healed)
                {
                    Trace($"SLOW {s.Replica} +{s.Extra}");
                    _hosts[s.Replica].Extra = s.Extra;
                    _slowdowns++;
                    Schedule(Math.Min(_now + s.Duration, _faultEnd), new Slowdown(s.Replica, 0, 0));
                }

                break;
            case Partition p:
                if (p.Duration == 0)
                {
                    Array.Clear(_group);
                }
                else if (!_healed)
                {
                    var rng = new Random(p.Seed);
                    for (var r = 0; r < _n; r++)
                    {
                        _group[r] = rng.Next(2);
                    }

                    Trace($"PARTITION {string.Join(",", _group)}");
                    _partitions++;
                    Schedule(Math.Min(_now + p.Duration, _faultEnd), new Partition(0, 0));
                }

                break;
            case Heal:
                Trace("HEAL");
                _healed = true;
                Array.Clear(_group);
                for (var r = 0; r < _n; r++)
                {
                    _hosts[r].Extra = _permanentSlow is { } ps && ps.Replica == r ? ps.Extra : 0;
                    if (!_hosts[r].Up)
                    {
                        RestartReplica(r);
                    }
                }

                break;
        }
    }

    private void RestartReplica(int r)
    {
        var host = _hosts[r];
        if (host.Up || host.Rebuild == RebuildStage.WaitingForTransfer)
        {
            return;
        }

        if (host.Rebuild == RebuildStage.WaitingForPeers)
        {
            StartRebuild(r);
            return;
        }

        Trace($"RESTART {r}");
        AddCounters(host.Replica.Counters);
        host.Up = true;
        _down--;
        host.Replica = NewReplica(r, new Random(_rng.Next()), host.Disk);
        host.TickAt = long.MaxValue;
        if (host.Disk.Count > 0 && host.Disk[0] is CheckpointRecord<int>)
        {
            // The host restores its snapshot; the core must go on from exactly where it was taken.
            var snapshot = host.Snapshot!;
            _checkpointRestarts++;
            for (var log = 0; log < 2; log++)
            {
                if (host.Replica.ExecutedThrough(log) != snapshot.NextEntry[log])
                {
                    _checker.Fail($"replica {r} restarted from a checkpoint at head {host.Replica.ExecutedThrough(log)} of log {log}, "
                        + $"but the snapshot taken with it stands at {snapshot.NextEntry[log]}");
                }
            }

            _checker.OnRestart(r, snapshot);
        }
        else
        {
            _checker.OnRestart(r);
        }
        Step(r, (replica, fx) => replica.Start(_now, fx));
    }

    private Replica<int> NewReplica(int r, Random random, IEnumerable<PersistRecord<int>> records) =>
        new(_options, r, random, records) { GuardAbstainedEntries = !_tweaks.RebuildWithoutGuard };

    private void AddCounters(ReplicaCounters counters)
    {
        foreach (var property in typeof(ReplicaCounters).GetProperties())
        {
            _counters[property.Name] = _counters.GetValueOrDefault(property.Name) + (long)property.GetValue(counters)!;
        }
    }

    private void ClientSubmit(Client client)
    {
        client.Outstanding = new CommandId(client.Id, client.NextSeq++);
        client.Attempts = 0;
        client.SubmittedAt = _now;
        _checker.OnSubmit(client.Outstanding.Value, _now);
        SendCommand(client);
    }

    private void SendCommand(Client client)
    {
        var id = client.Outstanding!.Value;
        var command = new Command<int>(id, (int)id.Seq);
        foreach (var to in client.Targets)
        {
            if (_rng.NextDouble() >= _dropRate)
            {
                Schedule(_now + Delay(-1, to), new SubmitEvent(to, command));
            }
        }

        Schedule(_now + 60_000 * (1 + Math.Min(client.Attempts, 4)), new ClientTimeout(client.Id, id.Seq));
    }

    private long Delay(int from, int to)
    {
        var d = 50 + _rng.NextInt64(0, _maxDelay);
        if (from >= 0)
        {
            d += _hosts[from].Extra;
        }

        if (to >= 0)
        {
            d += _hosts[to].Extra;
        }

        return d;
    }

    private void Step(int r, Action<Replica<int>, List<Effect<int>>> call)
    {
        var host = _hosts[r];
        var fx = _effects;
        fx.Clear();
        try
        {
            call(host.Replica, fx);
        }
        catch (Exception ex) when (ex is InvalidOperationException or ArgumentException)
        {
            throw Failed($"replica {r} threw: {ex}");
        }

        foreach (var effect in fx)
        {
            if (effect is PersistEffect<int> p)
            {
                host.Disk.Add(p.Record);
                _checker.OnPersist(r, p.Record);
            }
        }

        foreach (var effect in fx)
        {
            _checker.Observe(r, effect, _now);
            switch (effect)
            {
                case SendEffect<int> s:
                    Transmit(r, s.To, s.Message);
                    break;
                case BroadcastEffect<int> b:
                    for (var to = 0; to < _n; to++)
                    {
                        if (to != r)
                        {
                            Transmit(r, to, b.Message);
                        }
                    }

                    break;
                case ReplyEffect<int> reply:
                    if (_rng.NextDouble() >= _dropRate)
                    {
                        Schedule(_now + Delay(r, -1), new ClientReply(reply.Command.Client, reply.Command, r));
                    }

                    break;
                case PilotChangedEffect<int> pc:
                    Trace($"replica {r} pilot of log {pc.Log}: {pc.Active} {pc.Ballot}");
                    if (pc.Active)
                    {
                        _viewChanges++;
                    }

                    break;
            }
        }

        var wake = host.Replica.NextWakeup;
        if (wake < host.TickAt)
        {
            host.TickAt = wake;
            Schedule(wake, new TickEvent(r));
        }

        if (host.Replica.Counters.CompactedConflictRefusals > 0)
        {
            _checker.Fail($"replica {r} refused a proposal or recovery query for lack of compacted entries (the watermark rule broke)");
        }

        // Between core calls, as a host would: compact now and then, and sometimes checkpoint.
        if (_compactRate > 0 && _compactRng.NextDouble() < _compactRate)
        {
            host.Replica.Compact();
        }

        if (_checkpointRate > 0 && _compactRng.NextDouble() < _checkpointRate)
        {
            Checkpoint(r);
        }
    }

    private void Transmit(int from, int to, Message<int> message)
    {
        if (_group[from] != _group[to] || _rng.NextDouble() < _dropRate)
        {
            return;
        }

        var life = _hosts[from].Life;
        Schedule(_now + Delay(from, to), new Deliver(from, to, message, life));
        if (_rng.NextDouble() < _duplicateRate)
        {
            Schedule(_now + Delay(from, to), new Deliver(from, to, message, life));
        }
    }
}
