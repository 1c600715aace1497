using Xunit.Sdk;

namespace SpecLog.FixAnte.Tests;

internal sealed partial class Simulation
{
    private readonly int _capacity;
    private int _started;

    private readonly SimulationLoad _load;
    private readonly int _seed;
    private readonly OrderingMode _mode;
    private readonly Random _rng;
    private readonly PriorityQueue<Action, (long, long)> _events = new();
    private readonly FixAnteOptions _options;
    private readonly SequencerState _seq;
    private readonly ShardHost[] _shards;
    private long _now;
    private long _order;
    private long _lastCommitAdvance;
    private long _maxCommitGap;
    private long _noticesSent;
    private long _lagFixesSent;
    private readonly long?[] _unackedLagFixSince;
    private long _maxLagFixAckMicros;
    private long _lagFixesUnackedOver50Ms;
    private long _lagFixesWithoutFill;
    private long _reportsMissingFixedLag;
    private long _maxFillDurableToAck;

    private long[]? _measureStart;
    private long _measureStartCut;
    private long _measuredLagFixes;
    private long _measuredLagFixesToLeader;
    private long _lagFixNoOpSlots;
    private long _measureStartLagFixNoOps;
    private readonly List<long> _commitLatencies = [];
    private readonly List<long> _healthyCommitLatencies = [];

    public Simulation(int seed, OrderingMode mode, SimulationLoad? load = null)
    {
        _load = load ?? new SimulationLoad();
        _seed = seed;
        _mode = mode;
        _rng = new Random(seed);
        _options = new FixAnteOptions
        {
            Mode = mode,
            CutsPerWindow = _load.CutsPerWindow ?? new[] { 8, 20, 50 }[_rng.Next(3)],
            OrderingInterval = TimeSpan.FromMilliseconds(1),
        };
        _load.Configure?.Invoke(_options);
        _capacity = _load.InitialShards + _load.ShardChanges.Count(c => c.Change == ShardControl.Join);
        _seq = new SequencerState(_options, _load.InitialShards);
        _shards = Enumerable.Range(0, _capacity).Select(s => new ShardHost(new ShardCore(s, _options))).ToArray();
        _unackedLagFixSince = new long?[_capacity];
    }

    private sealed class ShardHost(ShardCore core)
    {
        public ShardCore Core { get; set; } = core;

        /// <summary>When it last asked to rejoin after a failure.</summary>
        public long RejoinAskedAt { get; set; } = long.MinValue / 2;

        /// <summary>Per slot: true for a real record, false for a no-op.</summary>
        public List<bool> IsRecord { get; } = [];

        /// <summary>Per slot: the GSN the shard computed when it first could (at assignment, else at delivery).</summary>
        public List<long?> SpecGsn { get; } = [];

        public long AssignedRecords { get; set; }

        public long DiskFreeAt { get; set; }

        public bool Flushing { get; set; }

        public long Delivered { get; set; }

        public double MeanGapMicros { get; set; }

        public int Burst { get; set; } = 1;

        /// <summary>Records owed to the steady load but not appended yet (fractional).</summary>
        public double Owed { get; set; }

        public long LastBatchAt { get; set; }

        /// <summary>Client batcher: records queued at the client, batch calls outstanding, and the shard's unacknowledged batches (end slot).</summary>
        public long ClientQueued { get; set; }

        public int ClientInFlight { get; set; }

        public Queue<long> PendingBatches { get; } = new();

        /// <summary>Records appended in the measured period and not committed yet: (slot, when appended).</summary>
        public Queue<(long Slot, long Micros)> Uncommitted { get; } = new();

        /// <summary>End of the last lag-fix fill not yet acknowledged by a FixedLag report.</summary>
        public long? LagFillEnd { get; set; }

        /// <summary>When <see cref="LagFillEnd"/> became durable.</summary>
        public long? LagFillDurableAt { get; set; }

        /// <summary>The shard lost every replica: it does nothing any more.</summary>
        public bool Dead { get; set; }

        /// <summary>When the sequencer took the shard's join (null for an initial shard).</summary>
        public long? JoinedAt { get; set; }

        /// <summary>The first delivery of one of its records after it joined.</summary>
        public long? FirstDeliveryAt { get; set; }

        /// <summary>The sequencer's window count when it took the shard's join or leave: the next window is the change's.</summary>
        public int? ChangeWindow { get; set; }
    }

    /// <summary>Shard hosts running: the initial shards and those joined so far (ids are handed out in order).</summary>
    private int Started => _started;

    /// <summary>Each shard as the sequencer and the shard itself see it (for failure messages).</summary>
    private string DescribeShards() =>
        $"committed cut {_seq.CommittedCut}, known end {_seq.History.KnownEndCut}, last windows [{string.Join("; ", _seq.History.Windows.TakeLast(4).Select(w => $"{w.FirstCut}..{w.EndCut} q[{string.Join(',', w.Quotas)}]"))}], shards: "
        + $"any waiting {_seq.AnyWaiting}; " + string.Join(" | ", Enumerable.Range(0, Started).Select(x => $"{x}: seq completed {_seq.CompletedCutOf(x)} lead {_seq.History.LeadCut(x, _seq.DurableSlotsOf(x))} grounded {_seq.IsGrounded(x)} strikes {_seq.StrikesOf(x)}; core durable {_shards[x].Core.DurableSlots} assigned {_shards[x].Core.AssignedSlots} reported cut {_shards[x].Core.LastReportedCut} known windows {_shards[x].Core.History.Count} others waiting {_shards[x].Core.OthersWaiting} uncommitted {_shards[x].Core.HasUncommittedRecords} committed cut {_shards[x].Core.CommittedCut}"));

    private void Fail(string message) => throw new XunitException($"[seed {_seed}, {_mode}, W={_options.CutsPerWindow}, t={_now}us] {message}");

    private void Check(bool condition, Func<string> message)
    {
        if (!condition)
        {
            Fail(message());
        }
    }

    private void At(long time, Action action) => _events.Enqueue(action, (time, _order++));

    private long Delay(int min, int max) => _now + _rng.Next(min, max + 1);

    private long NetDelay() => Delay(_load.NetMinMicros, _load.NetMaxMicros);

    /// <summary>What the measured period saw; set once the run is over.</summary>
    public SimulationMeasure? Measure { get; private set; }

    /// <summary>Committed records per GSN of the committed prefix (whole run).</summary>
    public (long Records, long NoOps) Committed { get; private set; }

    /// <summary>Records of failed shards that were delivered speculatively and are not in the log; set by the final checks.</summary>
    public long MisSpeculated { get; private set; }

    /// <summary>The sequencer, for inspection after the run.</summary>
    public SequencerState Sequencer => _seq;

    /// <summary>Every report the sequencer received, in order (duplicates included), with what applying it produced.</summary>
    public List<(ShardReport Report, string Output)> Applied { get; } = [];

    /// <summary>Every lag-fix signal: when, to which shard, the target cut, and the leading shard's completed cut then.</summary>
    public List<(long Micros, int Shard, long Target, long Leader)> LagFixLog { get; } = [];

    /// <summary>Every advance of the committed cut: when, and the new committed cut.</summary>
    public List<(long Micros, long Cut)> Commits { get; } = [];

    /// <summary>The options in force.</summary>
    public FixAnteOptions Options => _options;

    /// <summary>A canonical description of one sequencer output (for comparing runs).</summary>
    public static string Describe(SequencerOutput o) =>
        $"adv={o.CommitAdvanced} dup={o.Duplicate} wait={o.WaitingChanged} win=[{string.Join(';', o.NewWindows)}] lag=[{string.Join(';', o.LagFixes)}]";

    public string Run()
    {
        var init = new SequencerOutput();
        _seq.Initialize(init);
        for (var s = 0; s < _load.InitialShards; s++)
        {
            StartShard();
        }

        Broadcast();
        foreach (var (at, change, shard) in _load.ShardChanges)
        {
            At(at, () => At(NetDelay(), () => SequencerReceive(ShardReport.ForControl(change, shard, _now))));
        }

        foreach (var (at, shard) in _load.ShardFailures)
        {
            At(at, () => _shards[shard].Dead = true);
            At(at + _load.FailureDetectionMicros, () => SequencerReceive(ShardReport.ForControl(ShardControl.Fail, shard, _now)));
        }

        foreach (var (at, shard) in _load.ShardRejoins)
        {
            At(at, () => Revive(shard));
        }

        if (_load.BurstRecords > 0)
        {
            At(_load.BurstAtMicros, () => AppendRecords(_load.BurstShard, _load.BurstRecords));
        }

        At(_load.MeasureFromMicros, StartMeasure);
        At(_load.AppendStopMicros, StopMeasure);
        while (_events.TryDequeue(out var action, out var key) && key.Item1 <= _load.EndMicros)
        {
            _now = key.Item1;
            action();
        }

        return FinalChecks();
    }

    private void StartShard()
    {
        var shard = _started++;
        At(_now + _rng.Next(0, 200), () => Tick(shard));
        At(_now, () => ChangePhase(shard));
        At(_now + _rng.Next(0, 500), () => Append(shard));
    }

    /// <summary>A failed shard restarts: it keeps what was durable, recovers with the windows decided so far, and asks to rejoin.</summary>
    private void Revive(int s)
    {
        var host = _shards[s];
        var durable = (int)host.Core.DurableSlots;
        host.IsRecord.RemoveRange(durable, host.IsRecord.Count - durable);
        host.SpecGsn.RemoveRange(durable, host.SpecGsn.Count - durable);
        host.AssignedRecords = host.IsRecord.Count(r => r);
        host.Delivered = Math.Min(host.Delivered, durable);
        host.Uncommitted.Clear();
        host.PendingBatches.Clear();
        host.ClientInFlight = 0;
        host.ClientQueued = 0;
        host.Flushing = false;
        host.DiskFreeAt = _now;
        host.Core = new ShardCore(s, _options);
        host.Core.Recover(durable, host.AssignedRecords, host.IsRecord.Count(r => !r), _seq.History.Windows.ToArray(), firstReportSeq: _now);
        host.Dead = false;
        Check(host.Core.Departed && host.Core.FailedOut, () => $"shard {s} revived but it is not a failed shard: departed {host.Core.Departed}");
        At(_now + _rng.Next(0, 200), () => Tick(s));
        At(_now + _rng.Next(0, 500), () => Append(s));
    }

    /// <summary>Like the shard grain: a failed shard that runs again asks to rejoin, every few milliseconds until a window says it did.</summary>
    private void MaybeAskToRejoin(int s)
    {
        var host = _shards[s];
        if (host.Core.Departed && host.Core.FailedOut && _now - host.RejoinAskedAt >= 5_000)
        {
            host.RejoinAskedAt = _now;
            var request = ShardReport.ForControl(ShardControl.Join, s, _now, host.Core.AssignedSlots);
            At(NetDelay(), () => SequencerReceive(request));
        }
    }

    /// <summary>Like the shard grain: after a rejoin, the slots up to the end of its void are written as no-ops before anything else.</summary>
    private void SkipVoid(int s)
    {
        var skip = _shards[s].Core.SlotsToSkip;
        if (skip > 0)
        {
            AssignNoOps(s, skip);
        }
    }

    private void StartMeasure()
    {
        _measureStart = [.. _shards.Select(h => h.AssignedRecords), .. _shards.Select(h => h.Core.NoOpSlots)];
        _measureStartCut = _seq.CommittedCut;
        _measureStartLagFixNoOps = _lagFixNoOpSlots;
    }

    private void StopMeasure()
    {
        var start = _measureStart!;
        Measure = new SimulationMeasure(
            _shards.Sum(h => h.AssignedRecords) - start.Take(_capacity).Sum(),
            _shards.Sum(h => h.Core.NoOpSlots) - start.Skip(_capacity).Sum(),
            _lagFixNoOpSlots - _measureStartLagFixNoOps,
            _measuredLagFixes,
            _measuredLagFixesToLeader,
            _seq.CommittedCut - _measureStartCut,
            (_load.AppendStopMicros - _load.MeasureFromMicros) / 1000.0,
            Percentile(0.50),
            Percentile(0.99));
    }

    /// <summary>Append-to-commit latency (µs) at percentile <paramref name="p"/> of the records of every shard but <see cref="SimulationLoad.SlowShard"/>, up to the end of the measured period.</summary>
    public long HealthyCommitPercentile(double p) => Percentile(_healthyCommitLatencies, p);

    private long Percentile(double p) => Percentile(_commitLatencies, p);

    private static long Percentile(List<long> latencies, double p)
    {
        if (latencies.Count == 0)
        {
            return 0;
        }

        var sorted = latencies.Order().ToArray();
        return sorted[Math.Min(sorted.Length - 1, (int)(p * sorted.Length))];
    }

    private void ChangePhase(int s)
    {
        var host = _shards[s];
        if (_load.SteadyRecordsPerMs is not null)
        {
            return; // Append paces itself
        }

        (host.MeanGapMicros, host.Burst) = _rng.Next(5) switch
        {
            0 => (0, 1),          // idle
            1 => (500, 1),        // slow
            2 => (100, 1),        // medium
            3 => (40, 4),         // fast, batched
            _ => (15, 8),         // burst
        };
        At(_now + _rng.Next(5_000, 25_000), () => ChangePhase(s));
    }

    private void Tick(int s)
    {
        if (_shards[s].Dead)
        {
            return;
        }

        Pump(s);
        At(Delay(50, 250), () => Tick(s));
    }

    private void Append(int s)
    {
        var host = _shards[s];
        if (host.Dead)
        {
            return;
        }

        if (host.Core.Departed)
        {
            if (host.Core.FailedOut)
            {
                At(_now + 1_000, () => Append(s)); // appends come back once it rejoined
            }

            return; // its appends are refused meanwhile (for good if it left); a client sends them to other shards
        }

        if (_load.SteadyRecordsPerMs is { } perMs)
        {
            var stopped = _load.StoppedShard == s && _now >= _load.StopAtMicros;
            if (_now < _load.AppendStopMicros && !stopped)
            {
                host.Owed += (_now - host.LastBatchAt) * perMs / 1000;
                host.LastBatchAt = _now;
                var n = (int)host.Owed;
                host.Owed -= n;
                if (_load.ClientBatching)
                {
                    host.ClientQueued += n;
                    ClientSend(s);
                }
                else
                {
                    AppendRecords(s, n);
                }
            }

            At(Delay(_load.BatchGapMinMicros, _load.BatchGapMaxMicros), () => Append(s));
            return;
        }

        if (_now < _load.AppendStopMicros && host.MeanGapMicros > 0)
        {
            AppendRecords(s, 1 + _rng.Next(host.Burst));
        }

        var gap = host.MeanGapMicros > 0 ? 1 + (long)(-Math.Log(1 - _rng.NextDouble()) * host.MeanGapMicros) : 1_000;
        At(_now + gap, () => Append(s));
    }

    private void ClientSend(int s)
    {
        var host = _shards[s];
        while (host.ClientInFlight < _load.ClientMaxInFlight && host.ClientQueued > 0)
        {
            var n = (int)host.ClientQueued;
            host.ClientQueued = 0;
            host.ClientInFlight++;
            At(NetDelay(), () =>
            {
                AppendRecords(s, n);
                host.PendingBatches.Enqueue(host.Core.AssignedSlots);
                AckBatches(s);
            });
        }
    }

    /// <summary>The shard acknowledges every batch whose records are committed; the client then sends what queued.</summary>
    private void AckBatches(int s)
    {
        var host = _shards[s];
        while (host.PendingBatches.TryPeek(out var end) && end <= host.Core.CommittedSlots)
        {
            host.PendingBatches.Dequeue();
            At(NetDelay(), () =>
            {
                host.ClientInFlight--;
                ClientSend(s);
            });
        }
    }

    private void AppendRecords(int s, int n)
    {
        if (n <= 0)
        {
            return;
        }

        var host = _shards[s];
        SkipVoid(s);
        for (var i = 0; i < n; i++)
        {
            var slot = host.Core.AssignRecord();
            Check(slot == host.IsRecord.Count, () => $"shard {s}: record got slot {slot}, expected {host.IsRecord.Count}");
            host.IsRecord.Add(true);
            host.SpecGsn.Add(host.Core.History.TryGsnOfSlot(s, slot));
            host.AssignedRecords++;
            if (_measureStart is not null && _now < _load.AppendStopMicros - 50_000) // committed before the measure ends
            {
                host.Uncommitted.Enqueue((slot, _now));
            }
        }

        Write(s);
        Pump(s);
    }

    private void AssignNoOps(int s, long n)
    {
        var host = _shards[s];
        var first = host.Core.AssignNoOp(n);
        Check(first == host.IsRecord.Count, () => $"shard {s}: no-op got slot {first}, expected {host.IsRecord.Count}");
        for (var i = 0; i < n; i++)
        {
            host.IsRecord.Add(false);
            host.SpecGsn.Add(host.Core.History.TryGsnOfSlot(s, first + i));
        }

        Write(s);
    }

    /// <summary>Makes everything assigned so far durable, in order: one write per call, or group commit.</summary>
    private void Write(int s)
    {
        var host = _shards[s];
        if (_load.GroupCommit)
        {
            Flush(s);
            return;
        }

        var end = host.Core.AssignedSlots;
        var records = host.AssignedRecords;
        var extra = _load.SlowShard == s ? _load.SlowDiskMicros : 0;
        host.DiskFreeAt = Math.Max(host.DiskFreeAt, Delay(20 + extra, 300 + extra));
        At(host.DiskFreeAt, () =>
        {
            if (!host.Dead)
            {
                host.Core.OnDurable(end, records);
                Pump(s);
            }
        });
    }

    private void Flush(int s)
    {
        var host = _shards[s];
        if (host.Flushing || host.Core.AssignedSlots == host.Core.DurableSlots)
        {
            return; // the flush in flight picks up what arrives meanwhile
        }

        host.Flushing = true;
        var end = host.Core.AssignedSlots;
        var records = host.AssignedRecords;
        At(Delay(_load.FlushMinMicros, _load.FlushMaxMicros), () =>
        {
            if (host.Dead)
            {
                return;
            }

            host.Core.OnDurable(end, records);
            host.Flushing = false;
            Pump(s);
            Flush(s);
        });
    }

    private void Pump(int s)
    {
        var host = _shards[s];
        if (host.Dead)
        {
            return;
        }

        var core = host.Core;
        MaybeAskToRejoin(s);
        SkipVoid(s);
        var fill = core.NoOpsForDeadline(_now);
        if (fill > 0)
        {
            AssignNoOps(s, fill);
        }

        if (host.LagFillEnd is { } fillEnd && core.DurableSlots >= fillEnd)
        {
            host.LagFillDurableAt ??= _now;
        }

        if (core.ReportDue(_now))
        {
            var report = core.MakeReport(_now);
            if (report.FixedLag)
            {
                _maxFillDurableToAck = Math.Max(_maxFillDurableToAck, _now - (host.LagFillDurableAt ?? _now));
                host.LagFillEnd = null;
                host.LagFillDurableAt = null;
            }
            else if (host.LagFillDurableAt is not null)
            {
                _reportsMissingFixedLag++; // the fill is durable but this report does not say so (see LagFixAnswerTests)
            }

            At(NetDelay(), () => SequencerReceive(report));
            if (_rng.Next(30) == 0)
            {
                At(Delay(20, 2_000), () => SequencerReceive(report)); // duplicate, possibly much later
            }
        }

        // Speculative (Fix-Ante) or confirmed (Scalog) delivery.
        var deliverable = core.DeliverableSlots;
        Check(deliverable <= core.DurableSlots, () => $"shard {s}: deliverable {deliverable} beyond durable {core.DurableSlots}");
        Check(deliverable <= core.History.KnownSlots(s), () => $"shard {s}: deliverable {deliverable} beyond the known windows ({core.History.KnownSlots(s)} slots)");
        if (_mode == OrderingMode.Scalog)
        {
            Check(deliverable <= core.CommittedSlots, () => $"shard {s}: Scalog delivers {deliverable} beyond committed {core.CommittedSlots}");
        }

        while (host.Delivered < deliverable)
        {
            var slot = host.Delivered++;
            if (host.JoinedAt is not null && host.FirstDeliveryAt is null && host.IsRecord[(int)slot])
            {
                host.FirstDeliveryAt = _now;
            }

            var gsn = core.History.GsnOfSlot(s, slot);
            var spec = host.SpecGsn[(int)slot];
            Check(spec is null || spec == gsn, () => $"shard {s} slot {slot}: GSN {spec} at assignment but {gsn} at delivery");
            host.SpecGsn[(int)slot] = gsn;
        }
    }
}
