using SpecLog.Server.Replication;

namespace SpecLog.Cluster.Tests;

/// <summary>
/// A deterministic simulation of one shard's replicas (<see cref="ShardReplicaCore"/>) under seeded faults: messages
/// delayed, lost, duplicated and reordered; fsyncs of random length; replicas crashing (losing what was not fsync'd)
/// and restarting; replicas paused; optionally, replicas losing their disk (state and log) and starting again empty, one
/// at a time (the next only once the last has rebuilt). A client appends through whoever leads. Checked at every step: at most one leader
/// per epoch; every entry a leader ever counted durable is, at the same index, in the log of every later ready
/// leader; and, once faults stop, a leader becomes ready and commits new entries.
/// </summary>
internal sealed class ShardReplicationSimulation
{
    private const long Heartbeat = 50_000;
    private const long ElectionTimeout = 300_000;

    private readonly Random _random;
    private readonly int _n;
    private readonly bool _wipes;
    private readonly Node[] _nodes;
    private readonly PriorityQueue<Action, (long, long)> _events = new();
    private readonly Dictionary<long, (long Value, long Epoch)> _committed = []; // index → entry value, as a leader of that epoch first counted it durable
    private readonly Dictionary<long, int> _leaders = []; // epoch → replica that led it
    private readonly List<string> _trace = [];
    private long _now;
    private long _order;
    private long _nextValue = 1;

    public ShardReplicationSimulation(int n, int seed, bool wipes = false)
    {
        _n = n;
        _wipes = wipes;
        _random = new Random(seed);
        _nodes = new Node[n];
        for (var i = 0; i < n; i++)
        {
            _nodes[i] = new Node(this, i);
            _nodes[i].Start();
        }
    }

    public long Elections => _nodes.Sum(n => n.Core?.ElectionsStarted ?? 0);

    public int CommittedEntries => _committed.Count;

    public long Crashes { get; private set; }

    /// <summary>Replicas that lost their disk.</summary>
    public long Wipes { get; private set; }

    /// <summary>Replicas that finished rebuilding after losing their disk.</summary>
    public long Rebuilds => _nodes.Sum(n => n.Rebuilt);

    public string Trace => string.Join('\n', _trace.TakeLast(60));

    /// <summary>Runs faults for <paramref name="faultyMicros"/>, then a quiet period in which the shard must serve again.</summary>
    public void Run(long faultyMicros, long quietMicros)
    {
        var faultsEnd = faultyMicros;
        Schedule(0, () => Tick(faultsEnd));
        Schedule(0, () => ClientStep(faultsEnd));
        while (_events.TryDequeue(out var action, out var key) && key.Item1 <= faultyMicros + quietMicros)
        {
            _now = key.Item1;
            action();
            Check();
        }

        // Liveness: after the quiet period some replica leads, is ready and has committed an entry of its own epoch.
        var leader = _nodes.FirstOrDefault(n => n.Core is { Role: ReplicaRole.Leader, Ready: true });
        if (leader is null)
        {
            var states = string.Join("; ", _nodes.Select(n => n.Core is { } c
                ? $"{n.Index}: {c.Role} probing {c.Probing} rebuilding {c.Rebuilding} promised {c.Promised} leader epoch {c.LeaderEpoch} end {n.Storage!.End} durable {n.Storage.Durable} last epoch {c.Meta.LastEpoch(n.Storage.End)} floor ({c.Meta.FloorEpoch}, {c.Meta.FloorEnd})"
                : $"{n.Index}: down"));
            throw new InvalidOperationException($"No ready leader {quietMicros / 1000} ms after the faults stopped: {states}\n{Trace}");
        }

        if (leader.Core!.Committed <= leader.Core.EpochStart)
        {
            throw new InvalidOperationException($"Leader {leader.Index} committed nothing new after the faults stopped.\n{Trace}");
        }
    }

    private void Schedule(long delay, Action action) => _events.Enqueue(action, (_now + delay, _order++));

    private void Tick(long faultsEnd)
    {
        foreach (var node in _nodes)
        {
            if (node.Up && !node.Paused)
            {
                node.Core!.OnTick(_now);
                node.AfterEvent();
                if (node.Core is { Role: not ReplicaRole.Leader } core && _random.NextDouble() < 0.05)
                {
                    // As the grain does to keep its peers' locations cached: what it holds, sent unasked.
                    var peer = (node.Index + 1 + _random.Next(_n - 1)) % _n;
                    node.Send(peer, core.Holdings());
                }
            }
        }

        if (_now < faultsEnd)
        {
            var roll = _random.NextDouble();
            // Leaders are hit more often than others: their crashes are what elections and log repair are for.
            var leader = _nodes.FirstOrDefault(n => n.Core is { Role: ReplicaRole.Leader });
            var victim = leader is not null && _random.NextDouble() < 0.6 ? leader : _nodes[_random.Next(_n)];
            if (roll < 0.01 && victim.Up)
            {
                // A disk is lost only while no other replica is still rebuilding a lost one: two lost copies of a
                // majority-durable entry are more than any replication survives.
                var wipe = _wipes && _random.NextDouble() < 0.4 && _nodes.All(n => n == victim || !n.LostState);
                Crashes++;
                _trace.Add($"{_now}: {(wipe ? "wipe" : "crash")} {victim.Index}");
                victim.Crash();
                if (wipe)
                {
                    Wipes++;
                    victim.Wipe();
                }

                Schedule(_random.Next(50_000, 800_000), () =>
                {
                    _trace.Add($"{_now}: restart {victim.Index}");
                    victim.Start();
                });
            }
            else if (roll < 0.014 && victim.Up && !victim.Paused)
            {
                _trace.Add($"{_now}: pause {victim.Index}");
                victim.Paused = true;
                Schedule(_random.Next(100_000, 1_000_000), () => victim.Paused = false);
            }
        }
        else
        {
            foreach (var node in _nodes)
            {
                node.Paused = false;
                if (!node.Up)
                {
                    node.Start();
                }
            }
        }

        Schedule(10_000, () => Tick(faultsEnd));
    }

    private void ClientStep(long faultsEnd)
    {
        foreach (var node in _nodes)
        {
            if (node.Up && !node.Paused && node.Core is { Role: ReplicaRole.Leader, Ready: true })
            {
                var count = _random.Next(1, 4);
                for (var i = 0; i < count; i++)
                {
                    node.Storage!.Append(new ReplicatedEntry(1, BitConverter.GetBytes(_nextValue++)));
                }

                node.Storage!.Flush();
                node.Core.OnLocalAppended();
                node.AfterEvent();
            }
        }

        Schedule(_random.Next(1_000, 5_000), () => ClientStep(faultsEnd));
    }

    private void Deliver(int to, Action<Node> handle)
    {
        if (_random.NextDouble() < 0.03)
        {
            return; // lost
        }

        var copies = _random.NextDouble() < 0.02 ? 2 : 1;
        for (var c = 0; c < copies; c++)
        {
            var delay = _random.NextDouble() < 0.05 ? _random.Next(5_000, 200_000) : _random.Next(100, 2_000);
            Schedule(delay, () =>
            {
                var node = _nodes[to];
                if (node.Up && !node.Paused)
                {
                    handle(node);
                    node.AfterEvent();
                }
                else if (node.Up && node.Paused)
                {
                    // A paused process reads its queue when it resumes.
                    Schedule(50_000, () => Deliver(to, handle));
                }
            });
        }
    }

    private void Check()
    {
        foreach (var node in _nodes)
        {
            if (node.Core is not { Role: ReplicaRole.Leader } core)
            {
                continue;
            }

            if (_leaders.TryGetValue(core.LeaderEpoch, out var other) && other != node.Index)
            {
                throw new InvalidOperationException($"Epoch {core.LeaderEpoch} has two leaders: {other} and {node.Index}.\n{Trace}");
            }

            _leaders[core.LeaderEpoch] = node.Index;
            if (!core.Ready)
            {
                continue;
            }

            if (!node.CheckedReady)
            {
                // A newly ready leader must hold every entry counted durable in an earlier epoch, where it was (a leader
                // of an old epoch that a pause kept from noticing a newer one may lack what the newer one committed; it
                // can commit nothing new, which the check below would catch).
                foreach (var (index, (value, epoch)) in _committed)
                {
                    if (epoch < core.LeaderEpoch && (index >= node.Storage!.Log.Count || node.Storage.Log[(int)index] != value))
                    {
                        throw new InvalidOperationException(
                            $"Leader {node.Index} of epoch {core.LeaderEpoch} lacks committed entry {index} (value {value}; it has {(index < node.Storage!.Log.Count ? node.Storage.Log[(int)index] : -1)}).\n{Trace}");
                    }
                }

                node.CheckedReady = true;
            }

            for (var i = node.CommittedSeen; i < core.Committed; i++)
            {
                var value = node.Storage!.Log[(int)i];
                if (_committed.TryGetValue(i, out var earlier))
                {
                    if (earlier.Value != value)
                    {
                        throw new InvalidOperationException($"Index {i} was committed as {earlier.Value} in epoch {earlier.Epoch} and now as {value} by leader {node.Index} of epoch {core.LeaderEpoch}.\n{Trace}");
                    }

                    continue;
                }

                _committed[i] = (value, core.LeaderEpoch);
            }

            node.CommittedSeen = Math.Max(node.CommittedSeen, core.Committed);
        }
    }

    private sealed class Node(ShardReplicationSimulation sim, int index) : IReplicaTransport
    {
        private ReplicaMeta _savedMeta = ReplicaMeta.Empty;
        private List<long> _durableLog = [];

        public int Index { get; } = index;

        public bool Up { get; private set; }

        public bool Paused { get; set; }

        public ShardReplicaCore? Core { get; private set; }

        public MemoryStorage? Storage { get; private set; }

        public bool CheckedReady { get; set; }

        /// <summary>True from losing its disk until it has rebuilt (the simulation loses no second disk meanwhile).</summary>
        public bool LostState { get; private set; }

        public long Rebuilt { get; private set; }

        public long CommittedSeen { get; set; }

        private bool _wasLeader;

        public void Start()
        {
            Up = true;
            Paused = false;
            Storage = new MemoryStorage(this, [.. _durableLog]);
            Core = new ShardReplicaCore(Index, sim._n, _savedMeta, Storage, this, new ReplicaTimings(Heartbeat, ElectionTimeout, MaxBatchEntries: 8, MaxUnacknowledged: 32), new Random(sim._random.Next()), sim._now);
            CheckedReady = false;
            CommittedSeen = 0;
            _wasLeader = false;
        }

        public void Crash()
        {
            Up = false;
            Core = null;
            Storage = null;
        }

        public void Wipe()
        {
            _savedMeta = ReplicaMeta.Empty;
            _durableLog = [];
            LostState = true;
        }

        public void AfterEvent()
        {
            if (Core is null)
            {
                return;
            }

            if (LostState && Core is { Probing: false, Rebuilding: false })
            {
                sim._trace.Add($"{sim._now}: {Index} rebuilt its lost state (log {Storage!.End} entries, promised {Core.Promised})");
                LostState = false;
                Rebuilt++;
            }

            var leader = Core.Role == ReplicaRole.Leader;
            if (leader != _wasLeader)
            {
                sim._trace.Add($"{sim._now}: {Index} {(leader ? "leads" : "stops leading")} epoch {Core.LeaderEpoch} (end {Storage!.End}, durable {Storage.Durable})");
                CheckedReady = false;
                CommittedSeen = 0;
                _wasLeader = leader;
            }
        }

        public void Send(int to, ReplicaAppend message) => sim.Deliver(to, n => n.Core!.OnAppend(message, sim._now));

        public void Send(int to, ReplicaAck message) => sim.Deliver(to, n => n.Core!.OnAck(message, sim._now));

        public void Send(int to, ReplicaVoteRequest message) => sim.Deliver(to, n => n.Core!.OnVoteRequest(message, sim._now));

        public void Send(int to, ReplicaProbe message) => sim.Deliver(to, n => n.Core!.OnProbe(message, sim._now));

        public void Send(int to, ReplicaProbeReply message) => sim.Deliver(to, n => n.Core!.OnProbeReply(message, sim._now));

        public void Send(int to, ReplicaVote message)
        {
            if (message.Granted && !message.Pre)
            {
                sim._trace.Add($"{sim._now}: {Index} (end {Storage!.End}, last epoch {Core!.Meta.LastEpoch(Storage.End)}) votes for {to} in epoch {message.Epoch}");
            }

            sim.Deliver(to, n => n.Core!.OnVote(message, sim._now));
        }

        internal void Persist(ReplicaMeta meta) => _savedMeta = meta;

        internal void PersistLog(List<long> log, int durable) => _durableLog = log.Take(durable).ToList();

        internal ShardReplicationSimulation Sim => sim;
    }

    private sealed class MemoryStorage(Node node, List<long> log) : IReplicaStorage
    {
        private int _resets;

        public List<long> Log { get; } = log;

        public long End => Log.Count;

        public long Durable { get; private set; } = log.Count;

        public IReadOnlyList<ReplicatedEntry> Read(long from, int maxEntries, int maxBytes) =>
            Log.Skip((int)from).Take(maxEntries).Select(v => new ReplicatedEntry(1, BitConverter.GetBytes(v))).ToList();

        public void Append(ReplicatedEntry entry) => Log.Add(BitConverter.ToInt64(entry.Payload));

        public void Flush()
        {
            var target = Log.Count;
            var resets = _resets;
            var core = node.Core;
            var sim = node.Sim;
            sim.Schedule(sim._random.Next(100, 3_000), () =>
            {
                if (!node.Up || !ReferenceEquals(node.Core, core) || resets != _resets)
                {
                    return; // crashed, or the log this flush was for was dropped
                }

                Durable = Math.Max(Durable, target);
                node.PersistLog(Log, (int)Durable);
                core!.OnLocalDurable(Durable);
                node.AfterEvent();
            });
        }

        public void Truncate(long end)
        {
            node.Sim._trace.Add($"{node.Sim._now}: {node.Index} truncates its log of {Log.Count} entries to {end}");
            Log.RemoveRange((int)end, Log.Count - (int)end);
            Durable = Math.Min(Durable, end);
            _resets++;
            node.PersistLog(Log, (int)Durable);
        }

        public void Save(ReplicaMeta meta) => node.Persist(meta);

        public long FirstIndex => 0; // the simulated shard never trims

        public ShardTrim? Trim => null;

        public void ApplyTrim(ShardTrim trim) => throw new InvalidOperationException("The simulated shard never trims.");

        public void Install(long firstIndex, ShardTrim trim) => throw new InvalidOperationException("The simulated shard never trims.");
    }
}
