using Xunit.Sdk;

namespace SpecLog.FixAnte.Tests;

internal sealed class Simulation
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
        public ShardCore Core { get; } = core;

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
        if (host.Core.Departed || host.Dead)
        {
            return; // its appends are refused from now on; a client sends them to other shards
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

    private void SequencerReceive(ShardReport report)
    {
        var o = new SequencerOutput();
        var before = _seq.CommittedCut;
        var shardsBefore = _seq.ShardCount;
        var windowsBefore = _seq.History.Count;
        _seq.Apply(report, o);
        Applied.Add((report, Describe(o)));
        if (report.Control != ShardControl.None)
        {
            Check(o.ControlRefused is null, () => $"{report.Control} of shard {report.Shard} refused: {o.ControlRefused}");
            var host = _shards[report.Shard];
            host.ChangeWindow ??= windowsBefore;
            if (_seq.ShardCount > shardsBefore)
            {
                host.JoinedAt = _now;
                StartShard();
            }
        }

        Check(_seq.CommittedCut >= before, () => "committed cut went backwards");
        if (o.CommitAdvanced)
        {
            Commits.Add((_now, _seq.CommittedCut));
            if (Measure is null)
            {
                for (var x = 0; x < Started; x++)
                {
                    var committedSlots = _seq.History.SlotsBeforeCut(x, _seq.CommittedCut);
                    var queue = _shards[x].Uncommitted;
                    while (queue.TryPeek(out var r) && r.Slot < committedSlots)
                    {
                        queue.Dequeue();
                        _commitLatencies.Add(_now - r.Micros);
                        if (x != _load.SlowShard)
                        {
                            _healthyCommitLatencies.Add(_now - r.Micros);
                        }
                    }
                }
            }
        }

        if (o.LagFixes.Count > 0)
        {
            var lead = Enumerable.Range(0, Started).Max(_seq.CompletedCutOf);
            LagFixLog.AddRange(o.LagFixes.Select(l => (_now, l.Shard, l.TargetCut, lead)));
        }

        if (!o.Duplicate && report.FixedLag && _unackedLagFixSince[report.Shard] is { } since)
        {
            _maxLagFixAckMicros = Math.Max(_maxLagFixAckMicros, _now - since);
            _lagFixesUnackedOver50Ms += _now - since > 50_000 ? 1 : 0;
            _unackedLagFixSince[report.Shard] = null;
        }

        if (o.WaitingChanged && _seq.AnyWaiting)
        {
            _lastCommitAdvance = _now; // an idle (quiescent) log commits nothing; stalls count from when somebody waits
        }

        if (o.CommitAdvanced)
        {
            _maxCommitGap = Math.Max(_maxCommitGap, _now - _lastCommitAdvance);
            _lastCommitAdvance = _now;

            // Safety: every committed slot is durable at its shard.
            for (var x = 0; x < Started; x++)
            {
                var committedSlots = _seq.History.SlotsBeforeCut(x, _seq.CommittedCut);
                if (_seq.History.VoidOf(x) is { } gone)
                {
                    committedSlots = Math.Min(committedSlots, gone.From); // a failed shard's void slots are no-ops it never held
                }

                var shard = x;
                Check(committedSlots <= _shards[x].Core.DurableSlots, () => $"cut {_seq.CommittedCut} committed with shard {shard} holding {_shards[shard].Core.DurableSlots} of {committedSlots} slots");
            }
        }

        if (o.CommitAdvanced || o.NewWindows.Count > 0 || o.WaitingChanged)
        {
            Broadcast();
        }

        if (_measureStart is not null && Measure is null && o.LagFixes.Count > 0)
        {
            var leader = LagFixLog[^1].Leader;
            _measuredLagFixes += o.LagFixes.Count;
            _measuredLagFixesToLeader += o.LagFixes.Count(l => l.TargetCut == leader);
        }

        foreach (var (shard, target) in o.LagFixes)
        {
            _lagFixesSent++;
            _unackedLagFixSince[shard] ??= _now;
            At(NetDelay(), () =>
            {
                if (_shards[shard].Dead)
                {
                    return;
                }

                var n = _shards[shard].Core.NoOpsForLagFix(target);
                if (n > 0)
                {
                    _lagFixNoOpSlots += n;
                    AssignNoOps(shard, n);
                    _shards[shard].LagFillEnd = _shards[shard].Core.AssignedSlots;
                    _shards[shard].LagFillDurableAt = null;
                }
                else
                {
                    _lagFixesWithoutFill++;
                }

                Pump(shard);
            });
        }
    }

    private void Broadcast()
    {
        var windows = _seq.History.Windows.ToArray();
        var cut = _seq.CommittedCut;
        var waiting = _seq.AnyWaiting;
        for (var s = 0; s < Started; s++)
        {
            var shard = s;
            _noticesSent++;
            At(NetDelay(), () =>
            {
                var core = _shards[shard].Core;
                if (_shards[shard].Dead)
                {
                    return;
                }

                core.OnCommitted(cut, windows, _now, waiting);
                Check(core.CommittedSlots <= core.DurableSlots, () => $"shard {shard}: committed slots {core.CommittedSlots} beyond durable {core.DurableSlots}");
                AckBatches(shard);
                Pump(shard);
            });
        }
    }

    private string FinalChecks()
    {
        var history = _seq.History;
        var committedGsn = _seq.CommittedGsn;
        var records = _shards.Sum(h => h.AssignedRecords);
        Check(records > 1_000, () => $"only {records} records appended: the workload is too small to mean anything");

        // Records a departed shard took beyond its last slot never get a position (their appends fail): not in the log.
        var orphans = 0L;
        var voided = 0L;
        var misSpeculated = 0L;
        for (var s = 0; s < Started; s++)
        {
            var core = _shards[s].Core;
            var shard = s;
            if (_shards[s].Dead)
            {
                // A failed shard: what it held beyond the void's start is not in the log; what it delivered there was
                // mis-speculated. It never learned it departed.
                // (Scalog: no voids; what it held beyond its last cut is simply not in the log.)
                var gone = history.VoidOf(s) ?? (_mode == OrderingMode.Scalog ? (history.KnownSlots(s), history.KnownSlots(s), history.Count) : null);
                Check(gone is not null && history.Last!.HasDeparted(s), () => $"shard {shard} failed but no window settles it: {history.Last}");
                for (var k = gone!.Value.From; k < _shards[s].IsRecord.Count; k++)
                {
                    if (_shards[s].IsRecord[(int)k])
                    {
                        voided++;
                        misSpeculated += k < Math.Min(gone.Value.To, _shards[s].Delivered) ? 1 : 0;
                    }
                }

                continue;
            }

            Check(core.Departed == history.Last!.HasDeparted(s), () => $"shard {shard}: departed {core.Departed}, sequencer's last window {history.Last}");
            for (var k = core.FinalSlots; core.Departed && k < _shards[s].IsRecord.Count; k++)
            {
                orphans += _shards[s].IsRecord[(int)k] ? 1 : 0;
            }
        }

        // Shard-set changes take effect at exactly the next window decided after the sequencer took them, and never
        // touch a window decided before.
        var joinLatencies = new List<long>();
        for (var s = 0; s < Started; s++)
        {
            var host = _shards[s];
            var shard = s;
            if (host.ChangeWindow is not { } w || w >= history.Count)
            {
                continue;
            }

            if (host.JoinedAt is not null && _mode == OrderingMode.FixAnte)
            {
                Check(Enumerable.Range(0, w).All(i => history[i].QuotaOf(shard) == 0) && history[w].QuotaOf(shard) > 0,
                    () => $"shard {shard} joined when {w} windows were decided but its first quota is elsewhere: {string.Join("; ", history.Windows.Skip(Math.Max(0, w - 1)).Take(3))}");
                if (host.FirstDeliveryAt is { } first)
                {
                    joinLatencies.Add(first - host.JoinedAt.Value);
                }
            }
            else if (host.JoinedAt is null && _mode == OrderingMode.FixAnte)
            {
                Check(!history[w - 1].HasDeparted(shard) && history[w].HasDeparted(shard) && history.Windows.Skip(w).All(x => x.QuotaOf(shard) == 0 && x.HasDeparted(shard)),
                    () => $"shard {shard} left when {w} windows were decided, but: {string.Join("; ", history.Windows.Skip(w - 1).Take(3))}");
            }
        }

        // Liveness: every record appended before the stop is committed, and commits kept flowing.
        for (var s = 0; s < Started; s++)
        {
            var host = _shards[s];
            var lastRecord = (int)Math.Min(host.IsRecord.Count, host.Dead ? history.VoidOf(s)?.From ?? history.KnownSlots(s) : host.Core.FinalSlots) - 1;
            while (lastRecord >= 0 && !host.IsRecord[lastRecord])
            {
                lastRecord--;
            }

            var committedSlots = history.Count == 0 ? 0 : history.SlotsBeforeCut(s, _seq.CommittedCut);
            var shard = s;
            Check(lastRecord < committedSlots, () => $"shard {shard}: record at slot {lastRecord} not committed (committed slots {committedSlots}, durable {host.Core.DurableSlots}, known {history.KnownSlots(shard)}); {DescribeShards()}");
        }

        Check(_maxCommitGap < 30_000, () => $"the committed cut stalled for {_maxCommitGap}us");

        // The shards learned exactly the sequencer's windows (same prefix).
        for (var s = 0; s < Started; s++)
        {
            var mine = _shards[s].Core.History.Windows;
            var shard = s;
            Check(mine.Count <= history.Count, () => $"shard {shard} knows more windows than the sequencer");
            for (var w = 0; w < mine.Count; w++)
            {
                var window = w;
                Check(mine[w].ToString() == history[w].ToString() && mine[w].CutsPerWindow == history[w].CutsPerWindow,
                    () => $"shard {shard} window {window}: {mine[window]} vs sequencer {history[window]}");
            }
        }

        // Speculative GSN == confirmed GSN for every slot the shard positioned.
        for (var s = 0; s < Started; s++)
        {
            var host = _shards[s];
            for (var k = 0; k < host.SpecGsn.Count; k++)
            {
                if (host.SpecGsn[k] is not { } spec)
                {
                    continue;
                }

                var confirmed = history.GsnOfSlot(s, k);
                var (shard, slot) = (s, k);
                Check(spec == confirmed, () => $"shard {shard} slot {slot}: speculative GSN {spec} but confirmed GSN {confirmed}");
            }
        }

        // Records and no-op slots tile the committed prefix: each GSN is exactly one durable entry of one shard.
        var recordGsns = new HashSet<long>();
        long committedRecords = 0, committedNoOps = 0;
        for (var g = 0L; g < committedGsn; g++)
        {
            var (s, k) = history.Locate(g);
            var host = _shards[s];
            var gsn = g;
            if (history.IsVoid(s, k))
            {
                committedNoOps++; // a failed shard's void slot: a no-op, whatever the shard held there
                continue;
            }

            Check(k < host.Core.DurableSlots, () => $"GSN {gsn} -> shard {s} slot {k}, which is not durable ({host.Core.DurableSlots})");
            Check(host.SpecGsn[(int)k] == g, () => $"GSN {gsn} -> shard {s} slot {k}, delivered by the shard as {host.SpecGsn[(int)k]}");
            if (host.IsRecord[(int)k])
            {
                committedRecords++;
                Check(recordGsns.Add(g), () => $"GSN {gsn} holds two records");
            }
            else
            {
                committedNoOps++;
            }
        }

        Check(committedRecords + committedNoOps == committedGsn, () => "tiling count");
        Check(committedRecords == records - orphans - voided, () => $"{committedRecords} records committed of {records} ({orphans} taken by departed shards beyond their last slot, {voided} held by failed shards beyond what the sequencer heard of)");
        MisSpeculated = misSpeculated;
        Committed = (committedRecords, committedNoOps);
        Check(_seq.CommittedCut > 20, () => $"only {_seq.CommittedCut} cuts committed");

        return $"seed {_seed} {_mode} W={_options.CutsPerWindow}: records {records}, committed cut {_seq.CommittedCut} gsn {committedGsn} "
            + $"(no-ops {committedNoOps}), windows {history.Count}, reports {_seq.ReportsApplied}, lag-fixes {_seq.LagFixesIssued} ({_lagFixesSent} delivered, {_seq.LagFixesAcknowledged} acked, slowest ack {_maxLagFixAckMicros}us, {_lagFixesUnackedOver50Ms} acks later than 50 ms, "
            + $"{_unackedLagFixSince.Count(x => x is not null)} never acked, {_lagFixesWithoutFill} needed no fill; "
            + $"{_reportsMissingFixedLag} reports after a durable fill without FixedLag, slowest fill-durable-to-ack {_maxFillDurableToAck}us), notices {_noticesSent}, max commit gap {_maxCommitGap}us, quotas of last window [{string.Join(',', history.Last?.Quotas ?? [])}]"
            + (Measure is null ? "" : $"; {Measure}")
            + (_seq.Failures == 0 ? "" : $"; shards failed {_seq.Failures}, records lost with them {voided}, of which delivered speculatively (mis-speculated) {misSpeculated}")
            + (_seq.Joins + _seq.Leaves == 0 ? "" : $"; shards joined {_seq.Joins}, left {_seq.Leaves}, orphaned records {orphans}, join to first delivery {string.Join(", ", joinLatencies.Select(l => $"{l / 1000.0:0.0} ms"))}");
    }
}
