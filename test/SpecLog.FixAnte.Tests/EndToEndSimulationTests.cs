using CsCheck;
using Xunit.Sdk;

namespace SpecLog.FixAnte.Tests;

/// <summary>
/// 4 shard cores and 1 sequencer state machine wired together by a deterministic discrete-event loop (time in µs,
/// seeded delays on disk and network, reordered and duplicated reports, bursty appends and idle phases).
/// </summary>
public sealed class EndToEndSimulationTests(ITestOutputHelper output)
{
    public static TheoryData<int> Seeds => new(Enumerable.Range(1, 6));

    [Theory]
    [MemberData(nameof(Seeds))]
    public void Fix_ante_speculative_gsns_are_the_confirmed_gsns(int seed)
    {
        var stats = new Simulation(seed, OrderingMode.FixAnte).Run();
        output.WriteLine(stats);
    }

    [Theory]
    [MemberData(nameof(Seeds))]
    public void Scalog_baseline_delivers_only_committed_records_and_tiles_the_log(int seed)
    {
        var stats = new Simulation(seed, OrderingMode.Scalog).Run();
        output.WriteLine(stats);
    }

    [Fact]
    public void Fix_ante_random_seeds()
    {
        // New seeds every run; a failure names its seed (add it to Seeds to reproduce deterministically).
        Gen.Int[1000, int.MaxValue].Sample(seed => { new Simulation(seed, OrderingMode.FixAnte).Run(); }, iter: 4, threads: 1);
    }
}

internal sealed class Simulation
{
    private const int SHARDS = 4;
    private const long APPEND_STOP = 150_000;
    private const long END = 260_000;

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
    private readonly long?[] _unackedLagFixSince = new long?[SHARDS];
    private long _maxLagFixAckMicros;
    private long _lagFixesUnackedOver50Ms;
    private long _lagFixesWithoutFill;
    private long _reportsMissingFixedLag;
    private long _maxFillDurableToAck;

    public Simulation(int seed, OrderingMode mode)
    {
        _seed = seed;
        _mode = mode;
        _rng = new Random(seed);
        _options = new FixAnteOptions
        {
            Mode = mode,
            CutsPerWindow = new[] { 8, 20, 50 }[_rng.Next(3)],
            OrderingInterval = TimeSpan.FromMilliseconds(1),
        };
        _seq = new SequencerState(_options, SHARDS);
        _shards = Enumerable.Range(0, SHARDS).Select(s => new ShardHost(new ShardCore(s, _options))).ToArray();
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

        public long Delivered { get; set; }

        public double MeanGapMicros { get; set; }

        public int Burst { get; set; } = 1;

        /// <summary>End of the last lag-fix fill not yet acknowledged by a FixedLag report.</summary>
        public long? LagFillEnd { get; set; }

        /// <summary>When <see cref="LagFillEnd"/> became durable.</summary>
        public long? LagFillDurableAt { get; set; }
    }

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

    public string Run()
    {
        var init = new SequencerOutput();
        _seq.Initialize(init);
        Broadcast();
        for (var s = 0; s < SHARDS; s++)
        {
            var shard = s;
            At(_rng.Next(0, 200), () => Tick(shard));
            At(0, () => ChangePhase(shard));
            At(_rng.Next(0, 500), () => Append(shard));
        }

        while (_events.TryDequeue(out var action, out var key) && key.Item1 <= END)
        {
            _now = key.Item1;
            action();
        }

        return FinalChecks();
    }

    private void ChangePhase(int s)
    {
        var host = _shards[s];
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
        Pump(s);
        At(Delay(50, 250), () => Tick(s));
    }

    private void Append(int s)
    {
        var host = _shards[s];
        if (_now < APPEND_STOP && host.MeanGapMicros > 0)
        {
            var n = 1 + _rng.Next(host.Burst);
            for (var i = 0; i < n; i++)
            {
                var slot = host.Core.AssignRecord();
                Check(slot == host.IsRecord.Count, () => $"shard {s}: record got slot {slot}, expected {host.IsRecord.Count}");
                host.IsRecord.Add(true);
                host.SpecGsn.Add(host.Core.History.TryGsnOfSlot(s, slot));
                host.AssignedRecords++;
            }

            Write(s);
            Pump(s);
        }

        var gap = host.MeanGapMicros > 0 ? 1 + (long)(-Math.Log(1 - _rng.NextDouble()) * host.MeanGapMicros) : 1_000;
        At(_now + gap, () => Append(s));
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

    /// <summary>Group-commits everything assigned so far; the disk completes writes in order.</summary>
    private void Write(int s)
    {
        var host = _shards[s];
        var end = host.Core.AssignedSlots;
        var records = host.AssignedRecords;
        host.DiskFreeAt = Math.Max(host.DiskFreeAt, Delay(20, 300));
        At(host.DiskFreeAt, () =>
        {
            host.Core.OnDurable(end, records);
            Pump(s);
        });
    }

    private void Pump(int s)
    {
        var host = _shards[s];
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

            At(Delay(20, 500), () => SequencerReceive(report));
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
        _seq.Apply(report, o);
        Check(_seq.CommittedCut >= before, () => "committed cut went backwards");
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
            for (var x = 0; x < SHARDS; x++)
            {
                var committedSlots = _seq.History.SlotsBeforeCut(x, _seq.CommittedCut);
                var shard = x;
                Check(committedSlots <= _shards[x].Core.DurableSlots, () => $"cut {_seq.CommittedCut} committed with shard {shard} holding {_shards[shard].Core.DurableSlots} of {committedSlots} slots");
            }
        }

        if (o.CommitAdvanced || o.NewWindows.Count > 0 || o.WaitingChanged)
        {
            Broadcast();
        }

        foreach (var (shard, target) in o.LagFixes)
        {
            _lagFixesSent++;
            _unackedLagFixSince[shard] ??= _now;
            At(Delay(20, 500), () =>
            {
                var n = _shards[shard].Core.NoOpsForLagFix(target);
                if (n > 0)
                {
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
        for (var s = 0; s < SHARDS; s++)
        {
            var shard = s;
            _noticesSent++;
            At(Delay(20, 500), () =>
            {
                var core = _shards[shard].Core;
                core.OnCommitted(cut, windows, _now, waiting);
                Check(core.CommittedSlots <= core.DurableSlots, () => $"shard {shard}: committed slots {core.CommittedSlots} beyond durable {core.DurableSlots}");
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

        // Liveness: every record appended before the stop is committed, and commits kept flowing.
        for (var s = 0; s < SHARDS; s++)
        {
            var host = _shards[s];
            var lastRecord = host.IsRecord.LastIndexOf(true);
            var committedSlots = history.Count == 0 ? 0 : history.SlotsBeforeCut(s, _seq.CommittedCut);
            var shard = s;
            Check(lastRecord < committedSlots, () => $"shard {shard}: record at slot {lastRecord} not committed (committed slots {committedSlots}, durable {host.Core.DurableSlots}, known {history.KnownSlots(shard)})");
        }

        Check(_maxCommitGap < 30_000, () => $"the committed cut stalled for {_maxCommitGap}us");

        // The shards learned exactly the sequencer's windows (same prefix).
        for (var s = 0; s < SHARDS; s++)
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
        for (var s = 0; s < SHARDS; s++)
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
        Check(committedRecords == records, () => $"{committedRecords} records committed of {records}");
        Check(_seq.CommittedCut > 20, () => $"only {_seq.CommittedCut} cuts committed");

        return $"seed {_seed} {_mode} W={_options.CutsPerWindow}: records {records}, committed cut {_seq.CommittedCut} gsn {committedGsn} "
            + $"(no-ops {committedNoOps}), windows {history.Count}, reports {_seq.ReportsApplied}, lag-fixes {_seq.LagFixesIssued} ({_lagFixesSent} delivered, {_seq.LagFixesAcknowledged} acked, slowest ack {_maxLagFixAckMicros}us, {_lagFixesUnackedOver50Ms} acks later than 50 ms, "
            + $"{_unackedLagFixSince.Count(x => x is not null)} never acked, {_lagFixesWithoutFill} needed no fill; "
            + $"{_reportsMissingFixedLag} reports after a durable fill without FixedLag, slowest fill-durable-to-ack {_maxFillDurableToAck}us), notices {_noticesSent}, max commit gap {_maxCommitGap}us, quotas of last window [{string.Join(',', history.Last?.Quotas ?? [])}]";
    }
}
