using System.Text;

namespace SpecLog.Copilot.Tests;

/// <summary>
/// Fault-free runs under the load and timing of the Orleans host: both pilots receive every command at about the same
/// time, every replica group-commits its records (an fsync) before its messages of that call leave, and each hop costs
/// about 0.5–2 ms. The question these runs answer: how many entries commit on the fast path, and why the others do not.
/// </summary>
public sealed class HealthyLoadTests(ITestOutputHelper output)
{
    /// <summary>
    /// PingPongWait above the pilots' turn time (two hops, each with an fsync: about 2–5 ms here), with 1% of fsyncs
    /// taking 4–10 ms. Before the crossing rule of ping-pong batching, every late turn left the pilots proposing in
    /// lockstep, crossing each time (about 76% fast with seed 1, falling with every further late turn).
    /// </summary>
    [Fact]
    public void Healthy_realistic_load_commits_most_entries_on_the_fast_path()
    {
        long fast = 0, slow = 0;
        for (var seed = 1; seed <= 3; seed++)
        {
            var run = new HealthyLoadDriver(seed, pingPongWait: 6_000);
            run.Run(2_000_000);
            output.WriteLine(run.Report());
            fast += run.FastCommits;
            slow += run.SlowPaths;
        }

        var share = (double)fast / (fast + slow);
        output.WriteLine($"{fast} fast, {slow} slow: fast-path share {share:P1}");
        Assert.True(share >= 0.8, $"only {share:P1} of the pilots' entries committed on the fast path ({fast} fast, {slow} slow)");
    }

    /// <summary>
    /// The crossing rule itself: the pilots' first proposals cross (neither saw the other's). Log 1's pilot does not
    /// take log 0's crossing FastAccept as its turn; log 0's pilot does, and its next proposal depends on log 1's
    /// latest, so log 1's next proposal follows it and depends on it: alternation again, and no second crossing.
    /// </summary>
    [Fact]
    public void After_crossing_proposals_the_pilots_alternate_again()
    {
        var d = Harness.Defaults(3);
        var h = new Harness(new CopilotOptions
        {
            ReplicaCount = 3,
            HeartbeatInterval = d.HeartbeatInterval,
            ElectionTimeout = d.ElectionTimeout,
            TakeoverTimeout = d.TakeoverTimeout,
            PingPongWait = 5_000,
            FastPathWait = d.FastPathWait,
            RetransmitInterval = d.RetransmitInterval,
            BackoffBase = d.BackoffBase,
            BackoffMax = d.BackoffMax,
            PipelineWindow = d.PipelineWindow,
        });
        static bool Proposal(Harness.Envelope e, int from, int to, int log, long slot) =>
            e.From == from && e.To == to && e.Message is FastAccept<int> m && m.Log == log && m.Slot == slot;
        FastAccept<int>? Proposed(int log, long slot) =>
            h.Pending.Select(e => e.Message).OfType<FastAccept<int>>().FirstOrDefault(m => m.Log == log && m.Slot == slot);

        h.Submit(0, client: 0, seq: 1);
        h.Submit(1, client: 0, seq: 1);
        h.Deliver(e => Proposal(e, 0, 2, log: 0, slot: 0) || (e.From == 2 && e.To == 0 && e.Message is FastAcceptReply<int>));
        Assert.NotNull(h.Committed(0, 0));                  // 0.0 on the fast path
        h.Advance(5_000);                                   // log 1's pilot proposes on its timer: the two cross
        Assert.Equal(-1, Proposed(0, 0)!.Value.Dep);
        Assert.Equal(-1, Proposed(1, 0)!.Value.Dep);

        h.Submit(0, client: 1, seq: 1);
        h.Submit(1, client: 1, seq: 1);
        h.Deliver(e => Proposal(e, 0, 1, log: 0, slot: 0)); // crossing: not log 1's turn
        Assert.Null(Proposed(1, 1));
        h.Deliver(e => Proposal(e, 1, 0, log: 1, slot: 0)); // crossing, but log 0's pilot takes its turn
        Assert.Equal(0, Proposed(0, 1)!.Value.Dep);
        h.Deliver(e => Proposal(e, 0, 1, log: 0, slot: 1)); // depends on log 1's latest: log 1's turn
        Assert.Equal(1, Proposed(1, 1)!.Value.Dep);

        Assert.True(h.Run(1_000_000, () => h.Committed(0, 1) is not null && h.Committed(1, 1) is not null));
        Assert.Equal(0, h.Committed(0, 1)!.Dep);
        Assert.Equal(1, h.Committed(1, 1)!.Dep);
        Assert.Equal(1, h.Replicas.Sum(r => r.Counters.SlowPaths)); // only the loser of the first crossing
    }

    /// <summary>Prints the fast-path share for a few PingPongWait values (set COPILOT_HEALTHY_EXPLORE=1).</summary>
    [Fact]
    public void Explore_ping_pong_wait()
    {
        if (Environment.GetEnvironmentVariable("COPILOT_HEALTHY_EXPLORE") != "1")
        {
            output.WriteLine("COPILOT_HEALTHY_EXPLORE not set: nothing to print.");
            return;
        }

        foreach (var wait in new long[] { 1_000, 3_000, 6_000 })
        {
            foreach (var spikes in new[] { 0.0, 0.01 })
            {
                var run = new HealthyLoadDriver(1, pingPongWait: wait, fsyncSpikeRate: spikes);
                run.Run(2_000_000);
                output.WriteLine($"=== PingPongWait {wait} µs, fsync spikes {spikes:P0}: fast-path share {(double)run.FastCommits / (run.FastCommits + run.SlowPaths):P1}");
                output.WriteLine(run.Report());
            }
        }

        foreach (var wait in new long[] { 1_000, 6_000 })
        {
            var run = new HealthyLoadDriver(1, pingPongWait: wait, slowReplica: (1, 20_000));
            run.Run(2_000_000);
            output.WriteLine($"=== PingPongWait {wait} µs, messages to replica 1 delayed 20 ms");
            output.WriteLine(run.Report());
        }
    }
}

/// <summary>
/// A deterministic discrete-event model of three replica grains under steady load (time in µs, one seed). Per replica:
/// a call's persist records join the next group commit (an fsync of <c>fsync</c> µs; records arriving while one runs
/// wait for the following one), and the call's messages leave when that commit is durable; calls without records send
/// at once. Each message then takes <c>net</c> µs. Clients submit a new command (next <c>Seq</c>) every ~1 ms to both
/// pilots. The driver records, for every pilot proposal, why it did not take the fast path.
/// </summary>
internal sealed class HealthyLoadDriver
{
    private readonly Random _rng;
    private readonly int _n;
    private readonly Host[] _hosts;
    private readonly InvariantChecker _checker;
    private readonly PriorityQueue<Action, (long Time, long Order)> _events = new();
    private readonly (long Min, long Max) _fsync;
    private readonly (long Min, long Max) _net;
    private readonly int _clients;
    private readonly long _submitEvery;
    private readonly double _fsyncSpikeRate;
    private readonly Dictionary<(int Log, long Slot), ProposalInfo> _proposals = [];
    private readonly Dictionary<string, int> _reasons = [];
    private readonly Dictionary<CommandId, long> _submittedAt = [];
    private readonly List<long> _latencies = [];
    private long _now;
    private long _order;
    private string _calling = "";

    public HealthyLoadDriver(
        int seed,
        int n = 3,
        long pingPongWait = 1_000,
        (long Min, long Max)? fsync = null,
        (long Min, long Max)? net = null,
        int clients = 4,
        long submitEvery = 1_000,
        (int Replica, long Extra)? slowReplica = null,
        double fsyncSpikeRate = 0.01)
    {
        _rng = new Random(seed);
        _n = n;
        _fsync = fsync ?? (300, 1_500);
        _net = net ?? (100, 500);
        _clients = clients;
        _submitEvery = submitEvery;
        _fsyncSpikeRate = fsyncSpikeRate;
        Options = new CopilotOptions
        {
            // The Orleans host's defaults (ReplicationOptions), in µs.
            ReplicaCount = n,
            HeartbeatInterval = 20_000,
            ElectionTimeout = 300_000,
            TakeoverTimeout = 10_000,
            PingPongWait = pingPongWait,
            FastPathWait = 2_000,
            RetransmitInterval = 20_000,
            BackoffBase = 10_000,
            BackoffMax = 600_000,
            MaxBatch = 256,
        };
        _checker = new InvariantChecker(n);
        _hosts = Enumerable.Range(0, n).Select(r => new Host(new Replica<int>(Options, r, new Random(seed * 31 + r)))).ToArray();
        if (slowReplica is { } slow)
        {
            _hosts[slow.Replica].Extra = slow.Extra;
        }
    }

    public CopilotOptions Options { get; }

    public ReplicaCounters[] Counters => _hosts.Select(h => h.Replica.Counters).ToArray();

    public long FastCommits => _hosts.Sum(h => h.Replica.Counters.FastCommits);

    public long SlowPaths => _hosts.Sum(h => h.Replica.Counters.SlowPaths);

    public IReadOnlyDictionary<string, int> SlowReasons => _reasons;

    public void Run(long duration)
    {
        for (var r = 0; r < _n; r++)
        {
            var replica = r;
            Step(replica, "start", (rep, fx) => rep.Start(0, fx));
        }

        for (var c = 0; c < _clients; c++)
        {
            var client = c;
            Schedule(_rng.NextInt64(0, _submitEvery), () => ClientSubmit(client, 1));
        }

        while (_events.TryDequeue(out var action, out var key) && key.Time <= duration)
        {
            _now = key.Time;
            action();
            if (_checker.Failure is { } failure)
            {
                throw new InvalidOperationException($"at {_now} µs: {failure}");
            }
        }

        _checker.CheckHistory();
        if (_checker.Failure is { } history)
        {
            throw new InvalidOperationException(history);
        }
    }

    public string Report()
    {
        var sb = new StringBuilder();
        for (var r = 0; r < _n; r++)
        {
            var c = _hosts[r].Replica.Counters;
            sb.Append($"r{r}: proposed {c.Proposed} fast {c.FastCommits} slow {c.SlowPaths} takeovers {c.Takeovers} preemptions {c.Preemptions}; ");
        }

        var entries = _proposals.Count;
        var commands = _proposals.Values.Sum(p => p.Commands);
        sb.Append($"\n{entries} pilot entries, {(double)commands / Math.Max(1, entries):F2} commands per entry, {(double)entries / 2 / (_now / 1e6):F0} entries/s per log");
        if (_latencies.Count > 0)
        {
            var sorted = _latencies.Order().ToArray();
            sb.Append($"; client latency p50 {sorted[sorted.Length / 2]} µs p99 {sorted[sorted.Length * 99 / 100]} µs ({sorted.Length} replies)");
        }

        var triggers = _proposals.Values.GroupBy(p => p.Trigger).Select(g => $"{g.Key} {g.Count()}");
        sb.Append($"\nproposals closed by: {string.Join(", ", triggers)}");
        foreach (var (reason, count) in _reasons.OrderByDescending(kv => kv.Value))
        {
            sb.Append($"\n  slow path: {count} × {reason}");
        }

        return sb.ToString();
    }

    private void Schedule(long at, Action action) => _events.Enqueue(action, (at, _order++));

    private long Draw((long Min, long Max) range) => _rng.NextInt64(range.Min, range.Max + 1);

    /// <summary>An fsync: usually within the configured range, now and then (a busy disk, a GC pause) 4–10 ms.</summary>
    private long Fsync() => _rng.NextDouble() < _fsyncSpikeRate ? _rng.NextInt64(4_000, 10_001) : Draw(_fsync);

    private void ClientSubmit(int client, long seq)
    {
        var id = new CommandId(client, seq);
        _checker.OnSubmit(id, _now);
        _submittedAt[id] = _now;
        var command = new Command<int>(id, client);
        for (var pilot = 0; pilot < 2; pilot++)
        {
            var to = pilot;
            Schedule(_now + Draw(_net) + _hosts[to].Extra, () => Step(to, "submit", (rep, fx) => rep.Submit(command, _now, fx)));
        }

        Schedule(_now + _submitEvery - 100 + _rng.NextInt64(0, 201), () => ClientSubmit(client, seq + 1));
    }

    private void Step(int r, string calling, Action<Replica<int>, List<Effect<int>>> call)
    {
        var host = _hosts[r];
        var fx = new List<Effect<int>>();
        _calling = calling;
        call(host.Replica, fx);
        var persists = false;
        foreach (var effect in fx)
        {
            if (effect is PersistEffect<int> p)
            {
                persists = true;
                host.Disk.Add(p.Record);
                _checker.OnPersist(r, p.Record);
            }
        }

        var sends = new List<(int To, Message<int> Message)>();
        foreach (var effect in fx)
        {
            _checker.Observe(r, effect, _now);
            switch (effect)
            {
                case SendEffect<int> s:
                    sends.Add((s.To, s.Message));
                    break;
                case BroadcastEffect<int> b:
                    for (var to = 0; to < _n; to++)
                    {
                        if (to != r)
                        {
                            sends.Add((to, b.Message));
                        }
                    }

                    break;
                case ReplyEffect<int> reply:
                    if (_submittedAt.Remove(reply.Command, out var at))
                    {
                        _latencies.Add(_now + Draw(_net) - at);
                    }

                    break;
            }

            Observe(r, effect);
        }

        if (sends.Count > 0)
        {
            if (!persists)
            {
                // Like the host: messages wait until everything appended before them is durable.
                if (host.Waiting.Count > 0)
                {
                    host.Waiting.AddRange(sends);
                }
                else if (host.CommitEnds > _now)
                {
                    Schedule(host.CommitEnds, () => Release(r, sends));
                }
                else
                {
                    Release(r, sends);
                }
            }
            else if (host.CommitEnds <= _now)
            {
                // The disk is idle: this call's records form a group commit of their own.
                host.CommitEnds = _now + Fsync();
                Schedule(host.CommitEnds, () => Release(r, sends));
            }
            else
            {
                // An fsync is running: join the next group commit, which starts when it ends.
                if (host.Waiting.Count == 0)
                {
                    Schedule(host.CommitEnds, () => StartGroupCommit(r));
                }

                host.Waiting.AddRange(sends);
            }
        }

        var wake = host.Replica.NextWakeup;
        if (wake < host.TickAt)
        {
            host.TickAt = wake;
            Schedule(wake, () =>
            {
                if (host.TickAt == wake)
                {
                    host.TickAt = long.MaxValue;
                    Step(r, "tick", (rep, f) => rep.Tick(_now, f));
                }
            });
        }
    }

    private void StartGroupCommit(int r)
    {
        var host = _hosts[r];
        var batch = host.Waiting.ToList();
        host.Waiting.Clear();
        host.CommitEnds = _now + Fsync();
        Schedule(host.CommitEnds, () => Release(r, batch));
    }

    private void Release(int from, List<(int To, Message<int> Message)> sends)
    {
        foreach (var (to, message) in sends)
        {
            var target = to;
            Schedule(_now + Draw(_net) + _hosts[to].Extra, () => Deliver(from, target, message));
        }
    }

    private void Deliver(int from, int to, Message<int> message)
    {
        if (message is FastAcceptReply<int> reply && _proposals.TryGetValue((reply.Log, reply.Slot), out var info) && info.Pilot == to)
        {
            info.Replies[from] = (reply.Ok, _now);
        }

        var calling = message is FastAccept<int> fa && fa.Ballot.Replica == from && from != to ? "other pilot's FastAccept" : "message";
        Step(to, calling, (rep, fx) => rep.Handle(from, message, _now, fx));
    }

    /// <summary>Bookkeeping for the slow-path diagnosis: who proposed what when, who refused, and what the refuser held.</summary>
    private void Observe(int r, Effect<int> effect)
    {
        var message = effect switch
        {
            BroadcastEffect<int> b => b.Message,
            SendEffect<int> s => s.Message,
            _ => null,
        };
        var replica = _hosts[r].Replica;
        switch (message)
        {
            case FastAccept<int> m when m.Ballot.Replica == r && !_proposals.ContainsKey((m.Log, m.Slot)):
                _proposals[(m.Log, m.Slot)] = new ProposalInfo(r, _now, m.Value.Dep, m.Value.Commands.Length,
                    _calling == "other pilot's FastAccept" ? "the other pilot's FastAccept (its turn)" : $"{_calling} (PingPongWait or batch full)");
                break;
            case FastAcceptReply<int> { Ok: false } m when _proposals.TryGetValue((m.Log, m.Slot), out var info):
                // What made this replica refuse: entries of the other log above the proposed dependency that it holds
                // with a dependency before this entry.
                var other = 1 - m.Log;
                var proposedDep = info.Dep;
                var blockers = new List<string>();
                for (var k = replica.MaxKnownSlot(other); k > proposedDep; k--)
                {
                    var s = replica.InspectSlot(other, k);
                    if (s.Value is { IsNoOp: false } v && v.Dep < m.Slot)
                    {
                        var seen = _proposals.TryGetValue((other, k), out var o) && o.ProposedAt <= info.ProposedAt ? "before" : "after";
                        blockers.Add($"{other}.{k}->{v.Dep} ({seen})");
                    }
                }

                info.Refusals[r] = string.Join(" ", blockers);
                break;
            case Accept<int> m when _proposals.TryGetValue((m.Log, m.Slot), out var info) && info.Pilot == r && !info.Slow && m.Ballot.Replica == r:
                info.Slow = true;
                var refused = info.Replies.Count(kv => !kv.Value.Ok);
                var answered = info.Replies.Count;
                string reason;
                if (refused >= _n - 1)
                {
                    reason = "every other replica refused";
                }
                else if (refused > 0 && answered < _n - 1)
                {
                    reason = $"{refused} refusal(s), FastPathWait expired before the other reply";
                }
                else
                {
                    reason = $"other ({refused} refused of {answered} answers)";
                }

                var crossing = info.Refusals.Values.Any(b => b.Contains("(before)", StringComparison.Ordinal))
                    ? "; refuser held an other-log entry proposed before this one and not seen by its pilot (crossing proposals)"
                    : info.Refusals.Values.Any(b => b.Length > 0) ? "; refuser held an other-log entry proposed after this one (it depends on an older entry)" : "";
                Add($"{reason}{crossing}; closed by {info.Trigger}");
                break;
        }
    }

    private void Add(string reason) => _reasons[reason] = _reasons.GetValueOrDefault(reason) + 1;

    private sealed class Host(Replica<int> replica)
    {
        public Replica<int> Replica { get; } = replica;

        public List<PersistRecord<int>> Disk { get; } = [];

        public long CommitEnds { get; set; }

        public List<(int To, Message<int> Message)> Waiting { get; } = [];

        public long Extra { get; set; }

        public long TickAt { get; set; } = long.MaxValue;
    }

    private sealed class ProposalInfo(int pilot, long proposedAt, long dep, int commands, string trigger)
    {
        public int Pilot { get; } = pilot;

        public long ProposedAt { get; } = proposedAt;

        public long Dep { get; } = dep;

        public int Commands { get; } = commands;

        public string Trigger { get; } = trigger;

        public Dictionary<int, (bool Ok, long At)> Replies { get; } = [];

        public Dictionary<int, string> Refusals { get; } = [];

        public bool Slow { get; set; }
    }
}
